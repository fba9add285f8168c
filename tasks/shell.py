"""A command on the deploy target's host, as process checks and rollback strategies run it:
`/bin/sh -c`, its own session, output kept (a redacted tail), a hard timeout.

Output goes to a file, not a pipe: a restart command that starts a daemon would keep a pipe
open and hang the wait. The command runs in its own session so a timeout kills its whole
process group, and the daemons it starts outlive vigil.
"""

from __future__ import annotations

import contextlib
import os
import re
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
# Tools that colour their output (pm2, npm, systemctl) are asked not to; what colours
# anyway is stripped, so no escape sequence reaches an artifact or an alert.
NO_COLOR = {"NO_COLOR": "1", "FORCE_COLOR": "0", "SYSTEMD_COLORS": "0"}
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


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
    tail: int | None = OUTPUT_TAIL,
) -> StepRun:
    """Run `command` with /bin/sh; its output (redacted, the last `tail` characters, all of
    it when None) is kept for the report. The environment asks for no colours."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as sink:
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", command],
                cwd=cwd,
                env={**os.environ, **NO_COLOR, **(env or {})},
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
        output = _tail(sink.read(), tail)
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


def _tail(raw: bytes, tail: int | None) -> str:
    text = strip_ansi(raw.decode("utf-8", errors="replace"))
    if tail is not None and len(text) > tail:
        text = "…" + text[-tail:]
    return redact(text)


def strip_ansi(text: str) -> str:
    return ANSI_ESCAPE.sub("", text)
