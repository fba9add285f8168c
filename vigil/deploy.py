"""Deploy verification in the manner of Argo Rollouts' analysis: classify every measurement,
count the classes separately, and let the limits decide. The rules, exactly as implemented:

Measurement. One measurement runs every configured check at the same time: the process
check (`process.command`, run by `/bin/sh`, exit 0 means the process runs), the health
check (GET `health.url`, judged by `health.conditions`) and one GET per URL in `pages`
(must answer 200; redirects are followed). Each check is

- Error: nothing answered. An HTTP request that timed out (the whole request is bounded by
  the check's timeout), was refused, or broke off (DNS, TLS, protocol); a process command
  that timed out, could not start, or exited 126 or 127 (the shell could not run it).
- Failed: it answered, and wrongly. A health condition was false, a page answered something
  other than 200, the process command exited with any other non-zero code.
- Inconclusive: the health endpoint answered `{"status": "degraded"}` and every condition
  that failed (if any) is about `[BODY]` (the same rule that makes a monitor DEGRADED).
- Successful: otherwise.

The measurement takes its worst check's class, in the order Failed, Error, Inconclusive,
Successful: an answer that was wrong is evidence against the release, a missing answer is
not yet.

Schedule. The first measurement starts at once; each next one starts `interval` after the
previous one started, or as soon as the previous one ends if it took longer than that. The
first measurement that starts at or after `window` has elapsed is the last.

Verdict, re-decided after every measurement from the counts so far:

1. failed, when Failed measurements > `failure_limit`;
2. failed, when consecutive Error measurements > `consecutive_error_limit` (any measurement
   that is not an Error resets the run);
3. failed, when `inconclusive_limit` is set and Inconclusive measurements > it (unset, the
   default, Inconclusive measurements are reported and never fail the release);
4. otherwise running, until the last measurement; then failed if not one measurement was
   Successful or Inconclusive (a release never seen answering well has not passed, whatever
   the limits allow), else passed.

A failure stops the verification at once; the rest of the window is not waited for.

Records. Each verification is a `deploy_verifications` row (`kind` deploy or rollback) with
every measurement in `deploy_measurements`. A release was *rolled back* when a deploy row
about it ended `rolled_back` or `rollback_failed`, or a rollback row names it as
`previous_release` (the release rolled back from). The releases known to be good, newest
first, are those whose newest verification passed and that were not rolled back afterwards.
vigil never rolls back automatically a release that a rollback put in place: when the newest
records about the target all concern the release being verified and one of them is a
rollback to it, a failed verification alerts instead of rolling back again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import or_, select

from vigil.alert import Alert
from vigil.conditions import ConditionResult, Observation, body_status
from vigil.config import DeployTarget, Severity
from vigil.durations import format_duration
from vigil.monitoring import verdict as monitor_verdict
from vigil.rollback import Plan, Result
from vigil.store import DeployMeasurement, DeployVerification, Store
from vigil.store.models import utcnow

MeasurementVerdict = Literal["Successful", "Failed", "Error", "Inconclusive"]
SUCCESSFUL: MeasurementVerdict = "Successful"
FAILED: MeasurementVerdict = "Failed"
ERROR: MeasurementVerdict = "Error"
INCONCLUSIVE: MeasurementVerdict = "Inconclusive"
# Worst first: the measurement takes the class of its worst check.
_WORST_FIRST: tuple[MeasurementVerdict, ...] = (FAILED, ERROR, INCONCLUSIVE, SUCCESSFUL)

Status = Literal["running", "passed", "failed"]
Kind = Literal["deploy", "rollback"]
# Exit codes with which /bin/sh says it could not run the command at all.
SHELL_COULD_NOT_RUN = frozenset({126, 127})
# Verdicts of a deploy row whose release was taken away again.
ROLLED_BACK_VERDICTS = frozenset({"rolled_back", "rollback_failed"})
HISTORY_ROWS = 200


# --- one check, one measurement ------------------------------------------------------------


@dataclass(frozen=True)
class CheckOutcome:
    """One check in one measurement: what was looked at, what was seen, and its class."""

    check: str
    target: str
    verdict: MeasurementVerdict
    observed: str
    problems: tuple[str, ...] = ()

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
        }


@dataclass(frozen=True)
class Measurement:
    at: datetime
    checks: tuple[CheckOutcome, ...]

    @property
    def verdict(self) -> MeasurementVerdict:
        found = {c.verdict for c in self.checks}
        return next((v for v in _WORST_FIRST if v in found), SUCCESSFUL)

    def failing(self) -> list[str]:
        """Every check that was not Successful, with what it observed."""
        return [c.line() for c in self.checks if c.verdict != SUCCESSFUL]


def classify_http(
    check: str, url: str, obs: Observation, results: Sequence[ConditionResult]
) -> CheckOutcome:
    """Error when nothing answered; otherwise the conditions decide, and a health endpoint
    that calls itself degraded is Inconclusive rather than Failed."""
    if obs.error is not None:
        return CheckOutcome(check, url, ERROR, obs.error)
    seen = f"{obs.status} in {format_duration(obs.response_time or 0.0)}"
    said = body_status(obs)
    if said:
        seen += f", status {said!r}"
    problems = tuple(r.detail for r in results if not r.ok)
    word = monitor_verdict(list(results), obs)
    if word == "degraded" and check == "health":
        return CheckOutcome(check, url, INCONCLUSIVE, seen, problems)
    return CheckOutcome(check, url, FAILED if problems else SUCCESSFUL, seen, problems)


def classify_process(
    command: str, exit_code: int | None, output: str, error: str | None
) -> CheckOutcome:
    """Exit 0 is Successful; a command the shell could not run is an Error, not a Failure."""
    tail = output.strip().splitlines()[-1:] if output.strip() else []
    if exit_code is None or exit_code in SHELL_COULD_NOT_RUN:
        why = error or f"exit {exit_code}"
        return CheckOutcome("process", command, ERROR, "; ".join([why, *tail]))
    seen = "; ".join([f"exit {exit_code}", *tail])
    if exit_code != 0:
        return CheckOutcome("process", command, FAILED, seen, (f"exited {exit_code}",))
    return CheckOutcome("process", command, SUCCESSFUL, seen)


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

    def add(self, verdict: MeasurementVerdict) -> Tally:
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
class Verdict:
    status: Status
    reason: str


def judge(tally: Tally, limits: Limits, last: bool) -> Verdict:
    """The running verdict after a measurement (rules 1–4 of the module docstring)."""
    if tally.failed > limits.failure_limit:
        return Verdict(
            "failed", f"{tally.failed} failed measurements > failure_limit {limits.failure_limit}"
        )
    if tally.consecutive_errors > limits.consecutive_error_limit:
        return Verdict(
            "failed",
            f"{tally.consecutive_errors} consecutive errors > consecutive_error_limit "
            f"{limits.consecutive_error_limit}",
        )
    if limits.inconclusive_limit is not None and tally.inconclusive > limits.inconclusive_limit:
        return Verdict(
            "failed",
            f"{tally.inconclusive} inconclusive measurements > inconclusive_limit "
            f"{limits.inconclusive_limit}",
        )
    if not last:
        return Verdict("running", tally.describe())
    if tally.successful + tally.inconclusive == 0:
        return Verdict(
            "failed", f"no measurement was Successful or Inconclusive ({tally.describe()})"
        )
    return Verdict("passed", f"{tally.describe()} (within limits: {limits.describe()})")


def next_start(previous_start: float, previous_end: float, interval: timedelta) -> float:
    """When the next measurement starts (monotonic seconds): `interval` after the previous
    one started, or when it ended if it overran; slow checks never cause a burst."""
    return max(previous_start + interval.total_seconds(), previous_end)


def is_last(start: float, window: timedelta, started: float) -> bool:
    """The first measurement to start once the window has elapsed is the last one."""
    return started - start >= window.total_seconds()


@dataclass
class Watch:
    """One verification window's story as it unfolds: measurements, counts, verdict."""

    phase: str
    release: str | None
    limits: Limits
    measurements: list[Measurement] = field(default_factory=list)
    tally: Tally = Tally()
    verdict: Verdict = Verdict("running", "no measurement yet")

    def add(self, measurement: Measurement, last: bool) -> Verdict:
        self.measurements.append(measurement)
        self.tally = self.tally.add(measurement.verdict)
        self.verdict = judge(self.tally, self.limits, last)
        return self.verdict

    @property
    def passed(self) -> bool:
        return self.verdict.status == "passed"

    def deciding_problems(self) -> list[str]:
        """The checks that were not Successful in the last measurement that had any: for a
        failure, the ones that failed the release, with what they observed."""
        for measurement in reversed(self.measurements):
            if measurement.verdict != SUCCESSFUL:
                return measurement.failing()
        return []


