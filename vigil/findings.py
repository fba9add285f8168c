"""Findings: problems a duty found in the world, told apart from bugs in vigil.

A duty that ran and found a problem (a DOWN monitor, a failed pg_dump, a corrupt archive)
reports it as a finding: a one-line log record and a FAILED-type final state named for it.
A traceback is kept for what vigil did not expect, which is a bug.
"""

from __future__ import annotations

from typing import Any

from vigil.redact import redact


class Finding(Exception):
    """A problem a duty found in the world (a DOWN monitor, a failed pg_dump, a corrupt
    archive), as opposed to a bug in vigil. Findings are logged as one line, never with a
    traceback (`vigil.logs`); duties' own error types derive from it.

    Its message is redacted when it is made: Prefect builds a failed task's state message
    (shown in the UI) from the exception's text, before any of vigil's writers see it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class DutyFinding(Finding):
    """What a duty's FAILED final state carries: its one-line message and its summary.

    In a served or worker run Prefect's engine calls `result()` on the final state, which
    raises the state's data for any FAILED state (a dict raised a TypeError), and logs that
    as "Engine execution exited with unexpected exception" with a traceback. Carrying the
    finding as this exception lets `vigil.logs` recognise that record as vigil's own verdict,
    already logged by `outcome`, and drop it; any other exception still logs in full."""

    def __init__(self, problem: str, message: str, summary: dict[str, Any]) -> None:
        super().__init__(f"{problem}: {message}")
        self.problem = problem
        self.message = message
        self.summary = summary
