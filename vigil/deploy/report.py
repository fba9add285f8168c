"""The one home of deploy presentation: from everything one `deploy-verify` or
`deploy-rollback` run did (a `DeployRun`), its verdict, final state, alert, summary, record
detail, and its two artifacts (`deploy-verify-<target>`, one table row per measurement;
`deploy-report-<target>`, the story in markdown with each rollback command's output). Also
the words for the runs that did not get that far (lock timeout, a run stopped by an error).

Outside data (check observations, command output, release ids) reaches the artifacts only
through `vigil.boundary`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vigil import boundary
from vigil.alert import Alert, Severity
from vigil.deploy.history import NOT_RESTORED, VerificationKind
from vigil.deploy.rollback import RollbackPlan, RollbackResult
from vigil.deploy.verdict import Measurement, VerificationWindow
from vigil.durations import format_duration
from vigil.store.models import utcnow

# The final flow state's name for each outcome (None: Completed).
STATE_NAMES: dict[str, str | None] = {
    "passed": None,
    "degraded": None,  # Completed, named Degraded (vigil.runtime.outcome)
    "dry_run": "WouldRollBack",
    "failed": "VerificationFailed",
    "rolled_back": "RolledBack",
    "rollback_failed": "RollbackFailed",
}


@dataclass
class DeployRun:
    """Everything one deploy-verify (kind deploy) or manual rollback (kind rollback) run
    did, from which its records, notification, artifacts and final state are told."""

    target: str
    release: str | None
    kind: VerificationKind
    severity: Severity
    started_at: datetime = field(default_factory=utcnow)
    dry_run: bool = False
    window: VerificationWindow | None = None
    plan: RollbackPlan | None = None
    refusal: str | None = None
    rollback: RollbackResult | None = None
    rollback_window: VerificationWindow | None = None
    seconds: float = 0.0
    replaced: str | None = None  # the release running before this one, by the records
    stage: str = "verification"  # verification, rollback, re-verification: where it is
    known_good: tuple[str, ...] = ()  # rollback targets, newest first: for the next step

    @property
    def subject(self) -> str:
        return f"{self.target}@{self.release}" if self.release else self.target

    @property
    def to_release(self) -> str:
        return (self.plan.to_release if self.plan else None) or "the previous release"

    @property
    def should_roll_back(self) -> bool:
        failed = self.window is not None and self.window.verdict.status == "failed"
        return failed and not self.dry_run and self.refusal is None

    def verdict(self) -> str:
        """passed, degraded, dry_run, failed, rolled_back or rollback_failed."""
        if self.kind == "deploy" and self.window is not None and self.window.passed:
            return "degraded" if self.window.degraded else "passed"
        if self.kind == "deploy" and self.dry_run:
            return "dry_run"
        if self.rollback is None:
            return "failed"
        healthy = self.rollback_window is not None and self.rollback_window.passed
        return "rolled_back" if self.rollback.ok and healthy else "rollback_failed"

    def rollback_verdict(self) -> str:
        """The rollback record's own verdict: did the restored release pass verification?"""
        if self.rollback is not None and not self.rollback.ok:
            return NOT_RESTORED  # never put in place: says nothing about the release
        window = self.rollback_window
        if window is None or not window.passed:
            return "failed"
        return "degraded" if window.degraded else "passed"

    def interrupted_verdict(self) -> str:
        """The deploy record's verdict when the run was stopped: the release failed and its
        rollback had begun (so the gate refuses it), or nothing is known yet."""
        failed = self.window is not None and self.window.verdict.status == "failed"
        began = self.kind == "deploy" and failed and self.stage != "verification"
        return "rollback_interrupted" if began else "interrupted"

    def is_degraded(self) -> bool:
        window = self.window if self.kind == "deploy" else self.rollback_window
        return self.verdict() in ("degraded", "rolled_back") and bool(window and window.degraded)

    def state_name(self) -> str | None:
        verdict = self.verdict()
        if self.kind == "rollback" and verdict == "rolled_back":
            return None
        return STATE_NAMES[verdict]

    def headline(self) -> str:
        verdict, to = self.verdict(), self.to_release
        failed = f"rollback to {to} FAILED{self._how_it_failed()}"
        if self.kind == "rollback":
            if verdict == "rolled_back":
                return f"{self.target} rolled back to {to} by hand; it passed verification"
            return f"{self.target}: {failed}"
        replaced = f" (replaced {self.replaced})" if self.replaced else ""
        return {
            "passed": f"{self.subject} passed verification{replaced}",
            "degraded": f"{self.subject} passed (degraded): no measurement was Successful, "
            f"every one was Inconclusive{replaced}",
            "dry_run": f"{self.subject} failed verification (dry run: nothing rolled back)",
            "failed": f"{self.subject} failed verification; NOT rolled back",
            "rolled_back": f"{self.subject} failed verification; rolled back to {to}",
            "rollback_failed": f"{self.subject} failed verification; {failed}",
        }[verdict]

    def _how_it_failed(self) -> str:
        if self.rollback is None:
            return ""
        if self.rollback.ok:
            return f": {self.to_release} is now running and unhealthy"
        if self.rollback.unchanged:
            return f": nothing was changed, {self._rolled_from()} still runs"
        return ""

    def _rolled_from(self) -> str:
        plan = self.rollback.plan if self.rollback else self.plan
        return (plan.from_release if plan else None) or self.release or "the release"

    def now_running(self) -> str:
        """What runs on the target now, as far as this run knows, and in what health."""
        verdict, to = self.verdict(), self.to_release
        if verdict in ("passed", "degraded"):
            return f"{self.release}, healthy" + (" but degraded" if verdict == "degraded" else "")
        if self.rollback is None:
            why = "dry run: nothing rolled back" if self.dry_run else "not rolled back"
            return f"{self.release}, failing its verification ({why})"
        window = self.rollback_window
        if verdict == "rolled_back":
            health = "degraded" if window is not None and window.degraded else "healthy"
            return f"{to}, restored by the rollback and {health}"
        if self.rollback.ok:
            return f"{to}, restored by the rollback and unhealthy: it failed its own verification"
        if self.rollback.unchanged:
            return f"{self._rolled_from()}, unchanged: the rollback to {to} changed nothing"
        return (
            f"unknown: the rollback to {to} stopped half-way, so {self._rolled_from()}, {to} "
            "or neither may be running; check the target"
        )

    def next_step(self) -> tuple[str, str] | None:
        """(what to do next, the command that does it), or None when nothing is to do."""
        verdict, target = self.verdict(), shlex.quote(self.target)
        to = self.plan.to_release if self.plan else None
        by_hand = f"vigil rollback {target} --to RELEASE"
        if verdict in ("passed", "degraded") or self.state_name() is None:
            return None
        if verdict == "rolled_back":
            return (
                f"ship a fixed release ({self.release} stays refused by `vigil deploy-gate`), "
                "then verify it",
                f"vigil verify-deploy {target} --release NEW_RELEASE",
            )
        if self.rollback is None:
            if self.plan is None:
                return None
            if to is None:
                return "roll back by hand to a release you know is good", by_hand
            what = "roll back for real" if self.dry_run else "roll back by hand"
            return what, f"vigil rollback {target} --to {shlex.quote(to)}"
        if self.rollback.ok:
            further = [g for g in self.known_good if g not in (to, self.release)]
            if not further:
                return (
                    f"{to} is unhealthy too and no other release passed verification: fix "
                    "forward, or roll back by hand to a release you know is good",
                    by_hand,
                )
            return (
                f"{to} is unhealthy too: roll back further, to {further[0]}, the next release "
                "that passed verification",
                f"vigil rollback {target} --to {shlex.quote(further[0])}",
            )
        if self.rollback.next_step:
            return (
                "get past what blocked the rollback, then roll back again",
                self.rollback.next_step,
            )
        failure = self.rollback.failure() or "the failing step"
        return (
            f"fix what failed ({failure}), then roll back again",
            f"vigil rollback {target} --to {shlex.quote(to or 'RELEASE')}",
        )

    def lines(self) -> list[str]:
        """The story in the order people need it: why, what was done, how that went."""
        lines: list[str] = []
        if self.window is not None:
            lines.append(f"Verification of {self.release}: {self.window.verdict.reason}")
            if not self.window.passed:
                lines += [f"Failing check: {line}" for line in self.window.deciding_problems()]
                lines += self.window.deciding_said()
                lines += self.window.deciding_logs()
        decision = self._decision()
        if decision:
            lines.append(decision)
        if self.rollback is not None and self.rollback.plan.why:
            plan = self.rollback.plan
            lines.append(f"Rollback to {plan.to_release}: {plan.why}")
        if self.rollback is not None:
            lines += [f"Rollback step: {step.line()}" for step in self.rollback.steps]
            failure = self.rollback.failure()
            if failure:
                lines.append(f"Rollback failed: {failure}")
        if self.rollback_window is not None:
            lines.append(
                f"Verification of {self.rollback_window.release} after the rollback: "
                f"{self.rollback_window.verdict.reason}"
            )
            if not self.rollback_window.passed:
                problems = self.rollback_window.deciding_problems()
                lines += [f"Still failing: {line}" for line in problems]
                lines += self.rollback_window.deciding_said()
                lines += self.rollback_window.deciding_logs()
        if self.verdict() not in ("passed", "degraded"):
            lines.append(f"Now running: {self.now_running()}")
        step = self.next_step()
        if step is not None:
            lines.append(f"Next step: {step[0]}: `{step[1]}`")
        return lines

    def _decision(self) -> str | None:
        """Why nothing was rolled back, or what a dry run would have done."""
        if self.kind != "deploy" or self.window is None or self.window.passed:
            return None
        if self.refusal is not None:
            return f"Not rolled back: {self.refusal}"
        if self.dry_run and self.plan is not None:
            why = f" ({self.plan.to_release}: {self.plan.why})" if self.plan.why else ""
            return f"Would do: {self.plan.describe()}{why}"
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
        if self.verdict() != "rolled_back":
            return "no"
        return "degraded" if self.rollback_window and self.rollback_window.degraded else "yes"

    def alert(self, flow_run_url: str | None = None) -> Alert:
        verdict = self.verdict()
        fine = verdict in ("passed", "degraded") or (
            self.kind == "rollback" and verdict == "rolled_back"
        )
        severity: Severity = "low" if fine else self.severity
        if verdict == "degraded":
            severity = "medium"
        if verdict in ("failed", "rollback_failed"):
            severity = "critical"
        fields = {"Release": self.release or "unknown", "Verdict": verdict}
        if self.replaced and verdict in ("passed", "degraded"):
            fields["Replaced"] = self.replaced
        if self.rollback is not None:
            fields["Rolled back to"] = self.to_release
        elif self.dry_run and self.refusal is None and self.plan is not None:
            fields["Would roll back to"] = self.to_release
        fields["Rollback restored health"] = self.rollback_healthy()
        fields["Now running"] = self.now_running()
        step = self.next_step()
        if step is not None:
            fields["Next step"] = step[1]
        fields["Duration"] = format_duration(self.seconds)
        lines = self.lines()
        return Alert(
            title=self.headline(),
            severity=severity,
            duty=duty_of(self.kind),
            subject=self.target,
            summary=lines[0] if lines else self.headline(),
            details=lines[1:],
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
            "now_running": self.now_running(),
            "next_step": step[1] if (step := self.next_step()) else None,
            "measurements": len(self.window.measurements) if self.window else 0,
            "rollback_measurements": (
                len(self.rollback_window.measurements) if self.rollback_window else 0
            ),
            "duration_s": round(self.seconds, 3),
            "lines": self.lines(),
        }

    def table(self) -> list[dict[str, str]]:
        """One row per measurement, both windows, one column per check."""
        rows: list[dict[str, str]] = []
        for window in (self.window, self.rollback_window):
            if window is None:
                continue
            for number, measurement in enumerate(window.measurements, start=1):
                row = {
                    "phase": window.phase,
                    "release": window.release or "",
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
        parts = [f"# {boundary.markdown(self.headline())}", ""]
        parts += [f"- {boundary.markdown(line)}" for line in self.lines()]
        parts.append(f"- Took {format_duration(self.seconds)}.")
        for step in self.rollback.steps if self.rollback else ():
            if step.output.strip():
                title = f"## Output of {boundary.markdown(step.action)}"
                parts += ["", title, "", boundary.markdown_block(step.output)]
        return "\n".join(parts)


def duty_of(kind: VerificationKind) -> str:
    return "deploy-verify" if kind == "deploy" else "deploy-rollback"


def artifact_slug(target: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", target.lower()).strip("-") or "target"


def publish(run: DeployRun) -> None:
    """The run's two artifacts: the measurements table (when there were measurements) and
    the markdown report."""
    slug = artifact_slug(run.target)
    rows = run.table()
    if rows:
        description = f"{run.headline()} ({len(rows)} measurements)"
        boundary.publish_table(f"deploy-verify-{slug}", rows, description)
    boundary.publish_markdown(f"deploy-report-{slug}", run.markdown(), run.headline())


def measurement_line(
    release: str | None, number: int, planned: int, measurement: Measurement
) -> str:
    """The progress line of one measurement: `r2 measurement 3/4: Successful`, then every
    check that was not Successful with what it saw."""
    failing = "".join(f"; {line}" for line in measurement.failing())
    return f"{release} measurement {number}/{planned}: {measurement.verdict}{failing}"


def lock_timeout_message(
    target: str,
    lock: str,
    waited: timedelta,
    holder_kind: str | None,
    holder_release: str | None,
    holder_since: datetime | None,
    holder_run: str | None,
) -> str:
    """Why a run gave up waiting for the target's lock, naming the holder from the records."""
    if holder_since is None:
        who = (
            "vigil's records show no verification running, so a run may have died holding "
            "it; its lease expires within 5 minutes"
        )
    else:
        since = holder_since.strftime("%Y-%m-%d %H:%M:%S UTC")
        who = (
            f"the {holder_kind} verification of {holder_release} has held it since {since} "
            f"(flow run {holder_run or 'unknown'})"
        )
    return (
        f"{target}: waited lock_timeout ({format_duration(waited)}) for the lock {lock!r} "
        f"and gave up; {who}. Nothing was verified or rolled back. Run again once it is done, "
        f"or raise deploys.{target}.lock_timeout."
    )


def waiting_for_lock_message(
    target: str,
    lock: str,
    seconds: float,
    timeout: timedelta,
    holder_kind: str | None,
    holder_release: str | None,
    holder_run: str | None,
) -> str:
    """The line a run waiting for the target's lock says every few seconds."""
    who = (
        f"the {holder_kind} verification of {holder_release} (flow run {holder_run or 'unknown'})"
        if holder_kind
        else "a run vigil's records do not show (its lease expires within 5 minutes)"
    )
    waited, limit = format_duration(round(seconds)), format_duration(timeout)
    return f"{target}: waiting for the lock {lock!r} held by {who}, {waited} (lock_timeout {limit})"


def locked_summary(target: str, release: str | None, message: str) -> dict[str, Any]:
    return {"target": target, "release": release, "verdict": "locked", "message": message}


def stopped_alert(subject: str, error: BaseException, flow_run_url: str | None) -> Alert:
    """A run that stopped half-way may leave a target half rolled back: say so, loudly."""
    return Alert(
        title=f"{subject}: deploy verification stopped with an error",
        severity="critical",
        duty="deploy-verify",
        subject=subject.split("@", 1)[0],
        summary=f"vigil could not finish: {error!r}. Check the target by hand: it may be "
        "running either release, or be half rolled back.",
        flow_run_url=flow_run_url,
    )


def interrupted_alert(run: DeployRun, why: str, flow_run_url: str | None) -> Alert:
    """A run stopped from outside (SIGTERM, cancellation) or by a crash, half-way: where it
    was, what may be running now, and the command to run next. The records say
    `interrupted`, never that a release failed, and known-good releases are unchanged."""
    stage = run.stage
    to = run.plan.to_release if run.plan else None
    if stage == "verification":
        running = f"{run.release} (deployed before vigil was stopped; not verified)"
        step = f"vigil verify-deploy {run.target} --release {run.release}"
    else:
        running = (
            f"{run.release} or {to} (the rollback was under way; check the target)"
            if stage == "rollback"
            else f"{to} (restored by the rollback; its verification did not finish)"
        )
        step = f"vigil rollback {run.target} --to {to}" if to else "vigil status"
    summary = (
        f"vigil was stopped ({why}) during the {stage} of {run.subject}. Now running: "
        f"{running}. Next step: `{step}`."
    )
    return Alert(
        title=f"{run.subject}: deploy verification interrupted during the {stage}",
        severity="critical",
        duty=duty_of(run.kind),
        subject=run.target,
        summary=summary,
        details=[*run.lines(), "Recorded as interrupted: no release was marked failed or good."],
        since=run.started_at,
        flow_run_url=flow_run_url,
        fields={"Interrupted": why, "Stage": stage, "Next step": step},
    )


def interrupted_rows_alert(
    target: str, rows: list[tuple[str, str | None]], state: str, flow_run_url: str | None
) -> Alert:
    """From a state hook (crashed, cancelled) that found this run's records still running:
    (kind, release) of each, newest last."""
    kind, release = rows[-1]
    stage = "verification" if kind == "deploy" else "rollback or its re-verification"
    step = (
        f"vigil verify-deploy {target} --release {release}"
        if kind == "deploy"
        else f"vigil rollback {target} --to {release}"
    )
    return Alert(
        title=f"{target}@{release}: deploy verification interrupted ({state})",
        severity="critical",
        duty=duty_of("deploy" if kind == "deploy" else "rollback"),
        subject=target,
        summary=f"The run ended {state} during the {stage} of {release}; its records are "
        f"marked interrupted (no release marked failed or good). Next step: `{step}`.",
        flow_run_url=flow_run_url,
        fields={"Interrupted": state, "Next step": step},
    )
