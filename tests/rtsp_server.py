"""A real RTSP server (GStreamer's gst-rtsp-server) for the tests of live sources.

Run with the *system* Python, which has PyGObject and Debian's GStreamer (`.ci/run` installs
python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad):

    /usr/bin/python3 tests/rtsp_server.py PORT [--clip FILE.mp4] [--user NAME:PASSWORD]

Mounts `/live`, an endless live test pattern (H.264, 25 fps, like a camera), and with
--clip, `/clip`: the H.264 recording in FILE.mp4, whose length the SDP announces. With
--user, every mount asks for that user (Basic auth), as a camera does. Prints `ready PORT`
once it listens; runs until killed.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LIVE = ("( videotestsrc is-live=true pattern=ball ! video/x-raw,width=96,height=72,framerate=25/1 "
        "! videoconvert ! openh264enc ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )")
CLIP = "( filesrc location={} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"


def factory(launch: str, shared: bool, user: str | None) -> GstRtspServer.RTSPMediaFactory:
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(launch)
    f.set_shared(shared)  # one live pipeline for every client, as a camera has one sensor
    if user:  # only the "camera" role may see and play it
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role("camera")
        permissions.add_permission_for_role("camera", "media.factory.access", True)
        permissions.add_permission_for_role("camera", "media.factory.construct", True)
        f.set_permissions(permissions)
    return f


def require(server: GstRtspServer.RTSPServer, user: str) -> None:
    name, password = user.split(":", 1)
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "camera")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(name, password), token)
    server.set_auth(auth)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--clip")
    ap.add_argument("--user", help="NAME:PASSWORD a client must give")
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    if args.user:
        require(server, args.user)
    mounts = server.get_mount_points()
    mounts.add_factory("/live", factory(LIVE, shared=True, user=args.user))
    if args.clip:
        mounts.add_factory("/clip", factory(CLIP.format(args.clip), shared=False, user=args.user))
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    print(f"ready {args.port}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
