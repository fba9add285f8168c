"""The analysis rules (`vigil.deploy`'s docstring, exactly): one check's class, one
measurement's class, the counts, the running verdict of a verification window, and when the
next measurement starts. Pure: tested without any service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from vigil import boundary
from vigil.conditions import ConditionResult, Observation, body_message, body_status
from vigil.config import DeployTarget
from vigil.durations import format_duration
from vigil.monitoring import verdict as monitor_verdict

MeasurementClass = Literal["Successful", "Failed", "Error", "Inconclusive"]
SUCCESSFUL: MeasurementClass = "Successful"
FAILED: MeasurementClass = "Failed"
ERROR: MeasurementClass = "Error"
INCONCLUSIVE: MeasurementClass = "Inconclusive"
# Worst first: the measurement takes the class of its worst check.
_WORST_FIRST: tuple[MeasurementClass, ...] = (FAILED, ERROR, INCONCLUSIVE, SUCCESSFUL)

WindowStatus = Literal["running", "passed", "failed"]
# Exit codes with which /bin/sh says it could not run the command at all.
SHELL_COULD_NOT_RUN = frozenset({126, 127})
# The app's own words from its health body: one line, enough to say what is wrong.
SAID_CHARS = 300


# --- one check, one measurement ------------------------------------------------------------


@dataclass(frozen=True)
class CheckReading:
    """One check in one measurement: what was looked at, what was seen, and its class."""

    check: str
    target: str
    verdict: MeasurementClass
    observed: str
    problems: tuple[str, ...] = ()
    # A process manager's restart count (the window's baseline is its first reading) and,
    # when the process failed, the tail of its error log.
    restarts: int | None = None
    log_tail: str = ""
    log_path: str = ""
    # What the health body said about itself when the check was not Successful (inert).
    said: str = ""

    @property
    def label(self) -> str:
        return self.check if self.check != "page" else f"page {self.target}"

    def line(self) -> str:
        """`health http://…/health: Failed — [STATUS] 503, expected == 200`."""
        why = "; ".join(self.problems) or self.observed
        return f"{self.check} {self.target}: {self.verdict} — {why}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "target": self.target,
            "verdict": self.verdict,
            "observed": self.observed,
            "problems": list(self.problems),
            **({"restarts": self.restarts} if self.restarts is not None else {}),
            **({"log_tail": self.log_tail, "log_path": self.log_path} if self.log_tail else {}),
            **({"said": self.said} if self.said else {}),
        }


@dataclass(frozen=True)
class Measurement:
    at: datetime
    checks: tuple[CheckReading, ...]

    @property
    def verdict(self) -> MeasurementClass:
        found = {c.verdict for c in self.checks}
        return next((v for v in _WORST_FIRST if v in found), SUCCESSFUL)

    def failing(self) -> list[str]:
        """Every check that was not Successful, with what it observed."""
        return [c.line() for c in self.checks if c.verdict != SUCCESSFUL]


def classify_http(
    check: str, url: str, obs: Observation, results: Sequence[ConditionResult]
) -> CheckReading:
    """Error when nothing answered; otherwise the conditions decide, and a health endpoint
    that calls itself degraded is Inconclusive rather than Failed."""
    if obs.error is not None:
        return CheckReading(check, url, ERROR, obs.error)
    seen = f"{obs.status} in {format_duration(obs.response_time or 0.0)}"
    said = body_status(obs)
    if said:
        seen += f", status {said!r}"
    problems = tuple(r.detail for r in results if not r.ok)
    word = monitor_verdict(list(results), obs)
    if word == "degraded" and check == "health":
        return CheckReading(check, url, INCONCLUSIVE, seen, problems, said=_said(obs))
    if problems:
        said = _said(obs) if check == "health" else ""
        return CheckReading(check, url, FAILED, seen, problems, said=said)
    return CheckReading(check, url, SUCCESSFUL, seen)


def _said(obs: Observation) -> str:
    """The health body's own message, inert and redacted, on one bounded line."""
    message = body_message(obs)
    if not message:
        return ""
    line = " ".join(boundary.inert(message).split())
    return line if len(line) <= SAID_CHARS else line[: SAID_CHARS - 1] + "…"


