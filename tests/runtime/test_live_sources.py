"""Live sources against a real RTSP server (GStreamer's, tests/rtsp_server.py): a camera that
goes away and comes back, a recording that ends. Each test stays under ~40 s."""

import json
import re
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest

from prp_deploy.contracts import validate
from tests.rtsp import RtspServer, free_port, require_rtsp_server, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _rtsp_server_installed():
    require_rtsp_server()


def _lines(path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def _windows_since(path, since: float) -> int:
    """Whole window records whose frames were read at or after `since` (wall-clock seconds):
    a loaded machine may still be writing windows of frames read before an outage."""
    if not path.exists():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    walls = [datetime.fromisoformat(json.loads(x)["wall_time"].replace("Z", "+00:00")).timestamp() for x in lines if x.endswith("\n")]
    return sum(w >= since for w in walls)


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
        restarted = time.time()
        server.start()
        assert wait_for(lambda: _windows_since(out, restarted) >= 2 or run.poll() is not None, 30), "no window after the server came back"
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=20)
    finally:
        run.kill()
        server.kill()
    assert run.returncode == 130 and "Traceback" not in err, err
    records = [json.loads(line) for line in out.read_text().splitlines()]  # every line whole
    for r in records:
        validate(r, "window", "a window record")
    assert [r["window"] for r in records] == list(range(len(records)))
    starts = [r["start_frame"] for r in records]
    assert starts == sorted(set(starts))  # numbered on across the outage, never restarted
    # Wall-clock time: non-decreasing, and the 2 s outage is a gap in it and in start_s alike.
    walls = [datetime.fromisoformat(r["wall_time"].replace("Z", "+00:00")).timestamp() for r in records]
    seconds = [r["start_s"] for r in records]
    assert walls == sorted(walls) and seconds == sorted(seconds)
    gap = max(range(1, len(records)), key=lambda i: seconds[i] - seconds[i - 1])
    assert seconds[gap] - seconds[gap - 1] >= 2.0 and abs((walls[gap] - walls[gap - 1]) - (seconds[gap] - seconds[gap - 1])) < 0.01
    assert time.time() - 600 < walls[0] <= time.time()  # the clock of now, not of 1970


def _recording(tmp_path, frames: int):
    from tests.conftest import index_frame
    from tests.rtsp import write_h264

    return write_h264(tmp_path / "clip.mp4", [index_frame(i % 37, 96, 72) for i in range(frames)])


def test_recording_ends_with_exit_0_and_nothing_replayed(exported, tmp_path):
    out = tmp_path / "out"
    with RtspServer(_recording(tmp_path, 100)) as server:
        t0 = time.time()
        run = subprocess.run([sys.executable, "-m", "prp_deploy", "run", server.url("clip"), "--model", str(exported),
                              "--out", f"{out}/"], capture_output=True, text=True, timeout=60)
        took = time.time() - t0
    assert run.returncode == 0 and "Traceback" not in run.stderr and "outage" not in run.stderr, run.stderr
    summary = json.loads((out / "summary.json").read_text())
    row = summary["sources"][0]
    assert row["status"] == "ok" and row["frames"] == 100 and row["outages"] == 0, row
    assert took < 30, took  # a 4 s recording, served in real time
    records = [json.loads(line) for line in (out / f"{row['output']}.jsonl").read_text().splitlines()]
    assert records and records[-1]["end_frame"] <= 100 and len(records) <= 100 // 4  # no more windows than its frames allow


def test_recording_cut_short_resumes_after_the_last_frame(exported, tmp_path):
    """The server dies mid-recording and comes back: the run waits (default flags, short waits),
    resumes after the last frame it had, and ends at the recording's end with every frame once."""
    out = tmp_path / "out"
    server = RtspServer(_recording(tmp_path, 250)).start()  # 10 s
    run = _start_run(server.url("clip"), exported, f"{out}/", "--reconnect-max-wait", "1")
    try:
        assert wait_for(lambda: any(_lines(p) >= 3 for p in out.glob("*clip.jsonl")) or run.poll() is not None, 30)
        server.kill()
        time.sleep(3.0)
        assert run.poll() is None, run.stderr.read()  # waiting, not ended
        server.start()
        _, err = run.communicate(timeout=40)
    finally:
        run.kill()
        server.kill()
    assert run.returncode == 0 and "Traceback" not in err, err
    summary = json.loads((out / "summary.json").read_text())
    validate(summary, "summary", "summary.json")
    row = summary["sources"][0]
    assert row["outages"] == 1 and row["reconnects"] == 1 and row["reconnect_attempts"] >= 1 and row["outage_s"] >= 3, row
    assert 245 <= row["frames"] <= 250, row  # each frame once, never replayed (one in the decoder at the cut may be lost)
    outage = [line for line in err.splitlines() if ": outage at frame" in line]
    back = [line for line in err.splitlines() if ": back after" in line]
    assert len(outage) == 1 and "reconnecting forever" in outage[0] and len(back) == 1, err
    records = [json.loads(line) for line in (out / f"{row['output']}.jsonl").read_text().splitlines()]
    starts = [r["start_frame"] for r in records]
    assert starts == sorted(set(starts)) and records[-1]["end_frame"] <= 250


