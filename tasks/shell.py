"""A command on the deploy target's host, as process checks and rollback strategies run it:
`/bin/sh -c`, its own session, output kept (a redacted tail), a hard timeout.

Output goes to a file, not a pipe: a restart command that starts a daemon would keep a pipe
open and hang the wait. The command runs in its own session so a timeout kills its whole
process group, and the daemons it starts outlive vigil.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from vigil.deploy.rollback import StepRun
from vigil.durations import format_duration
from vigil.redact import redact

# Enough of a command's output to see why it failed, not a whole build log.
OUTPUT_TAIL = 4000


class Deadline:
    """The time left for the rest of a sequence of commands (one rollback's steps)."""

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
    """Run `command` with /bin/sh; its output (redacted tail) is kept for the report."""
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
