"""The exit codes of `vigil verify-deploy` and `vigil rollback`: a contract pipelines branch on.

One table, read by the commands (which code to exit with), by their `--help` and by the
README's table (a test compares the two), so the three never disagree. Every outcome a
pipeline may act on differently has its own code: carry on (0), carry on but look (3), the
release is gone and the old one serves (4), page someone (5), nothing was done at all and
a retry may help (8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ExitCode:
    code: int
    name: str
    meaning: str
    verdicts: tuple[str, ...] = ()  # the run summaries' `verdict`s that end with this code


PASSED = ExitCode(
    0,
    "passed",
    "the release passed verification (`vigil rollback`: the restored release passed)",
    ("passed",),
)
ERROR = ExitCode(
    1,
    "stopped",
    "vigil stopped with an error, or was interrupted half-way (a process a signal ends may "
    "exit 128 + the signal instead: 143 for SIGTERM); the run's alert says what may be "
    "running now",
)
USAGE = ExitCode(2, "bad usage", "an unknown option or target, or `--release` missing (typer)")
DEGRADED = ExitCode(
    3,
    "passed (degraded)",
    "passed, but every measurement was Inconclusive (health said degraded); the release "
    "stays live and is the last choice as a rollback target",
    ("degraded",),
)
ROLLED_BACK = ExitCode(
    4,
    "rolled back",
    "the release failed; vigil rolled back and the restored release passed",
    ("rolled_back",),
)
ROLLBACK_FAILED = ExitCode(
    5,
    "rollback failed",
    "the release failed and the rollback did not restore health (it failed, or the restored "
    "release failed its verification): page someone",
    ("rollback_failed",),
)
NOT_ROLLED_BACK = ExitCode(
    6,
    "failed, not rolled back",
    "the release failed and vigil did not roll back: no rollback is configured, a rollback "
    "put this very release in place (never twice in a row), or there is nothing to roll "
    "back to",
    ("failed",),
)
DRY_RUN = ExitCode(
    7,
    "dry run: would roll back",
    "`--dry-run` and the release failed; nothing was changed (a dry run that passes exits 0 or 3)",
    ("dry_run",),
)
COULD_NOT_RUN = ExitCode(
    8,
    "could not run",
    "nothing was verified or changed: the target's lock stayed taken for `lock_timeout`, "
    "the config is invalid, a check cannot be set up (a URL vigil cannot probe), the Prefect "
    "API did not answer, or `vigil rollback` had nothing to roll back to",
    ("locked", "not_started"),
)

EXIT_CODES: tuple[ExitCode, ...] = (
    PASSED,
    ERROR,
    USAGE,
    DEGRADED,
    ROLLED_BACK,
    ROLLBACK_FAILED,
    NOT_ROLLED_BACK,
    DRY_RUN,
    COULD_NOT_RUN,
)


def exit_code(summary: dict[str, Any] | None, by_hand: bool = False) -> ExitCode:
    """The code a run's summary ends the command with. For `vigil rollback` (`by_hand`) a
    rollback whose restored release passed is the command's success: 0, or 3 degraded."""
    verdict = (summary or {}).get("verdict")
    if by_hand and verdict == "rolled_back":
        degraded = (summary or {}).get("rollback_healthy") == "degraded"
        return DEGRADED if degraded else PASSED
    return next((code for code in EXIT_CODES if verdict in code.verdicts), ERROR)


def markdown_table() -> str:
    """The README's table, exactly."""
    rows = ["| exit | outcome | meaning |", "|---|---|---|"]
    rows += [f"| {c.code} | {c.name} | {c.meaning} |" for c in EXIT_CODES]
    return "\n".join(rows)


def help_text() -> str:
    """The codes for `--help`, in one sentence."""
    return "Exit codes: " + "; ".join(f"{c.code} {c.name}" for c in EXIT_CODES) + "."
