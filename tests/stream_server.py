"""A throttled HTTP server of one video, for the tests of streams that die and come back:
`python tests/stream_server.py FILE PORT BYTES_PER_CHUNK SECONDS_PER_CHUNK`."""

import http.server
import sys
import time

path, port, chunk, delay = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
data = open(path, "rb").read()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "video/x-msvideo")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for i in range(0, len(data), chunk):
                self.wfile.write(data[i : i + chunk])
                self.wfile.flush()
                time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client went away (the run stopped reading): nothing left to send

    def log_message(self, *args):
        return  # quiet: the test reads the client's stderr, not the server's


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
