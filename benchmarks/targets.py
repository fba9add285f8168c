"""A fast local HTTP target for benchmarks and tests: `/ok/<n>` answers `{"status":"ok"}`.

aiohttp.web, in a process of its own so it does not share the measured client's event loop
or GIL. It is the fastest server installed here: uvicorn without httptools parses HTTP with
h11 in pure Python, several times slower per request.

    .venv/bin/python -m benchmarks.targets --port 8123
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

BODY = b'{"status":"ok"}'
# `python -m benchmarks...` works from the checkout, not from an installed vigil.
ROOT = Path(__file__).resolve().parents[1]


def serve(port: int) -> None:
    from aiohttp import web

    async def ok(request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_get("/ok/{n}", ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_target(startup: float = 20.0) -> Iterator[str]:
    """Start the target in a subprocess; yield its base URL once it answers; stop it."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.targets", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(process, f"{base}/ok/0", startup)
        yield base
    finally:
        process.terminate()
        process.wait(10)


def _wait_until_answering(process: subprocess.Popen[bytes], url: str, startup: float) -> None:
    deadline = time.monotonic() + startup
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the benchmark target exited ({process.returncode})")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:
            if answer.read() == BODY:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the benchmark target did not answer {url} within {startup:.0f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