# --- records ---------------------------------------------------------------------------------


def history(store: Store, target: str, limit: int = HISTORY_ROWS) -> list[DeployVerification]:
    """The target's verifications, newest first (without their measurements)."""
    with store.session() as session:
        query = (
            select(DeployVerification)
            .where(DeployVerification.target == target)
            .order_by(DeployVerification.started_at.desc(), DeployVerification.id.desc())
            .limit(limit)
        )
        return list(session.scalars(query))


def known_good(
    records: Iterable[DeployVerification], exclude: Iterable[str | None] = ()
) -> list[str]:
    """Releases whose newest verification passed and that were not rolled back since,
    newest first; `records` newest first, as `history` returns them."""
    skip = {r for r in exclude if r}
    seen: set[str] = set()
    taken_away: set[str] = set()
    good: list[str] = []
    for record in records:
        rolled_from = _rolled_back_release(record)
        if rolled_from:
            taken_away.add(rolled_from)
        release = record.release
        if not release or release in seen:
            continue
        seen.add(release)
        if record.verdict == "passed" and release not in taken_away | skip:
            good.append(release)
    return good


def live_release(records: Sequence[DeployVerification]) -> str | None:
    """What the records say runs now: the release of the newest verification (a rollback's
    row names the release it restored)."""
    return records[0].release if records else None


