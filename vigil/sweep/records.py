"""What a sweep leaves in the records store, and the one way to read its incidents back.

Per sweep: one `check_results` row per monitor checked, hourly rollups (so 30-day uptime is
a sum over a few hundred rows, not every check), every monitor's state, and the incidents
the sweep opened or closed. The report and the status page read incidents through
`incidents_overlapping`, so what the sweep writes and what they show cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.sql import Executable

from vigil.monitoring import DEGRADED, DOWN, MonitorState
from vigil.store import Incident, Store
from vigil.sweep.decision import SweepDecision, state_changes

_PROBLEMS = (DOWN, DEGRADED)
CAUSE_MAX = 2000


def record_sweep(
    store: Store,
    decision: SweepDecision,
    states: Mapping[str, MonitorState],
    flow_run_id: str | None,
) -> None:
    """Check results, hourly rollups, monitor states and the incidents this sweep opened or
    closed."""
    store.add_check_results(check_rows(decision, flow_run_id))
    store.add_rollups(rollup_rows(decision))
    store.save_monitor_states(states)
    record_incidents(store, decision)


def states_from_store(rows: Mapping[str, Any]) -> dict[str, MonitorState]:
    """Store rows (any object with MonitorState's attributes) as plain MonitorStates."""
    names = tuple(f.name for f in fields(MonitorState))
    first = next(iter(rows.values()), None)
    if getattr(first, "_fields", None) == names:  # the store's named tuples, in field order
        return {key: MonitorState(*row) for key, row in rows.items()}
    return {key: MonitorState(**{n: getattr(row, n) for n in names}) for key, row in rows.items()}


def check_rows(decision: SweepDecision, flow_run_id: str | None) -> list[dict[str, Any]]:
    """One `check_results` row per monitor probed."""
    rows = []
    views = decision.locations
    for check in decision.checks:
        obs, name = check.obs, check.monitor.name
        tls = obs.certificate_expiration
        view = views.get(name) if views else None
        rows.append(
            {
                "monitor": name,
                "checked_at": decision.at,
                "ok": check.verdict == "ok",
                "state": decision.after[name].state,
                "status_code": obs.status,
                "latency_ms": None if obs.response_time is None else obs.response_time * 1000,
                "tls_days_left": None if tls is None else tls.total_seconds() / 86400,
                "failed_conditions": check.failed,
                "error": obs.error,
                "in_maintenance": name in decision.maintenance,
                "flow_run_id": flow_run_id,
                "locations": view.record() if view else None,
            }
        )
    return rows


def rollup_rows(decision: SweepDecision) -> list[dict[str, Any]]:
    """Hourly totals, one row per monitor checked (the store sums them into its hour)."""
    rows = []
    for check in decision.checks:
        latency = check.obs.response_time
        rows.append(
            {
                "monitor": check.monitor.name,
                "hour": decision.at,
                "count": 1,
                "successes": int(check.verdict == "ok"),
                "degraded": int(check.verdict == "degraded"),
                "maintenance": int(check.monitor.name in decision.maintenance),
                "total_latency_ms": 0.0 if latency is None else latency * 1000,
            }
        )
    return rows


def record_incidents(store: Store, decision: SweepDecision) -> None:
    """Open an incident when a monitor enters DOWN or DEGRADED; close it when it leaves,
    including the quiet DEGRADED -> UP that sends no alert."""
    changes = state_changes(decision)
    if not changes:
        return
    with store.session() as session:
        for check, before, after in changes:
            name = check.monitor.name
            if before in _PROBLEMS:
                still_open = session.scalars(
                    select(Incident).where(Incident.monitor == name, Incident.ended_at.is_(None))
                ).all()
                for incident in still_open:
                    incident.ended_at = decision.at
            if after in _PROBLEMS:
                session.add(
                    Incident(
                        monitor=name,
                        state=after,
                        started_at=decision.after[name].since or decision.at,
                        severity=check.monitor.severity if after == DOWN else "medium",
                        cause="; ".join(check.failed)[:CAUSE_MAX] or check.obs.error,
                        notified=name not in decision.maintenance,
                    )
                )


def incidents_overlapping(names: list[str], start: datetime, end: datetime) -> Executable:
    """The incidents of `names` that overlap [start, end) (started before its end, not
    ended before its start), oldest first: id, monitor, state, started_at, ended_at,
    severity, cause."""
    return (
        select(
            Incident.id,
            Incident.monitor,
            Incident.state,
            Incident.started_at,
            Incident.ended_at,
            Incident.severity,
            Incident.cause,
        )
        .where(
            Incident.monitor.in_(names),
            Incident.started_at < end,
            (Incident.ended_at.is_(None)) | (Incident.ended_at > start),
        )
        .order_by(Incident.started_at)
    )
