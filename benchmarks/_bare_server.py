"""The baseline server of figure 4: werkzeug's own threaded dev server, HTTP/1.1 handler,
serving the bare app on a unix socket. Usage: ``python _bare_server.py SOCKET_PATH``."""

from __future__ import annotations

import signal
import sys

from werkzeug.serving import WSGIRequestHandler, make_server

from _socket_load import canned
from _workload import bare_app


class Handler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, *args: object, **kwargs: object) -> None:
        pass  # like `fakedriver serve --quiet`: no per-request log


def main() -> None:
    server = make_server(
        f"unix://{sys.argv[1]}", 0, bare_app(canned()), threaded=True, request_handler=Handler
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
