"""What vigil's deploy records say: each verification and its measurements as written, the
releases known to be good, what runs now, and the refusals (the "never twice in a row" rule,
the releases `vigil deploy-gate` refuses). The rules are in `vigil.deploy`'s docstring.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from sqlalchemy import or_, select

from vigil.deploy.verdict import Measurement
from vigil.store import DeployMeasurement, DeployVerification, Store
from vigil.store.models import utcnow

VerificationKind = Literal["deploy", "rollback"]
# Verdicts of a deploy row whose release was taken away again (or whose rollback began).
ROLLED_BACK_VERDICTS = frozenset({"rolled_back", "rollback_failed", "rollback_interrupted"})
# A verification that did not finish (SIGTERM, cancellation, a crash) says nothing about
# its release: it neither makes it good nor takes it away.
UNFINISHED_VERDICTS = frozenset({"running", "interrupted"})
# A rollback whose steps failed (a checkout git refused, a failing restart) never put its
# release in place, so its row says nothing about that release either, nor about what runs.
NOT_RESTORED = "not_restored"
SAYS_NOTHING = UNFINISHED_VERDICTS | {NOT_RESTORED}
CLEAN, DEGRADED = "passed", "degraded"
HISTORY_ROWS = 200


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
    records: Sequence[DeployVerification], exclude: Iterable[str | None] = ()
) -> list[str]:
    """The rollback targets, newest first: releases whose newest finished verification
    passed with Successful measurements, then (never preferred) those that passed only
    degraded; none rolled back since. `records` newest first, as `history` returns them."""
    skip = {r for r in exclude if r} | taken_away(records)
    seen: set[str] = set()
    clean: list[str] = []
    degraded: list[str] = []
    for record in records:
        release = record.release
        if not release or release in seen or record.verdict in SAYS_NOTHING:
            continue
        seen.add(release)
        if release in skip:
            continue
        if record.verdict == CLEAN:
            clean.append(release)
        elif record.verdict == DEGRADED:
            degraded.append(release)
    return clean + degraded


def taken_away(records: Sequence[DeployVerification]) -> set[str]:
    """Releases a finished record says were rolled back, unless a newer deploy of the same
    release passed since (what `vigil deploy-gate` refuses, as a set)."""
    away: set[str] = set()
    passed_since: set[str] = set()
    for record in records:
        rolled_from = _rolled_back_release(record)
        if rolled_from and rolled_from not in passed_since:
            away.add(rolled_from)
        if record.release and record.verdict in (CLEAN, DEGRADED):
            passed_since.add(record.release)
    return away


def live_release(records: Sequence[DeployVerification]) -> str | None:
    """What the records say runs now: the release of the newest verification (a rollback's
    row names the release it restored)."""
    return next((r.release for r in records if r.verdict != NOT_RESTORED), None)


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
            if record.release == release and record.verdict in (CLEAN, DEGRADED):
                return None
    return None


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
    kind: VerificationKind,
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
    """The release this record says was taken away, if it says so (an interrupted manual
    rollback says nothing: it may never have switched)."""
    if record.kind == "rollback":
        return record.previous_release if record.verdict not in SAYS_NOTHING else None
    if record.verdict in ROLLED_BACK_VERDICTS:
        return record.release
    return None


def interrupt_running(store: Store, flow_run_id: str, why: str) -> list[DeployVerification]:
    """Mark this flow run's rows still `running` as interrupted (a state hook's sweep after
    a crash or cancellation the run could not record itself); the rows it changed."""
    with store.session() as session:
        query = select(DeployVerification).where(
            DeployVerification.flow_run_id == flow_run_id,
            DeployVerification.verdict == "running",
        )
        rows = list(session.scalars(query))
        for row in rows:
            row.verdict = "interrupted"
            row.detail = why
            row.finished_at = utcnow()
        return rows