def test_a_stalled_stream_is_an_outage_within_the_stall_timeout(exported, tmp_path):
    """The server freezes (SIGSTOP: connected, silent) — no read blocks past --stall-timeout;
    when it thaws the run reconnects and carries on."""
    out = tmp_path / "w.jsonl"
    server = RtspServer().start()
    run = _start_run(server.url("live"), exported, out, "--stall-timeout", "2", "--reconnect-wait", "0.2", "--reconnect-max-wait", "1")
    lines: list[str] = []
    rest = ""
    try:
        assert wait_for(lambda: _lines(out) >= 2 or run.poll() is not None, 30)
        server.proc.send_signal(signal.SIGSTOP)
        t0 = time.time()
        line = run.stderr.readline()
        while line and ": outage at frame" not in line:
            lines.append(line)
            line = run.stderr.readline()
        lines.append(line)
        noticed = time.time() - t0
        resumed = time.time()
        server.proc.send_signal(signal.SIGCONT)
        assert wait_for(lambda: _windows_since(out, resumed) >= 2 or run.poll() is not None, 30)
        run.send_signal(signal.SIGINT)
        rest = run.communicate(timeout=20)[1]
    finally:
        run.kill()
        server.proc.send_signal(signal.SIGCONT)
        server.kill()
    err = "".join(lines) + rest
    assert "no data for 2 s" in lines[-1] and noticed < 6, (noticed, err)
    assert ": back after" in err and run.returncode == 130 and "Traceback" not in err, err


def _everything_written(out, err: str) -> str:
    return err + "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json"))


def test_a_camera_with_a_password_an_outage_then_sigterm(exported, tmp_path):
    """systemd's and Docker's stop, after an outage, on a camera that asks for a password: exit
    143 within seconds, the summary printed, every output whole, the outage a gap in wall_time,
    and the password in no line and no file."""
    out = tmp_path / "out"
    server = RtspServer(user="cam:s3cret").start()
    url = server.url("live").replace("rtsp://", "rtsp://cam:s3cret@")
    run = _start_run(url, exported, f"{out}/", "--features", f"{out}/", "--segments", "--reconnect-wait", "0.2",
                     "--reconnect-max-wait", "1")
    try:
        assert wait_for(lambda: any(_lines(p) >= 3 for p in out.glob("*live.jsonl")) or run.poll() is not None, 30)
        server.kill()
        time.sleep(2.0)
        restarted = time.time()
        server.start()
        assert wait_for(lambda: sum(_windows_since(p, restarted) for p in out.glob("*live.jsonl")) >= 3 or run.poll() is not None, 30)
        t0 = time.time()
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=20)
        took = time.time() - t0
    finally:
        run.kill()
        server.kill()
    assert run.returncode == 143 and took < 5 and "Traceback" not in err, (took, err)
    assert "SIGTERM: stopping" in err and "stopped by SIGTERM" in err and re.search(r"frames \d+, windows \d+", err), err
    assert "s3cret" not in _everything_written(out, err) and "cam:***@" in err
    summary = json.loads((out / "summary.json").read_text())
    validate(summary, "summary", "summary.json")
    row = summary["sources"][0]
    assert summary["stopped_by"] == "SIGTERM" and row["stopped"] and row["status"] == "ok" and row["outages"] == 1, summary
    records = [json.loads(line) for line in (out / f"{row['output']}.jsonl").read_text().splitlines()]  # every line whole
    assert len(records) == row["windows"] and all(r["source"] == url.replace("s3cret", "***") for r in records)
    walls = [datetime.fromisoformat(r["wall_time"].replace("Z", "+00:00")).timestamp() for r in records]
    assert walls == sorted(walls) and max(b - a for a, b in zip(walls, walls[1:])) >= 2.0  # the outage, a gap
    import numpy as np

    assert np.load(out / f"{row['output']}.features.npy").shape[0] == row["windows"]  # the .npy closed whole, one row a window


def test_refused_not_found_and_unauthorized_each_say_so(exported, tmp_path):
    out = tmp_path / "out"
    with RtspServer(user="cam:s3cret") as server:
        wrong = server.url("live").replace("rtsp://", "rtsp://cam:wrong@")
        missing = server.url("nothing").replace("rtsp://", "rtsp://cam:s3cret@")
        anonymous = server.url("live")
        refused = f"rtsp://127.0.0.1:{free_port()}/live"
        r = subprocess.run([sys.executable, "-m", "prp_deploy", "run", wrong, missing, anonymous, refused, "--model", str(exported),
                            "--out", f"{out}/"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    reasons = {row["source"]: row["reason"] for row in json.loads((out / "summary.json").read_text())["sources"]}
    assert reasons[wrong.replace(":wrong@", ":***@")].endswith("the user name and password in the URL were refused")
    assert reasons[missing.replace(":s3cret@", ":***@")].endswith("not found: the server has no stream at /nothing")
    assert reasons[anonymous].endswith("the URL gives no user name and password")
    assert reasons[refused].endswith(f"connection refused (nothing listens at 127.0.0.1:{refused.split(':')[2].split('/')[0]}: "
                                     "is the camera or server up?)")
    everything = _everything_written(out, r.stderr)
    assert "s3cret" not in everything and "wrong" not in everything


def test_an_application_stops_a_live_stream_as_sigterm_does(exported):
    import threading

    from prp_deploy.runtime.api import Recognizer
    from prp_deploy.runtime.stopping import StopRequest

    stop = StopRequest()
    with RtspServer() as server:
        records = []
        for record in Recognizer(exported).stream(server.url("live"), stop=stop):
            records.append(record)
            if len(records) == 3:
                threading.Timer(0.2, stop.request, args=("the app is closing",)).start()  # from another thread
            assert len(records) < 60, "the stream did not stop"
    assert len(records) >= 3 and [r["window"] for r in records] == list(range(len(records)))
