"""The demo's health endpoint: a tiny HTTP server the demo starts and stops itself."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        healthy = self.path == "/health"
        body = b'{"status": "ok"}' if healthy else b'{"error": "not found"}'
        self.send_response(200 if healthy else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the demo shows the monitor's report instead


class HealthEndpoint:
    """`with HealthEndpoint() as endpoint:` serves GET /health on a free loopback port."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The health URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/health"

    def __enter__(self) -> HealthEndpoint:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