def rollback_refusal(records: Sequence[DeployVerification], release: str) -> str | None:
    """Why a failed `release` must not be rolled back automatically, or None if it may.

    Refused when a rollback put `release` in place and nothing else was verified since:
    rolling back again would hop further back on a guess (the "twice in a row" rule).
    """
    for record in records:
        if record.release != release:
            return None
        if record.kind == "rollback":
            when = record.started_at.strftime("%Y-%m-%d %H:%M UTC")
            return (
                f"{release} was itself put in place by a rollback at {when}; vigil never rolls "
                "back twice in a row automatically"
            )
    return None


def rolled_back(store: Store, target: str, release: str) -> DeployVerification | None:
    """The newest record saying `release` was rolled back, unless a newer one says it passed
    verification since; what `vigil deploy-gate` refuses on."""
    with store.session() as session:
        query = (
            select(DeployVerification)
            .where(
                DeployVerification.target == target,
                or_(
                    DeployVerification.release == release,
                    (DeployVerification.kind == "rollback")
                    & (DeployVerification.previous_release == release),
                ),
            )
            .order_by(DeployVerification.started_at.desc(), DeployVerification.id.desc())
        )
        for record in session.scalars(query):
            if _rolled_back_release(record) == release:
                return record
            if record.release == release and record.verdict == "passed":
                return None
    return None


def latest_per_target(store: Store) -> dict[str, DeployVerification]:
    """The newest finished-or-running verification of each target (for `vigil status`)."""
    latest: dict[str, DeployVerification] = {}
    with store.session() as session:
        query = select(DeployVerification).order_by(
            DeployVerification.started_at.desc(), DeployVerification.id.desc()
        )
        for record in session.scalars(query):
            latest.setdefault(record.target, record)
    return latest


def running(store: Store, target: str) -> DeployVerification | None:
    """The verification of `target` still marked running, if any (who holds the lock)."""
    with store.session() as session:
        query = (
            select(DeployVerification)
            .where(DeployVerification.target == target, DeployVerification.verdict == "running")
            .order_by(DeployVerification.started_at.desc())
            .limit(1)
        )
        return session.scalars(query).first()


def start_record(
    store: Store,
    *,
    target: str,
    release: str | None,
    kind: Kind,
    previous_release: str | None,
    flow_run_id: str | None,
) -> int:
    """A `running` verification row; returns its id for the measurements and the verdict."""
    row = DeployVerification(
        target=target,
        release=release,
        kind=kind,
        started_at=utcnow(),
        previous_release=previous_release,
        flow_run_id=flow_run_id,
    )
    with store.session() as session:
        session.add(row)
        session.flush()
        return row.id