def classify_process(
    command: str, exit_code: int | None, output: str, error: str | None
) -> CheckReading:
    """Exit 0 is Successful; a command the shell could not run is an Error, not a Failure."""
    tail = output.strip().splitlines()[-1:] if output.strip() else []
    if exit_code is None or exit_code in SHELL_COULD_NOT_RUN:
        why = error or f"exit {exit_code}"
        return CheckReading("process", command, ERROR, "; ".join([why, *tail]))
    seen = "; ".join([f"exit {exit_code}", *tail])
    if exit_code != 0:
        return CheckReading("process", command, FAILED, seen, (f"exited {exit_code}",))
    return CheckReading("process", command, SUCCESSFUL, seen)


@dataclass(frozen=True)
class Pm2Seen:
    """What `pm2 jlist` said about one app: every instance's status, restarts summed."""

    app: str
    home: str
    statuses: tuple[str, ...] = ()
    restarts: int = 0
    exec_path: str | None = None
    missing: str | None = None  # why the app is not there at all (no daemon, no such app)


def classify_pm2(
    seen: Pm2Seen | None, error: str | None, baseline: int | None, max_restarts: int
) -> CheckReading:
    """Online with restarts not climbing past `max_restarts` since the window's first
    reading is Successful; anything else pm2 answered is Failed; no answer is an Error."""
    if seen is None:
        why = f"pm2: could not read its process list: {error}"
        return CheckReading("process", "pm2", ERROR, why)
    where = f"pm2 {seen.app}"
    if seen.missing:
        said = f"pm2: {seen.missing}"
        return CheckReading("process", where, FAILED, said, (said,))
    bad = sorted({s for s in seen.statuses if s != "online"})
    count = f"{seen.restarts} restart{'s' if seen.restarts != 1 else ''}"
    instances = f" ({len(seen.statuses)} instances)" if len(seen.statuses) > 1 else ""
    if bad:
        said = f"pm2: {seen.app} {', '.join(bad)}{instances}, {count}"
        return CheckReading("process", where, FAILED, said, (said,), seen.restarts)
    observed = f"pm2: {seen.app} online{instances}, {count}"
    if seen.exec_path:
        observed += f", running {seen.exec_path}"
    climbed = seen.restarts - baseline if baseline is not None else 0
    if climbed > max_restarts:
        said = (
            f"pm2: {seen.app} restarted {climbed} times during the window (max_restarts "
            f"{max_restarts}), {count} in all"
        )
        return CheckReading("process", where, FAILED, said, (said,), seen.restarts)
    return CheckReading("process", where, SUCCESSFUL, observed, (), seen.restarts)


# --- counting and deciding -------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    failure_limit: int = 0
    consecutive_error_limit: int = 4
    inconclusive_limit: int | None = None

    @classmethod
    def of(cls, target: DeployTarget) -> Limits:
        return cls(target.failure_limit, target.consecutive_error_limit, target.inconclusive_limit)

    def describe(self) -> str:
        text = f"failed ≤ {self.failure_limit}, consecutive errors ≤ {self.consecutive_error_limit}"
        if self.inconclusive_limit is not None:
            text += f", inconclusive ≤ {self.inconclusive_limit}"
        return text


@dataclass(frozen=True)
class Tally:
    """The counts the verdict is decided from; immutable so each step is a plain value."""

    measurements: int = 0
    successful: int = 0
    failed: int = 0
    errors: int = 0
    inconclusive: int = 0
    consecutive_errors: int = 0

    def add(self, verdict: MeasurementClass) -> Tally:
        return replace(
            self,
            measurements=self.measurements + 1,
            successful=self.successful + (verdict == SUCCESSFUL),
            failed=self.failed + (verdict == FAILED),
            errors=self.errors + (verdict == ERROR),
            inconclusive=self.inconclusive + (verdict == INCONCLUSIVE),
            consecutive_errors=self.consecutive_errors + 1 if verdict == ERROR else 0,
        )

    def describe(self) -> str:
        return (
            f"{self.measurements} measurements: {self.successful} successful, "
            f"{self.inconclusive} inconclusive, {self.errors} errors, {self.failed} failed"
        )


@dataclass(frozen=True)
class WindowVerdict:
    """Where a verification window stands: still running, passed or failed, and why."""

    status: WindowStatus
    reason: str


