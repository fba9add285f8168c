"""A fast local HTTP target for benchmarks: aiohttp.web answering `/ok/<n>` with
`{"status": "ok"}`, in a subprocess of its own so it does not share the measured CPU."""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator


def serve(port: int) -> None:
    from aiohttp import web

    body = b'{"status":"ok"}'

    async def ok(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/ok/{n}", ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=2048)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_target() -> Iterator[str]:
    """Start the target in a subprocess; yield its base URL; stop it afterwards."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.targets", "--port", str(port)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