def record_measurement(store: Store, verification_id: int, measurement: Measurement) -> None:
    with store.session() as session:
        session.add(
            DeployMeasurement(
                verification_id=verification_id,
                measured_at=measurement.at,
                verdict=measurement.verdict,
                checks=[c.as_dict() for c in measurement.checks],
            )
        )


def finish_record(store: Store, verification_id: int, verdict: str, detail: str) -> None:
    with store.session() as session:
        row = session.get(DeployVerification, verification_id)
        if row is None:
            raise LookupError(f"deploy_verifications row {verification_id} has disappeared")
        row.verdict = verdict
        row.detail = detail
        row.finished_at = utcnow()


def _rolled_back_release(record: DeployVerification) -> str | None:
    """The release this record says was taken away, if it says so."""
    if record.kind == "rollback":
        return record.previous_release
    if record.verdict in ROLLED_BACK_VERDICTS:
        return record.release
    return None


# --- the story of one run: verdict, notification, artifacts ---------------------------------

# The final flow state's name for each outcome (None: Completed).
STATE_NAMES: dict[str, str | None] = {
    "passed": None,
    "dry_run": "WouldRollBack",
    "failed": "VerificationFailed",
    "rolled_back": "RolledBack",
    "rollback_failed": "RollbackFailed",
}


