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
# Verdicts of a deploy row whose release was taken away again.
ROLLED_BACK_VERDICTS = frozenset({"rolled_back", "rollback_failed"})
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
    """The release this record says was taken away, if it says so."""
    if record.kind == "rollback":
        return record.previous_release
    if record.verdict in ROLLED_BACK_VERDICTS:
        return record.release
    return None
