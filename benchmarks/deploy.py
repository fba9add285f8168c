"""What does vigil's deploy verification cost over the shell loop it replaces?

Against a healthy local app (health endpoint, two pages, a process check), this runs

- the `deploy-verify` flow (Prefect API, store records, artifacts, lock), and
- a plain loop doing what a `while curl ...; sleep` script does: the same checks one after
  another (a new connection per request, as curl makes), on the same schedule,

for the same window and interval, and prints each one's wall time beyond the window and its
cost per measurement. A second round with a 1 ms interval runs measurements back to back,
which is where per-measurement cost shows.

    python benchmarks/deploy.py [--window 10] [--interval 1] [--saturate 3]

Uses $PREFECT_API_URL when set, else Prefect's test harness (its start-up is not timed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from vigil.runtime import summary_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass(frozen=True)
class Timing:
    name: str
    window: float
    wall: float
    measurements: int

    @property
    def beyond_window(self) -> float:
        return self.wall - self.window


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"status": "ok"}).encode() if self.path == "/health" else b"<h1>ok</h1>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the benchmark prints its own table."""


@contextlib.contextmanager
def healthy_app() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def target_for(base: str, window: float, interval: float) -> dict[str, Any]:
    return {
        "health": {
            "url": f"{base}/health",
            "conditions": ["[STATUS] == 200", "[BODY].status == ok"],
        },
        "pages": [f"{base}/", f"{base}/login"],
        "process": {"command": f"kill -0 {os.getpid()}"},
        "window": f"{window}s",
        "interval": f"{interval}s",
        "rollback": {"type": "command", "command": "true"},
    }


def shell_loop(target: dict[str, Any], window: float, interval: float) -> Timing:
    """`while` + curl + the process command, on vigil's schedule, judged the same way: one
    check after another, a new connection per request (no keep-alive, as curl does)."""
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(limits=no_keepalive) as client:
        started = time.monotonic()
        due, count = started, 0
        while True:
            time.sleep(max(due - time.monotonic(), 0.0))
            began = time.monotonic()
            count += 1
            if not measure_like_curl(client, target):
                raise RuntimeError("the healthy app failed a check: benchmark invalid")
            if began - started >= window:
                break
            due = max(began + interval, time.monotonic())
        return Timing("shell loop", window, time.monotonic() - started, count)


def measure_like_curl(client: httpx.Client, target: dict[str, Any]) -> bool:
    health = client.get(target["health"]["url"], timeout=5)
    ok = health.status_code == 200 and health.json().get("status") == "ok"
    ok &= all(client.get(page, timeout=5).status_code == 200 for page in target["pages"])
    return ok and subprocess.run(target["process"]["command"], shell=True).returncode == 0


def vigil_run(config: Path, window: float, name: str) -> Timing:
    from prefect.states import State

    from flows.deploy import deploy_verify

    started = time.monotonic()
    state = deploy_verify("web", name, config_path=str(config), return_state=True)
    wall = time.monotonic() - started
    assert isinstance(state, State)
    summary = summary_of(state)
    if not state.is_completed() or not isinstance(summary, dict):
        raise RuntimeError(f"vigil did not pass the healthy app: {state.message}")
    return Timing("vigil deploy-verify", window, wall, summary["measurements"])


def both(base: str, folder: Path, window: float, interval: float, label: str) -> list[Timing]:
    """The shell loop, then vigil, on the same healthy app, window and interval."""
    target = target_for(base, window, interval)
    config = folder / f"{label}.yaml"
    store = {"url": f"sqlite:///{folder / 'vigil.db'}"}
    config.write_text(yaml.safe_dump({"store": store, "deploys": {"web": target}}))
    return [shell_loop(target, window, interval), vigil_run(config, window, label)]


def report_overhead(title: str, timings: list[Timing]) -> None:
    print(f"\n{title}")
    print(f"  {'':22} {'wall':>8} {'beyond window':>14} {'measurements':>13}")
    for t in timings:
        print(f"  {t.name:22} {t.wall:7.2f}s {t.beyond_window:13.2f}s {t.measurements:13d}")
    loop, vigil = timings
    print(f"  vigil's extra wall time: {vigil.beyond_window - loop.beyond_window:.2f}s")


def report_cost(title: str, timings: list[Timing]) -> None:
    """Back to back, the last measurement starts once the window has elapsed, so the window
    divided by the measurements before it is the cost of one measurement."""
    print(f"\n{title}")
    costs = [t.window / (t.measurements - 1) for t in timings]
    for t, cost in zip(timings, costs, strict=True):
        print(f"  {t.name:22} {t.measurements:5d} measurements {cost * 1000:8.1f}ms each")
    print(f"  per-measurement cost ratio (vigil / loop): {costs[1] / costs[0]:.1f}x")


@contextlib.contextmanager
def prefect_api() -> Iterator[None]:
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds (default 1)")
    parser.add_argument("--saturate", type=float, default=3.0, help="back-to-back window (s)")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="vigil-bench-")
    os.environ.setdefault("VIGIL_HOME", home)
    os.environ.setdefault("PREFECT_HOME", str(Path(home) / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with healthy_app() as base, prefect_api():
        folder = Path(home)
        # The first flow run in a process pays for imports and client set-up: shown apart.
        first = both(base, folder, 0.2, 0.1, "first")
        report_overhead("first flow run in this process (window 0.2s, interval 0.1s)", first)
        timings = both(base, folder, args.window, args.interval, "realistic")
        report_overhead(f"window {args.window}s, interval {args.interval}s", timings)
        timings = both(base, folder, args.saturate, 0.001, "saturated")
        report_cost(f"back to back (window {args.saturate}s, interval 1ms)", timings)


if __name__ == "__main__":
    main()