@dataclass
class Story:
    """Everything one deploy-verify (kind deploy) or manual rollback (kind rollback) run
    did, from which its records, notification, artifacts and final state are told."""

    target: str
    release: str | None
    kind: Kind
    severity: Severity
    started_at: datetime = field(default_factory=utcnow)
    dry_run: bool = False
    watch: Watch | None = None
    plan: Plan | None = None
    refusal: str | None = None
    rollback: Result | None = None
    rollback_watch: Watch | None = None
    seconds: float = 0.0

    @property
    def subject(self) -> str:
        return f"{self.target}@{self.release}" if self.release else self.target

    @property
    def to_release(self) -> str:
        return (self.plan.to_release if self.plan else None) or "the previous release"

    @property
    def should_roll_back(self) -> bool:
        failed = self.watch is not None and self.watch.verdict.status == "failed"
        return failed and not self.dry_run and self.refusal is None

    def verdict(self) -> str:
        """passed, dry_run, failed, rolled_back or rollback_failed."""
        if self.kind == "deploy" and self.watch is not None and self.watch.passed:
            return "passed"
        if self.kind == "deploy" and self.dry_run:
            return "dry_run"
        if self.rollback is None:
            return "failed"
        healthy = self.rollback_watch is not None and self.rollback_watch.passed
        return "rolled_back" if self.rollback.ok and healthy else "rollback_failed"

    def rollback_verdict(self) -> str:
        """The rollback record's own verdict: did the restored release pass verification?"""
        healthy = self.rollback_watch is not None and self.rollback_watch.passed
        return "passed" if healthy else "failed"

    def state_name(self) -> str | None:
        verdict = self.verdict()
        if self.kind == "rollback" and verdict == "rolled_back":
            return None
        return STATE_NAMES[verdict]

    def headline(self) -> str:
        verdict, to = self.verdict(), self.to_release
        if self.kind == "rollback":
            if verdict == "rolled_back":
                return f"{self.target} rolled back to {to} by hand; it passed verification"
            return f"{self.target}: rollback to {to} FAILED"
        return {
            "passed": f"{self.subject} passed verification",
            "dry_run": f"{self.subject} failed verification (dry run: nothing rolled back)",
            "failed": f"{self.subject} failed verification; NOT rolled back",
            "rolled_back": f"{self.subject} failed verification; rolled back to {to}",
            "rollback_failed": f"{self.subject} failed verification; rollback to {to} FAILED",
        }[verdict]

    def lines(self) -> list[str]:
        """The story in the order people need it: why, what was done, how that went."""
        lines: list[str] = []
        if self.watch is not None:
            lines.append(f"Verification of {self.release}: {self.watch.verdict.reason}")
            if not self.watch.passed:
                lines += [f"Failing check: {line}" for line in self.watch.deciding_problems()]
        decision = self._decision()
        if decision:
            lines.append(decision)
        if self.rollback is not None:
            lines += [f"Rollback step: {step.line()}" for step in self.rollback.steps]
            failure = self.rollback.failure()
            if failure:
                lines.append(f"Rollback failed: {failure}")
        if self.rollback_watch is not None:
            lines.append(
                f"Verification of {self.rollback_watch.release} after the rollback: "
                f"{self.rollback_watch.verdict.reason}"
            )
            if not self.rollback_watch.passed:
                problems = self.rollback_watch.deciding_problems()
                lines += [f"Still failing: {line}" for line in problems]
        return lines

    def _decision(self) -> str | None:
        """Why nothing was rolled back, or what a dry run would have done."""
        if self.kind != "deploy" or self.watch is None or self.watch.passed:
            return None
        if self.refusal is not None:
            return f"Not rolled back: {self.refusal}"
        if self.dry_run and self.plan is not None:
            return f"Would do: {self.plan.describe()}"
        return None

    def message(self) -> str:
        """One paragraph: the run's final state message and the record's detail."""
        return f"{self.headline()}. " + " ".join(
            line if line.endswith(".") else line + "." for line in self.lines()
        )

    def detail(self) -> str:
        """The record's detail: the headline on the first line, then the story."""
        took = f"Took {format_duration(self.seconds)}."
        return "\n".join([self.headline(), *self.lines(), took])

    def rollback_healthy(self) -> str:
        if self.rollback is None:
            return "not attempted"
        return "yes" if self.verdict() == "rolled_back" else "no"

    def alert(self, flow_run_url: str | None = None) -> Alert:
        verdict = self.verdict()
        fine = verdict == "passed" or (self.kind == "rollback" and verdict == "rolled_back")
        severity: Severity = "low" if fine else self.severity
        if verdict in ("failed", "rollback_failed"):
            severity = "critical"
        fields = {"Release": self.release or "unknown", "Verdict": verdict}
        if self.rollback is not None:
            fields["Rolled back to"] = self.to_release
        elif self.dry_run and self.refusal is None and self.plan is not None:
            fields["Would roll back to"] = self.to_release
        fields["Rollback restored health"] = self.rollback_healthy()
        fields["Duration"] = format_duration(self.seconds)
        return Alert(
            title=self.headline(),
            severity=severity,
            duty="deploy-verify" if self.kind == "deploy" else "deploy-rollback",
            subject=self.target,
            summary=self.lines()[0] if self.lines() else self.headline(),
            details=self.lines()[1:],
            since=self.started_at,
            flow_run_url=flow_run_url,
            kind="info" if fine else "problem",
            fields=fields,
        )

    def summary(self) -> dict[str, Any]:
        """What the flow returns and `vigil verify-deploy --json` prints."""
        return {
            "target": self.target,
            "release": self.release,
            "verdict": self.verdict(),
            "headline": self.headline(),
            "message": self.message(),
            "rolled_back_to": self.plan.to_release if self.plan and self.rollback else None,
            "rollback_healthy": self.rollback_healthy(),
            "measurements": len(self.watch.measurements) if self.watch else 0,
            "rollback_measurements": (
                len(self.rollback_watch.measurements) if self.rollback_watch else 0
            ),
            "duration_s": round(self.seconds, 3),
            "lines": self.lines(),
        }

    def table(self) -> list[dict[str, str]]:
        """One row per measurement, both windows, one column per check."""
        rows: list[dict[str, str]] = []
        for watch in (self.watch, self.rollback_watch):
            if watch is None:
                continue
            for number, measurement in enumerate(watch.measurements, start=1):
                row = {
                    "phase": watch.phase,
                    "release": watch.release or "",
                    "#": str(number),
                    "at": measurement.at.strftime("%H:%M:%S.%f")[:-3],
                    "verdict": measurement.verdict,
                }
                for check in measurement.checks:
                    why = "; ".join(check.problems) or check.observed
                    row[check.label] = f"{check.verdict}: {why}"
                rows.append(row)
        return rows

    def markdown(self) -> str:
        """The report artifact: the story, then each rollback command's output."""
        parts = [f"# {self.headline()}", "", *(f"- {line}" for line in self.lines())]
        parts.append(f"- Took {format_duration(self.seconds)}.")
        for step in self.rollback.steps if self.rollback else ():
            if step.output.strip():
                parts += ["", f"## Output of `{step.action}`", "", "```", step.output, "```"]
        return "\n".join(parts)
