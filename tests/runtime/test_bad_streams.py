"""Bad network input, each one line while the other sources go on: a server that answers with
garbage, a stream whose resolution changes mid-way; and how outages are waited (Reconnect)."""

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from prp_deploy.runtime.decoders import Reconnect
from tests.runtime.conftest import LEVELS
from tests.runtime.test_many import grey_video
from tests.runtime.test_runtime import _free_port, _serve, cli

REPO = Path(__file__).resolve().parents[2]


def _garbage_server() -> str:
    """HTTP 200 and random bytes, as a camera with a broken encoder might send."""
    import http.server

    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()
            self.wfile.write(np.random.default_rng(0).integers(0, 256, 200_000, np.uint8).tobytes())

        def log_message(self, *args):
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/cam.mp4"


def _ts_of_two_sizes(path: Path) -> Path:
    """MPEG-TS: 40 dark frames at 64x48, then 40 bright ones at 96x72 (the camera reconfigured)."""
    import av

    with open(path, "wb") as out:
        for (w, h), level in (((64, 48), LEVELS["dark"]), ((96, 72), LEVELS["bright"])):
            part = path.with_suffix(f".{w}.ts")
            with av.open(str(part), "w") as ts:
                stream = ts.add_stream("libx264", rate=25)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                for _ in range(40):
                    ts.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((h, w, 3), level, np.uint8), format="bgr24")))
                ts.mux(stream.encode())
            out.write(part.read_bytes())  # TS concatenates: a new SPS mid-stream, as a reconfigured camera sends
    return path


def test_garbage_and_a_resolution_change_one_line_each_the_others_go_on(brightness_model, tmp_path):
    video = grey_video(tmp_path / "good.avi", [(LEVELS["mid"], 40)])
    port = _free_port()
    server = _serve(_ts_of_two_sizes(tmp_path / "cam.ts"), port)
    try:
        out = tmp_path / "out"
        r = cli("run", str(video), _garbage_server(), f"http://127.0.0.1:{port}/cam.ts", "--model", str(brightness_model),
                "--allow-unverified", "--out", str(out), "--overlay", str(out), "--reconnect", "0", "-q")
    finally:
        server.kill()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(re.findall(r"cam.mp4: cannot be opened as a video stream \(Input/output error\)", r.stderr)) == 1, r.stderr
    changed = [line for line in r.stderr.splitlines() if "resolution changed from 64x48 to 96x72 at frame 40" in line]
    assert len(changed) == 1, r.stderr
    rows = {Path(x["source"]).name: x for x in map(json.loads, (out / "sources.jsonl").read_text().splitlines())}
    assert rows["good.avi"]["status"] == "ok" and rows["cam.ts"]["status"] == "ok" and rows["cam.mp4"]["status"] == "failed"
    assert rows["cam.ts"]["frames"] == 80
    records = [json.loads(line) for line in (out / f"{rows['cam.ts']['output']}.jsonl").read_text().splitlines()]
    assert not any("wall_time" in x for x in records)  # an HTTP file is a file: its times are from its start
    labels = [x["top"][0]["label"] for x in records]
    assert labels[0] == "dark" and labels[-1] == "bright"  # both sizes reach the model, each resized by the one rule
    assert (out / f"{rows['cam.ts']['output']}.overlay.mp4").stat().st_size > 0


def test_reconnect_waits_double_up_to_the_cap_jittered_down_to_half():
    policy = Reconnect(attempts=None, wait_s=0.5, max_wait_s=4.0)
    for attempt, full in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (60, 4.0)):
        waits = [policy.delay(attempt) for _ in range(200)]
        assert full / 2 <= min(waits) and max(waits) <= full and np.std(waits) > 0, (attempt, min(waits), max(waits))
    assert "forever" in policy.describe() and "up to 3 times" in Reconnect(attempts=3).describe()


def test_reconnect_flag_takes_a_count_or_forever_and_refuses_the_rest(brightness_model, tmp_path):
    r = subprocess.run([sys.executable, "-m", "prp_deploy", "run", "x.mp4", "--reconnect", "sometimes"], capture_output=True, text=True)
    assert r.returncode == 2 and "forever" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli("run", "rtsp://no-such-camera.invalid/live", "--model", str(brightness_model), "--allow-unverified")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 1 and len(errors) == 1 and "unknown host no-such-camera.invalid" in errors[0] and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "prp_deploy", "run", "x.mp4", "--reconnect-wait", "5", "--reconnect-max-wait", "1"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "--reconnect-max-wait" in r.stderr and "Traceback" not in r.stderr, r.stderr
