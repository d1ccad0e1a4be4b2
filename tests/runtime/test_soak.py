"""The soak, accelerated: a live RTSP source through 10 server kills (scripts/soak_live.py, the
same code that runs for hours), its memory flat after warm-up and no window lost outside the outages."""

import importlib.util

import pytest

from tests.conftest import REPO
from tests.rtsp import require_rtsp_server

pytestmark = pytest.mark.slow


def _soak_module():
    spec = importlib.util.spec_from_file_location("soak_live", REPO / "scripts" / "soak_live.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ten_outages_memory_flat_and_no_window_lost_outside_them(exported, tmp_path):
    require_rtsp_server()
    soak = _soak_module()
    # Each spell up must outlast the run's way back: the stall noticed (--stall-timeout 2 s), the
    # reconnect waits and FFmpeg's RTSP open and probe: about 6 s here after a 1 s outage.
    m = soak.soak(exported, tmp_path / "soak", outages=10, up_s=8.0, down_s=1.0, say=lambda s: None)
    log = (tmp_path / "soak" / "run.log").read_text()
    assert m["exit"] == 143 and "Traceback" not in log, log
    assert m["outages_counted"] == 10 and log.count(": outage at frame") == 10 and log.count(": back after") == 10, (m, log)
    # Each outage is one gap in the windows' capture times, and there is no other: no window lost outside them.
    assert m["gaps"] == 10 and m["numbered_on"] and m["wall_time_monotonic"], m
    assert m["windows"] >= 3 * 10, m  # windows in every spell the server was up (25 fps; several a second)
    assert m["rss_growth"] <= 0.10, m
    assert soak.row(m).count("|") == 8