def judge(tally: Tally, limits: Limits, last: bool) -> WindowVerdict:
    """The running verdict after a measurement (rules 1–4 of `vigil.deploy`)."""
    if tally.failed > limits.failure_limit:
        return WindowVerdict(
            "failed", f"{tally.failed} failed measurements > failure_limit {limits.failure_limit}"
        )
    if tally.consecutive_errors > limits.consecutive_error_limit:
        return WindowVerdict(
            "failed",
            f"{tally.consecutive_errors} consecutive errors > consecutive_error_limit "
            f"{limits.consecutive_error_limit}",
        )
    if limits.inconclusive_limit is not None and tally.inconclusive > limits.inconclusive_limit:
        return WindowVerdict(
            "failed",
            f"{tally.inconclusive} inconclusive measurements > inconclusive_limit "
            f"{limits.inconclusive_limit}",
        )
    if not last:
        return WindowVerdict("running", tally.describe())
    if tally.successful + tally.inconclusive == 0:
        return WindowVerdict(
            "failed", f"no measurement was Successful or Inconclusive ({tally.describe()})"
        )
    return WindowVerdict("passed", f"{tally.describe()} (within limits: {limits.describe()})")


def next_start(previous_start: float, previous_end: float, interval: timedelta) -> float:
    """When the next measurement starts (monotonic seconds): `interval` after the previous
    one started, or when it ended if it overran; slow checks never cause a burst."""
    return max(previous_start + interval.total_seconds(), previous_end)


def planned_measurements(window: timedelta, interval: timedelta) -> int:
    """How many measurements a window takes when none overruns (a slow one means fewer):
    one at the start, then one every `interval` up to the first at or after `window`."""
    if interval <= timedelta(0):
        return 1
    return -(-window // interval) + 1


def is_last(start: float, window: timedelta, started: float) -> bool:
    """The first measurement to start once the window has elapsed is the last one."""
    return started - start >= window.total_seconds()


@dataclass
class VerificationWindow:
    """One verification window as it unfolds: measurements, counts, verdict. `phase` is
    `release` (the new release) or `rollback` (the release a rollback restored)."""

    phase: str
    release: str | None
    limits: Limits
    measurements: list[Measurement] = field(default_factory=list)
    tally: Tally = Tally()
    verdict: WindowVerdict = WindowVerdict("running", "no measurement yet")

    def add(self, measurement: Measurement, last: bool) -> WindowVerdict:
        self.measurements.append(measurement)
        self.tally = self.tally.add(measurement.verdict)
        self.verdict = judge(self.tally, self.limits, last)
        return self.verdict

    @property
    def passed(self) -> bool:
        return self.verdict.status == "passed"

    @property
    def degraded(self) -> bool:
        """Passed, but not one measurement was Successful: only Inconclusive (degraded)."""
        return self.passed and self.tally.successful == 0

    def restarts_baseline(self) -> int | None:
        """The process manager's restart count at the window's first reading of it: restarts
        beyond it during the window count against the release."""
        for measurement in self.measurements:
            for check in measurement.checks:
                if check.restarts is not None:
                    return check.restarts
        return None

    def deciding_logs(self) -> list[str]:
        """The process manager's error log tail for each check that failed in the deciding
        measurement, as lines for the alert."""
        lines: list[str] = []
        for measurement in reversed(self.measurements):
            if measurement.verdict == SUCCESSFUL:
                continue
            for check in measurement.checks:
                if check.log_tail:
                    where = f"{check.check} {check.target}"
                    lines.append(f"Error log of {where} ({check.log_path}), last lines:")
                    lines += [f"  | {line}" for line in check.log_tail.splitlines()]
            return lines
        return lines

    def deciding_said(self) -> list[str]:
        """What the app's health body said in the deciding measurement, as alert lines."""
        for measurement in reversed(self.measurements):
            if measurement.verdict != SUCCESSFUL:
                return [f"The app's health said: {c.said}" for c in measurement.checks if c.said]
        return []

    def deciding_problems(self) -> list[str]:
        """The checks that were not Successful in the last measurement that had any: for a
        failure, the ones that failed the release, with what they observed."""
        for measurement in reversed(self.measurements):
            if measurement.verdict != SUCCESSFUL:
                return measurement.failing()
        return []
