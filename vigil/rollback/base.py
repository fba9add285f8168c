"""What every rollback strategy shares: the request, the plan, the result, and how a command
runs on the target's host.

A plan is made before anything changes, so a dry run can say exactly what would happen and
the verification record can name the release it would restore. Executing a plan runs its
steps in order and stops at the first that fails; the whole rollback shares one deadline
(the strategy's `timeout`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vigil.durations import format_duration
from vigil.redact import redact

# Enough of a command's output to see why it failed, not a whole build log.
OUTPUT_TAIL = 4000


@dataclass(frozen=True)
class StepRun:
    """One step as it ran: a command, or something vigil did itself (exit_code None)."""

    action: str
    ok: bool
    exit_code: int | None = None
    output: str = ""
    error: str | None = None
    seconds: float = 0.0

    def line(self) -> str:
        mark = "ok" if self.ok else "FAILED"
        why = f" ({self.error})" if self.error else ""
        return f"{mark} in {format_duration(self.seconds)}: {self.action}{why}"


@dataclass(frozen=True)
class Request:
    """A rollback to plan: away from `release`, to `to` if given, else to the newest release
    in `known_good` the strategy can use."""

    target: str
    release: str | None
    to: str | None = None
    known_good: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What a rollback would do, in words; `problem` says why it cannot be done at all."""

    strategy: str
    target: str
    from_release: str | None
    to_release: str | None
    actions: tuple[str, ...]
    problem: str | None = None

    def describe(self) -> str:
        if self.problem:
            return f"cannot roll back ({self.strategy}): {self.problem}"
        return f"{self.strategy} rollback: " + "; then ".join(self.actions)


@dataclass(frozen=True)
class Result:
    plan: Plan
    steps: tuple[StepRun, ...]

    @property
    def ok(self) -> bool:
        return self.plan.problem is None and all(step.ok for step in self.steps)

    def failure(self) -> str | None:
        """The reason the rollback did not complete, in one line."""
        if self.plan.problem:
            return self.plan.problem
        bad = next((step for step in self.steps if not step.ok), None)
        if bad is None:
            return None
        tail = bad.output.strip().splitlines()[-1:] if bad.output.strip() else []
        return "; ".join([f"{bad.action}: {bad.error or 'failed'}", *tail])


class Deadline:
    """The time left for the rest of a rollback."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        return max(self.ends - time.monotonic(), 0.0)


def run_command(
    command: str,
    *,
    timeout: float,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> StepRun:
    """Run `command` with /bin/sh; output is kept (redacted tail) for the report.

    Output goes to a file, not a pipe: a restart command that starts a daemon would keep a
    pipe open and hang the wait. The command runs in its own session so a timeout kills its
    whole process group, and the daemons it starts outlive vigil.
    """
    started = time.monotonic()
    with tempfile.TemporaryFile() as sink:
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", command],
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            where = f" in {cwd}" if cwd else ""
            why = f"could not start{where}: {exc.strerror or exc}"
            return StepRun(redact(command), False, None, "", why, time.monotonic() - started)
        exit_code, error = _wait(process, timeout)
        sink.seek(0)
        output = _tail(sink.read())
    seconds = time.monotonic() - started
    if error is None and exit_code != 0:
        error = f"exited {exit_code}"
    return StepRun(redact(command), exit_code == 0, exit_code, output, error, seconds)


def _wait(process: subprocess.Popen[bytes], timeout: float) -> tuple[int | None, str | None]:
    try:
        return process.wait(timeout=timeout), None
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None, f"timed out after {format_duration(timeout)}"


def _tail(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    if len(text) > OUTPUT_TAIL:
        text = "…" + text[-OUTPUT_TAIL:]
    return redact(text)
