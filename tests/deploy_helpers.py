"""A real local app for the deploy tests: releases are directories holding `app.py` (an HTTP
server), `current` is a symlink to one of them, and `appctl.py restart` really restarts the
process (kills the PID in the pidfile, starts the app from the resolved `current`, waits
until it listens). `appctl.py status` is the process check.

Release kinds: good (health ok), bad (health 503), degraded (health says degraded), boot
(health 503 "starting" for its first BOOT_SECONDS, then ok), crash
(exits at start, so it never listens), flaky (every third health request gets no answer
within the check's timeout: an Error, not a Failure; a connection merely dropped is retried
once by the probe engine, as for any idempotent request).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect.states import State

from tests.ports import free_port

BOOT_SECONDS = 5.0

APP = textwrap.dedent(
    '''
    """A release of the test app; MODE says how its health endpoint behaves."""
    import json
    import sys
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    MODE = "{mode}"
    FLAKY_HANG = 1.5  # longer than the checks' timeout: no answer in time
    BOOT = {boot}  # a "boot" release answers 503 "starting" this long after it started
    STARTED = time.monotonic()
    RELEASE = Path(__file__).resolve().parent.name
    HEALTH = {{
        "good": (200, {{"status": "ok"}}),
        "flaky": (200, {{"status": "ok"}}),
        "bad": (503, {{"status": "error", "error": "database migrations missing"}}),
        "degraded": (200, {{"status": "degraded"}}),
        "boot": (200, {{"status": "ok"}}),
    }}
    hits = 0


    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            global hits
            if self.path == "/health":
                hits += 1
                if MODE == "flaky" and hits % 3 == 0:
                    time.sleep(FLAKY_HANG)
                    self.close_connection = True
                    return
                status, body = HEALTH[MODE]
                if MODE == "boot" and time.monotonic() - STARTED < BOOT:
                    status, body = 503, {{"status": "starting"}}
                self.answer(status, json.dumps({{**body, "release": RELEASE}}), "application/json")
            elif self.path in ("/", "/login"):
                self.answer(200, f"<h1>{{RELEASE}}</h1>", "text/html")
            else:
                self.answer(404, "not found", "text/plain")

        def answer(self, status, text, kind):
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass


    if MODE == "crash":
        sys.exit("ImportError: this release cannot start")
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    '''
)

APPCTL = textwrap.dedent(
    '''
    """restart/status/stop for the test app, as a deploy tool's restart command would."""
    import argparse
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path


    def alive(pid):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"


    def stop(pidfile):
        try:
            pid = int(Path(pidfile).read_text())
        except (OSError, ValueError):
            return
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not alive(pid):
                    break
                time.sleep(0.02)
            else:
                os.kill(pid, signal.SIGKILL)
        Path(pidfile).unlink(missing_ok=True)


    def listening(port):
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0


    def restart(args):
        stop(args.pidfile)
        release = Path(args.app).resolve()
        with open(args.log, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, str(release / "app.py"), str(args.port)],
                cwd=release, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )
        Path(args.pidfile).write_text(str(process.pid))
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            if listening(args.port):
                print(f"started {release.name} as pid {process.pid}")
                return 0
            if process.poll() is not None:
                print(f"{release.name} exited {process.returncode} at start", file=sys.stderr)
                return 1
            time.sleep(0.02)
        print(f"{release.name} did not listen on {args.port} within {args.wait}s", file=sys.stderr)
        return 1


    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["restart", "status", "stop"])
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--app")
    parser.add_argument("--port", type=int)
    parser.add_argument("--log")
    parser.add_argument("--wait", type=float, default=5.0)
    args = parser.parse_args()
    if args.action == "restart":
        sys.exit(restart(args))
    if args.action == "stop":
        stop(args.pidfile)
        sys.exit(0)
    try:
        pid = int(Path(args.pidfile).read_text())
    except (OSError, ValueError):
        sys.exit("no pidfile")
    sys.exit(0 if alive(pid) else f"pid {pid} is not running")
    '''
)


@dataclass
class LocalApp:
    """One app under `root`: releases/, current, a pidfile, a log and a port."""

    root: Path
    port: int

    @classmethod
    def create(cls, root: Path) -> LocalApp:
        root.mkdir(parents=True, exist_ok=True)
        (root / "releases").mkdir(exist_ok=True)
        (root / "appctl.py").write_text(APPCTL)
        return cls(root, free_port())

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def pidfile(self) -> Path:
        return self.root / "app.pid"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_release(self, name: str, mode: str) -> Path:
        folder = self.releases / name
        folder.mkdir()
        (folder / "app.py").write_text(APP.format(mode=mode, boot=BOOT_SECONDS))
        return folder

    def restart_command(self, app_dir: Path | None = None) -> str:
        app = app_dir or self.current
        return (
            f"{sys.executable} {self.root / 'appctl.py'} restart --app {app} "
            f"--pidfile {self.pidfile} --port {self.port} --log {self.root / 'app.log'}"
        )

    def status_command(self) -> str:
        return f"{sys.executable} {self.root / 'appctl.py'} status --pidfile {self.pidfile}"

    def deploy(self, name: str) -> subprocess.CompletedProcess[str]:
        """What a pipeline does before `vigil verify-deploy`: switch current, restart."""
        temporary = self.root / "current.tmp"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(self.releases / name)
        os.replace(temporary, self.current)
        return self.restart()

    def restart(self, app_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        command = self.restart_command(app_dir)
        return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)

    def linked(self) -> str:
        return self.current.resolve().name

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None
        return None if state == "Z" else pid

    def stop(self) -> None:
        """Stop the app this test started (by its PID), waiting until it is gone."""
        pid = self.running_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while self.running_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.running_pid() is not None:
            os.kill(pid, signal.SIGKILL)

    def target(self, rollback: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
        """A deploy target checking this app; symlink rollback unless told otherwise."""
        target: dict[str, Any] = {
            "health": {
                "url": f"{self.url}/health",
                "conditions": ["[STATUS] == 200", "[BODY].status == any(ok, degraded)"],
                "timeout": "1s",
            },
            "pages": [f"{self.url}/", f"{self.url}/login"],
            "process": {"command": self.status_command(), "timeout": "5s"},
            "window": "600ms",
            "interval": "200ms",
            "failure_limit": 0,
            "consecutive_error_limit": 2,
            "lock_timeout": "30s",
            "rollback": rollback
            or {
                "type": "symlink",
                "releases_dir": str(self.releases),
                "current": str(self.current),
                "restart": self.restart_command(),
                "timeout": "20s",
            },
        }
        return target | settings


def write_config(
    path: Path, store_url: str, webhook_url: str, deploys: dict[str, dict[str, Any]]
) -> Path:
    """A config whose every severity routes to the webhook receiver."""
    config = {
        "store": {"url": store_url},
        "channels": {"hook": {"type": "webhook", "url": webhook_url}},
        "routes": {severity: ["hook"] for severity in ("critical", "high", "medium", "low")},
        "deploys": deploys,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def verify(release: str, config: str, *, dry_run: bool = False, target: str = "web") -> State:
    """Run deploy-verify in this process and return its final state."""
    from flows.deploy import deploy_verify

    state = deploy_verify(target, release, dry_run=dry_run, config_path=config, return_state=True)
    assert isinstance(state, State)
    return state


def rollback(config: str, to: str | None = None, *, target: str = "web") -> State:
    """Run deploy-rollback (what `vigil rollback` runs) in this process."""
    from flows.deploy import deploy_rollback

    state = deploy_rollback(target, to=to, config_path=config, return_state=True)
    assert isinstance(state, State)
    return state


def slack_text(body: Any) -> str:
    """Every text of a Slack message (fallback, header, fields, details), joined."""
    if isinstance(body, dict):
        return "\n".join(
            slack_text(v) for k, v in body.items() if k in ("text", "blocks", "fields")
        )
    if isinstance(body, list):
        return "\n".join(slack_text(item) for item in body)
    return body if isinstance(body, str) else ""
