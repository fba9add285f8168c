"""A small local service for the example config, so vigil does something real out of the box.

`/health` answers ok, `/api/health` answers degraded, and `/switchable` answers 200 or 503
depending on a switch kept in a file under $VIGIL_HOME (`vigil demo --switch off`), so a new
user can watch a monitor go DOWN and RECOVER without touching a real system.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from vigil.paths import vigil_home

DEFAULT_PORT = 8765


def switch_file() -> Path:
    return vigil_home() / "demo-switch"


def is_switched_on() -> bool:
    path = switch_file()
    return not path.exists() or path.read_text().strip() != "off"


def set_switch(on: bool) -> None:
    switch_file().write_text("on" if on else "off")


class DemoHandler(BaseHTTPRequestHandler):
    """Three endpoints with the health-body convention of the operations guides."""

    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, {"status": "ok"})
        elif self.path == "/api/health":
            self._answer(200, {"status": "degraded", "reason": "demo: cache warming"})
        elif self.path == "/switchable":
            if is_switched_on():
                self._answer(200, {"status": "ok"})
            else:
                self._answer(503, {"status": "down", "reason": "switched off"})
        else:
            self._answer(404, {"error": "not found"})

    def _answer(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the demo must not drown vigil's own output."""


def start_demo(host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """Serve the demo in a daemon thread; the caller shuts it down."""
    server = ThreadingHTTPServer((host, port), DemoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="vigil-demo", daemon=True).start()
    return server


INBOX_PORT = 8766


def start_inbox(
    show: Callable[[str], None], host: str = "127.0.0.1", port: int = INBOX_PORT
) -> ThreadingHTTPServer:
    """A local webhook receiver that prints each alert, so the example config's alerts are
    seen in the terminal before any real channel is set up."""

    class InboxHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                alert = json.loads(self.rfile.read(length) or b"{}")
                line = (
                    f"ALERT [{alert.get('severity')}] {alert.get('title')}: {alert.get('summary')}"
                )
            except ValueError:
                line = "ALERT (unreadable body)"
            show(line)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: only the alerts themselves are printed."""

    server = ThreadingHTTPServer((host, port), InboxHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="vigil-inbox", daemon=True).start()
    return server
