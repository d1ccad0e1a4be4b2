"""`run --metrics PORT` and `Recognizer.stream(..., metrics=PORT)`: Prometheus text scraped over
HTTP from the real endpoint (prometheus-client's server) and read with Prometheus' own parser,
during a real RTSP run whose server is killed and restarted."""

import gc
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families  # the metrics extra, in the dev install

from tests.conftest import shared_clips
from tests.rtsp import RtspServer, free_port, require_rtsp_server, wait_for


def scrape(port: int) -> dict:
    """{(sample name, source or engine label): value}, or {} while nothing listens yet."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except (urllib.error.URLError, ConnectionError):
        return {}
    return {(s.name, s.labels.get("source") or s.labels.get("engine", "")) : s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("prp_") and "le" not in s.labels}


def _source(m: dict, name: str) -> float:
    values = [v for (n, _), v in m.items() if n == name]
    assert len(values) <= 1, m
    return values[0] if values else -1.0


@pytest.mark.slow
def test_a_live_run_s_counters_move_and_an_outage_is_counted(exported, tmp_path):
    require_rtsp_server()
    server, port = RtspServer().start(), free_port()
    run = subprocess.Popen([sys.executable, "-m", "prp_deploy", "run", server.url("live"), "--model", str(exported),
                            "--out", str(tmp_path / "w.jsonl"), "--metrics", str(port), "--reconnect-wait", "0.2",
                            "--reconnect-max-wait", "0.5", "--stall-timeout", "2"], stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: _source(scrape(port), "prp_source_windows_total") >= 2 or run.poll() is not None, 30), "no windows counted"
        first = scrape(port)
        moving = ("prp_source_frames_read_total", "prp_source_windows_total")
        # Both counters move, each in its own time (windows of frames already read can come between two scrapes).
        def moved() -> bool:
            now = scrape(port)
            return all(_source(now, c) > _source(first, c) for c in moving)

        assert wait_for(moved, 10), (first, scrape(port))
        second = scrape(port)  # counters only grow: still past `first`
        for counter in moving:
            assert _source(second, counter) > _source(first, counter) > 0, counter
        assert _source(second, "prp_source_open") == 1 and 0 <= _source(second, "prp_source_seconds_since_last_frame") < 2
        assert _source(second, "prp_source_outages_total") == 0 and _source(second, "prp_source_frames_dropped_total") >= 0
        calls = second[("prp_engine_batch_latency_seconds_count", "onnxruntime-cpu")]
        # Every window went through the engine once (a batch is observed just before its windows are counted).
        assert calls >= 1 and second[("prp_engine_batch_size_sum", "onnxruntime-cpu")] >= _source(second, "prp_source_windows_total")

        server.kill()  # the camera goes away: counted as an outage once the stream is seen to stop
        assert wait_for(lambda: _source(scrape(port), "prp_source_outages_total") == 1, 20), scrape(port)
        down = scrape(port)
        time.sleep(1.0)
        later = scrape(port)
        assert _source(later, "prp_source_outage_seconds_total") >= _source(down, "prp_source_outage_seconds_total") + 0.9  # the outage in progress
        assert _source(later, "prp_source_seconds_since_last_frame") > 1 and _source(later, "prp_source_open") == 1
        assert _source(later, "prp_source_frames_read_total") == _source(down, "prp_source_frames_read_total")

        server.start()
        assert wait_for(lambda: _source(scrape(port), "prp_source_reconnects_total") == 1 and
                        _source(scrape(port), "prp_source_frames_read_total") > _source(later, "prp_source_frames_read_total"), 30)
        back = scrape(port)
        assert _source(back, "prp_source_outages_total") == 1 and _source(back, "prp_source_outage_seconds_total") >= 1
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
    finally:
        run.kill()
        server.kill()
    assert run.returncode == 143 and "Traceback" not in err and f"metrics: http://127.0.0.1:{port}/metrics" in err, err
    assert scrape(port) == {}  # the endpoint ends with the run


def test_metrics_that_cannot_be_served_are_one_line_errors(exported, tmp_path):
    video = str(shared_clips("ucf101") / "v_BaseballPitch_g03_c01.avi")
    out = tmp_path / "w.jsonl"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "prp_deploy", "run", video, "--model", str(exported), "--out", str(out),
                            "--metrics", str(port)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr and not out.exists(), r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"error: --metrics: cannot listen on 127.0.0.1:{port}: Address already in use", r.stderr
    # Without the extra: the command names it (prometheus_client made unimportable in that process).
    code = "import sys; sys.modules['prometheus_client'] = None; from prp_deploy.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code, "run", video, "--model", str(exported), "--out", str(out), "--metrics", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and not out.exists(), r.stderr
    assert r.stderr.strip().splitlines()[-1] == "error: --metrics needs prometheus-client: pip install 'prp-deploy[metrics]'", r.stderr


def test_the_python_api_serves_them_while_its_stream_lasts(exported):
    from prp_deploy.runtime.api import Recognizer

    video = shared_clips("ucf101") / "v_BaseballPitch_g03_c01.avi"
    rec, port = Recognizer(exported), free_port()
    stream = rec.stream(video, metrics=port, batch=2)
    for i, _ in enumerate(stream):
        if i == 3:
            during = scrape(port)
            break
    assert _source(during, "prp_source_windows_total") >= 4 and _source(during, "prp_source_frames_read_total") > 0
    assert during[("prp_engine_batch_size_count", "onnxruntime-cpu")] >= 2
    stream.close()
    assert scrape(port) == {}
    # A stream asked for and dropped unstarted frees its port too.
    rec.stream(video, metrics=port)
    gc.collect()
    with socket.socket() as again:
        # SO_REUSEADDR: the scrapes' closed connections leave TIME_WAIT on the port; only a listener refuses this bind.
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()
