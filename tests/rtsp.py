"""Drives tests/rtsp_server.py (GStreamer's RTSP server, a real process) for the live-source
tests: start it, kill it mid-stream as a camera's reboot would, start it again on the same port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parent / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, where python3-gi and GStreamer's bindings live
INSTALL = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"


def require_rtsp_server() -> None:
    """Skip without GStreamer's RTSP server (fail under CI, whose .ci/run installs it)."""
    probe = None
    if shutil.which(SYSTEM_PYTHON):
        probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0');"
                                "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
                                "assert Gst.ElementFactory.find('openh264enc') and Gst.ElementFactory.find('qtdemux')"],
                               capture_output=True, text=True)
    if probe is None or probe.returncode != 0:
        why = f"GStreamer's RTSP server is missing (apt-get install {INSTALL})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the RTSP tests: {why}")
        pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """`rtsp://127.0.0.1:PORT/live` (an endless 25 fps pattern) and, given a clip, `/clip`;
    given `user` ("name:password"), both ask for it."""

    def __init__(self, clip: Path | None = None, port: int | None = None, user: str | None = None):
        self.clip, self.port, self.user = clip, port or free_port(), user
        self.proc: subprocess.Popen | None = None

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    def start(self) -> "RtspServer":
        args = [SYSTEM_PYTHON, str(SERVER), str(self.port)] + (["--clip", str(self.clip)] if self.clip else []) + (
            ["--user", self.user] if self.user else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # "ready PORT" once it listens
        if not line.startswith("ready"):
            self.proc.kill()
            raise RuntimeError(f"the RTSP server did not start: {line}{self.proc.stderr.read()}")
        return self

    def kill(self) -> None:
        """SIGKILL, as a power cut: no teardown reaches the clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "RtspServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()


def write_h264(path: Path, frames, fps: int = 25) -> Path:
    """An H.264 .mp4 of BGR frames (PyAV's libx264), the codec cameras and NVRs serve."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(fps)}  # a keyframe a second: a client that joins late waits at most that
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="bgr24")))
        out.mux(stream.encode())
    return path


def wait_for(predicate, timeout: float, poll: float = 0.05) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False
