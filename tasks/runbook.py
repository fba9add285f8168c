"""The runbook's own commands, as a drill runs them: the app started against the restored
database and the configured steps. Each runs through the shell from the config's folder in
a process group of its own, so it and everything it started can be stopped together at its
timeout; the groups are remembered on disk (`$VIGIL_HOME/drill-processes.json`) so the next
drill, or the cancelled drill's state hook, stops what a crashed drill left running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from contextlib import suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

from vigil.config import AppCheck, Monitor, RunbookStep
from vigil.durations import format_duration
from vigil.paths import vigil_home
from vigil.recovery import Finding
from vigil.redact import redact

STOP_GRACE_S = 5.0
OUTPUT_TAIL = 6


def probe(monitors: Sequence[Monitor]) -> list[Finding]:
    """Probe and judge each monitor with the sweep's engine: one finding each (imported
    here: only a drill with fallbacks or an app check pays for the HTTP client)."""
    from tasks.probes import probe_batch
    from vigil.sweep.checks import evaluate

    checks = evaluate(list(monitors), probe_batch(monitors, concurrency=max(len(monitors), 1)))
    findings = []
    for check in checks:
        name = check.monitor.name
        if check.verdict == "ok":
            findings.append(Finding(name, True, "serving", _observed(check.obs)))
            continue
        failed = "; ".join(check.failed) or check.obs.error or check.verdict
        problem = f"{name} is not serving: {failed}"
        findings.append(Finding(name, False, "serving", failed, problem))
    return findings


def _observed(obs: Any) -> str:
    parts = [f"status {obs.status}"] if obs.status is not None else []
    if obs.response_time is not None:
        parts.append(f"{obs.response_time * 1000:.0f} ms")
    return ", ".join(parts) or "answered"


def pid_file() -> Path:
    return vigil_home() / "drill-processes.json"


def _remember(pgids: list[int]) -> None:
    pid_file().write_text(json.dumps(pgids))


def remembered() -> list[int]:
    try:
        return [int(p) for p in json.loads(pid_file().read_text())]
    except (OSError, ValueError, TypeError):
        return []


def spawn(command: str, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """A runbook command in its own process group (so it and its children can be stopped
    together), remembered on disk so a crashed drill's processes are found next time."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            shell=True,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _remember([*remembered(), process.pid])
    return process


def stop_group(pgid: int, grace: float = STOP_GRACE_S) -> bool:
    """SIGTERM the group, SIGKILL what is left after `grace`; True if anything was there."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    ends = time.monotonic() + grace
    while time.monotonic() < ends:
        if not _group_alive(pgid):
            return True
        time.sleep(0.05)
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    return True


def _group_alive(pgid: int) -> bool:
    with suppress(ChildProcessError):
        os.waitpid(-pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_remembered() -> list[int]:
    """Stop every process group a drill started and did not stop; returns those found."""
    found = [pgid for pgid in remembered() if stop_group(pgid)]
    pid_file().unlink(missing_ok=True)
    return found


def tail(log: Path, lines: int = OUTPUT_TAIL) -> str:
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return ""
    return redact(" | ".join(text.splitlines()[-lines:]))


def run_step(step: RunbookStep, env: dict[str, str], cwd: Path, logs: Path) -> Finding:
    """One runbook step to its end, or stopped at its timeout."""
    log = logs / f"step-{re.sub(r'[^A-Za-z0-9_.-]', '_', step.name)}.log"
    started = time.monotonic()
    process = spawn(step.command, env, cwd, log)
    limit = format_duration(step.timeout)
    try:
        code = process.wait(timeout=step.timeout.total_seconds())
    except subprocess.TimeoutExpired:
        stop_group(process.pid)
        process.wait()
        problem = f"step {step.name!r} did not finish within its {limit} timeout; stopped"
        return Finding(f"step {step.name}", False, f"done within {limit}", "timed out", problem)
    took = format_duration(time.monotonic() - started)
    if code != 0:
        output = tail(log)
        problem = f"step {step.name!r} failed (exit {code})" + (f": {output}" if output else "")
        return Finding(f"step {step.name}", False, "exit 0", f"exit {code}", problem)
    return Finding(f"step {step.name}", True, f"done within {limit}", f"exit 0 in {took}")


def app_check(check: AppCheck, env: dict[str, str], cwd: Path, logs: Path) -> Finding:
    """Start the app against the restored database, wait until its health endpoint passes
    (or the timeout), then stop it: with its stop command, and its process group anyway."""
    log = logs / "app.log"
    process = spawn(check.start, env, cwd, log)
    try:
        return _wait_healthy(check, process, log)
    finally:
        _stop_app(check, process, env, cwd, logs)


def _wait_healthy(check: AppCheck, process: subprocess.Popen[bytes], log: Path) -> Finding:
    started = time.monotonic()
    ends = started + check.timeout.total_seconds()
    health = Monitor(name="app health", url=check.health, timeout=timedelta(seconds=5))
    last = "never answered"
    while True:
        left = ends - time.monotonic()
        if left <= 0:
            break
        code = process.poll()
        if code not in (None, 0):
            output = tail(log)
            problem = f"the app's start command exited {code} before it was healthy" + (
                f": {output}" if output else ""
            )
            return Finding("app health", False, "healthy", f"start exited {code}", problem)
        attempt = health.model_copy(update={"timeout": timedelta(seconds=min(5.0, left))})
        finding = probe([attempt])[0]
        if finding.ok:
            took = format_duration(time.monotonic() - started)
            return Finding("app health", True, "healthy", f"{finding.observed}, after {took}")
        last = finding.observed
        time.sleep(min(0.5, max(ends - time.monotonic(), 0)))
    limit = format_duration(check.timeout)
    problem = f"the app never became healthy at {check.health} within {limit} (last: {last})"
    return Finding("app health", False, f"healthy within {limit}", last, problem)


def _stop_app(
    check: AppCheck, process: subprocess.Popen[bytes], env: dict[str, str], cwd: Path, logs: Path
) -> None:
    if check.stop:
        stop = RunbookStep(name="stop app", command=check.stop, timeout=timedelta(seconds=60))
        run_step(stop, env, cwd, logs)
    stop_group(process.pid)
    process.wait()
