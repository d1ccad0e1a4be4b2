"""Live sources against a real RTSP server (GStreamer's, tests/rtsp_server.py): a camera that
goes away and comes back, a recording that ends. Each test stays under ~40 s."""

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.rtsp import RtspServer, require_rtsp_server, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _rtsp_server_installed():
    require_rtsp_server()


def _lines(path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def _start_run(url, exported, out, *flags):
    return subprocess.Popen([sys.executable, "-m", "prp_deploy", "run", url, "--model", str(exported), "--out", str(out), *flags],
                            stderr=subprocess.PIPE, text=True)


def test_camera_killed_and_restarted_the_run_carries_on(exported, tmp_path):
    out = tmp_path / "w.jsonl"
    server = RtspServer().start()
    run = _start_run(server.url("live"), exported, out, "--reconnect", "30", "--reconnect-wait", "0.2")
    try:
        assert wait_for(lambda: _lines(out) >= 2 or run.poll() is not None, 30), "no window from the live stream"
        server.kill()
        time.sleep(2.0)  # down for a while: the run must wait, not end
        assert run.poll() is None, run.stderr.read()
        before = _lines(out)
        server.start()
        assert wait_for(lambda: _lines(out) >= before + 2 or run.poll() is not None, 30), "no window after the server came back"
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=20)
    finally:
        run.kill()
        server.kill()
    assert run.returncode == 130 and "Traceback" not in err, err
    records = [json.loads(line) for line in out.read_text().splitlines()]  # every line whole
    assert [r["window"] for r in records] == list(range(len(records)))
    starts = [r["start_frame"] for r in records]
    assert starts == sorted(set(starts))  # numbered on across the outage, never restarted
