"""pm2, the process manager, as the deploy check sees it: its own process list (`pm2 jlist`)
read under the app's PM2_HOME, and the tail of the app's error log when it failed.

`pm2 pid web` is no check: it exits 0 for an errored app (printing 0), for an app that does
not exist, and under another PM2_HOME (where it even starts an empty daemon). `jlist` says
each instance's status and restart count. vigil never starts a daemon: when none runs under
the configured PM2_HOME (no live `pm2.pid`), the app is not running there, and the check
says so instead of asking pm2 (which would start one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tasks.shell import run_command, strip_ansi
from vigil.config import Pm2Check
from vigil.deploy.verdict import Pm2Seen
from vigil.redact import redact

LOG_TAIL_BYTES = 4096
LOG_TAIL_LINES = 10
LOG_LINE_CHARS = 300


def pm2_home(check: Pm2Check) -> str:
    """The PM2_HOME the app runs under: configured, else pm2's own default (~/.pm2)."""
    if check.home:
        return str(Path(check.home).expanduser())
    return os.environ.get("PM2_HOME") or str(Path.home() / ".pm2")


def read_pm2(check: Pm2Check, timeout: float) -> tuple[Pm2Seen | None, str | None, str | None]:
    """(what pm2 said about the app, why it could not be read, the app's error log path)."""
    home = pm2_home(check)
    if not _daemon_alive(Path(home)):
        why = f"no pm2 daemon runs under PM2_HOME={home}, so {check.app} is not running there"
        return Pm2Seen(check.app, home, missing=why), None, None
    env = {"PM2_HOME": home}
    run = run_command(f"{check.bin} jlist", timeout=timeout, env=env, tail=None)
    if not run.ok:
        tail = run.output.strip().splitlines()[-1:] if run.output.strip() else []
        return None, "; ".join([f"`{check.bin} jlist` {run.error}", *tail]), None
    try:
        entries = _json_list(run.output)
    except ValueError as exc:
        return None, f"`{check.bin} jlist` printed no process list ({exc})", None
    return _seen(check.app, home, entries)


def error_log_tail(path: str | None) -> str:
    """The last lines of the app's error log, colours stripped and redacted."""
    if not path:
        return ""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(log.tell() - LOG_TAIL_BYTES, 0))
            raw = log.read()
    except OSError:
        return ""
    lines = [line for line in strip_ansi(raw.decode("utf-8", errors="replace")).splitlines()]
    return redact("\n".join(_collapsed([line[:LOG_LINE_CHARS] for line in lines if line.strip()])))


def _collapsed(lines: list[str]) -> list[str]:
    """The last lines, a line repeated by a crash loop shown once with its count."""
    runs: list[tuple[str, int]] = []
    for line in lines:
        if runs and runs[-1][0] == line:
            runs[-1] = (line, runs[-1][1] + 1)
        else:
            runs.append((line, 1))
    return [line if n == 1 else f"{line} (×{n})" for line, n in runs[-LOG_TAIL_LINES:]]


def _seen(app: str, home: str, entries: list[Any]) -> tuple[Pm2Seen | None, str | None, str | None]:
    mine = [e for e in entries if isinstance(e, dict) and e.get("name") == app]
    if not mine:
        names = sorted({str(e.get("name")) for e in entries if isinstance(e, dict)})
        known = ", ".join(names) or "none"
        why = f"no app named {app} under PM2_HOME={home} (apps there: {known})"
        return Pm2Seen(app, home, missing=why), None, None
    envs = [e.get("pm2_env") or {} for e in mine]
    statuses = tuple(str(env.get("status", "unknown")) for env in envs)
    restarts = sum(int(env.get("restart_time") or 0) for env in envs)
    exec_path = envs[0].get("pm_exec_path")
    log_path = envs[0].get("pm_err_log_path")
    seen = Pm2Seen(app, home, statuses, restarts, str(exec_path) if exec_path else None)
    return seen, None, str(log_path) if log_path else None


def _json_list(output: str) -> list[Any]:
    """pm2 may print a notice before the JSON (an update, a daemon message): skip to it."""
    start = output.find("[")
    if start < 0:
        raise ValueError("no JSON array in its output")
    parsed = json.loads(output[start:])
    if not isinstance(parsed, list):
        raise ValueError("its JSON is not a list")
    return parsed


def _daemon_alive(home: Path) -> bool:
    try:
        pid = int((home / "pm2.pid").read_text().strip())
        os.kill(pid, 0)
    except PermissionError:  # alive, another user's
        return True
    except (OSError, ValueError):
        return False
    return True
