"""One uptime sweep as plain functions: evaluate what the probes saw, decide states, and
turn the outcome into store rows, alerts and a table people read.

The flow in `flows/sweep.py` only sequences these steps as Prefect tasks; everything that
decides something lives here, where a test can call it directly.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from vigil.conditions import ConditionResult, Observation, conditions_for, evaluate_all
from vigil.config import Config, Monitor
from vigil.durations import format_duration
from vigil.maintenance import monitors_in_maintenance
from vigil.monitoring import (
    DEGRADED,
    DOWN,
    UNKNOWN,
    UP,
    MonitorState,
    Transition,
    Verdict,
    advance,
    verdict,
)

if TYPE_CHECKING:
    from vigil.store import Store

STATE_ORDER = {DOWN: 0, DEGRADED: 1, UNKNOWN: 2, UP: 3}
ARTIFACT_ROWS = 1000


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector off for one sweep.

    A sweep allocates a few objects per monitor (config models, observations, checks,
    states, store rows) and keeps nearly all of them until it ends, so every automatic
    collection rescans a growing heap, Prefect's included, and frees almost nothing: at
    10,000 monitors that was ~40% of the sweep's CPU (parsing the config alone went from
    1.2 s to 0.4 s with collections held off). Reference counting still frees everything
    that is not in a cycle; collections resume, as they were, when the sweep ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class Check:
    """One monitor's result in this sweep."""

    monitor: Monitor
    obs: Observation
    results: list[ConditionResult]
    verdict: Verdict
    retried: bool = False

    @property
    def failed(self) -> list[str]:
        return [r.detail for r in self.results if not r.ok]


def evaluate(monitors: list[Monitor], observations: list[Observation]) -> list[Check]:
    checks = []
    for monitor, obs in zip(monitors, observations, strict=True):
        results = evaluate_all(conditions_for(monitor), obs)
        checks.append(Check(monitor, obs, results, _verdict(results, obs)))
    return checks


def _verdict(results: list[ConditionResult], obs: Observation) -> Verdict:
    """A probe that ran into an error (a failed query, an unreadable certificate) is never
    `ok`, even when its conditions happen to hold."""
    found = verdict(results, obs)
    return "failed" if found == "ok" and obs.error else found


def merge_retries(checks: list[Check], retried: list[Check]) -> list[Check]:
    """The retry's answer replaces the first one: a blip that answers now is no failure."""
    by_name = {c.monitor.name: c for c in retried}
    merged = []
    for check in checks:
        again = by_name.get(check.monitor.name)
        if again is not None:
            again.retried = True
        merged.append(again or check)
    return merged


@dataclass
class Decision:
    """Everything one sweep decided, ready to record and announce."""

    at: datetime
    checks: list[Check]
    before: dict[str, MonitorState]
    after: dict[str, MonitorState]
    transitions: list[Transition] = field(default_factory=list)
    maintenance: set[str] = field(default_factory=set)


def decide(
    config: Config, checks: list[Check], before: dict[str, MonitorState], at: datetime
) -> Decision:
    """Advance each monitor's state with this sweep's verdict."""
    decision = Decision(at=at, checks=checks, before=before, after=dict(before))
    in_maintenance = monitors_in_maintenance(config, at)
    for check in checks:
        name = check.monitor.name
        quiet = name in in_maintenance
        if quiet:
            decision.maintenance.add(name)
        prior = before.get(name) or MonitorState(monitor=name)
        state, transition = advance(
            check.monitor, prior, check.verdict, check.failed, check.obs.error, at, quiet
        )
        decision.after[name] = state
        if transition is not None:
            decision.transitions.append(transition)
    return decision


def states_from_store(rows: dict[str, Any]) -> dict[str, MonitorState]:
    """Store rows (any object with MonitorState's attributes) as plain MonitorStates."""
    names = [f.name for f in fields(MonitorState)]
    return {key: MonitorState(**{n: getattr(row, n) for n in names}) for key, row in rows.items()}


def state_changes(decision: Decision) -> list[tuple[Check, str, str]]:
    """(check, state before, state after) for each monitor whose state changed."""
    changes = []
    for check in decision.checks:
        name = check.monitor.name
        before = decision.before[name].state if name in decision.before else UNKNOWN
        after = decision.after[name].state
        if before != after:
            changes.append((check, before, after))
    return changes


def check_rows(decision: Decision, flow_run_id: str | None) -> list[dict[str, Any]]:
    """One `check_results` row per monitor probed."""
    rows = []
    for check in decision.checks:
        obs, name = check.obs, check.monitor.name
        tls = obs.certificate_expiration
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
            }
        )
    return rows


def rollup_rows(decision: Decision) -> list[dict[str, Any]]:
    """Hourly totals, so 30-day uptime is a sum over a few hundred rows, not every check."""
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


def counts(decision: Decision) -> Counter[str]:
    return Counter(decision.after[c.monitor.name].state for c in decision.checks)


def problem_of(decision: Decision) -> tuple[str | None, bool]:
    """The run's state name (`Outage` when anything is DOWN) and whether it is degraded."""
    tally = counts(decision)
    return ("Outage" if tally[DOWN] else None), bool(tally[DEGRADED])


def headline(decision: Decision) -> str:
    """`12 up, 1 degraded, 2 down (api, db)`: the run's message in the runs list."""
    tally = counts(decision)
    parts = [f"{tally[s]} {s.lower()}" for s in (UP, DEGRADED, DOWN, UNKNOWN) if tally[s]]
    down = sorted(
        c.monitor.name for c in decision.checks if decision.after[c.monitor.name].state == DOWN
    )
    text = ", ".join(parts) or "no monitors"
    if down:
        shown = ", ".join(down[:5]) + (f" and {len(down) - 5} more" if len(down) > 5 else "")
        text += f" ({shown} down)"
    return text


def summary(decision: Decision, alerts_sent: int) -> dict[str, Any]:
    tally = counts(decision)
    return {
        "at": decision.at.isoformat(),
        "monitors": len(decision.checks),
        "up": tally[UP],
        "degraded": tally[DEGRADED],
        "down": tally[DOWN],
        "unknown": tally[UNKNOWN],
        "transitions": [f"{t.monitor}: {t.kind}" for t in decision.transitions],
        "alerts": alerts_sent,
        "down_monitors": sorted(
            c.monitor.name for c in decision.checks if decision.after[c.monitor.name].state == DOWN
        ),
    }


def table(decision: Decision) -> tuple[list[dict[str, Any]], int]:
    """The sweep's artifact rows, worst first, capped so a huge sweep stays readable."""
    ordered = sorted(
        decision.checks,
        key=lambda c: (STATE_ORDER.get(decision.after[c.monitor.name].state, 9), c.monitor.name),
    )
    rows = []
    for check in ordered[:ARTIFACT_ROWS]:
        state = decision.after[check.monitor.name]
        latency = check.obs.response_time
        since = state.since
        rows.append(
            {
                "monitor": check.monitor.name,
                "state": state.state
                + (" (maintenance)" if check.monitor.name in decision.maintenance else ""),
                "latency": "-" if latency is None else format_duration(timedelta(seconds=latency)),
                "failed conditions": "; ".join(check.failed) or (check.obs.error or ""),
                "since": since.strftime("%Y-%m-%d %H:%M UTC") if since else "",
            }
        )
    return rows, max(0, len(ordered) - ARTIFACT_ROWS)


def fallback_targets(config: Config, decision: Decision) -> list[Monitor]:
    """Fallback endpoints to probe: those of monitors DOWN after this sweep, as monitors of
    their own with the primary's settings and conditions."""
    probes = []
    for check in decision.checks:
        monitor = check.monitor
        if monitor.fallback and decision.after[monitor.name].state == DOWN:
            probes.append(
                monitor.model_copy(update={"url": monitor.fallback, "name": monitor.name})
            )
    return probes


def fallback_status(checks: list[Check]) -> dict[str, str]:
    """`{monitor: "serving" | "down: <reason>"}` for the alert's fallback field."""
    status = {}
    for check in checks:
        if check.verdict in ("ok", "degraded"):
            status[check.monitor.name] = "serving"
        else:
            reason = "; ".join(check.failed) or check.obs.error or "failed"
            status[check.monitor.name] = f"down: {reason}"
    return status


def shard_of(monitors: list[Monitor], shard: int, shards: int) -> list[Monitor]:
    """Monitors of one shard: a stable split by position, so every monitor is in exactly one."""
    if shards <= 1:
        return monitors
    return monitors[shard::shards]


# --- sharded sweeps: shards hand their checks to the one run that decides ----------------

HANDOFF_KEEP = timedelta(days=1)


def handoff(checks: list[Check]) -> dict[str, dict[str, Any]]:
    """What a shard hands to the parent sweep, by monitor name: everything `decide`, the
    records, the alerts and the table read from a check, as JSON (no body, no raw values)."""
    payload = {}
    for check in checks:
        obs = check.obs
        tls = obs.certificate_expiration
        payload[check.monitor.name] = {
            "verdict": check.verdict,
            "failed": [[r.condition, r.detail] for r in check.results if not r.ok],
            "retried": check.retried,
            "status": obs.status,
            "response_time": obs.response_time,
            "tls_seconds": None if tls is None else tls.total_seconds(),
            "connected": obs.connected,
            "ip": obs.ip,
            "error": obs.error,
        }
    return payload


def merge_handoffs(
    monitors: list[Monitor], payloads: list[dict[str, dict[str, Any]]]
) -> tuple[list[Check], list[Monitor]]:
    """The shards' checks in config order, and the monitors no shard reported on (a shard
    that failed or did not finish in time): those keep their state and are not recorded."""
    found: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        found.update(payload)
    checks, missing = [], []
    for monitor in monitors:
        item = found.get(monitor.name)
        if item is None:
            missing.append(monitor)
            continue
        tls = item["tls_seconds"]
        obs = Observation(
            status=item["status"],
            response_time=item["response_time"],
            certificate_expiration=None if tls is None else timedelta(seconds=tls),
            connected=item["connected"],
            ip=item["ip"],
            error=item["error"],
        )
        results = [ConditionResult(text, False, detail) for text, detail in item["failed"]]
        checks.append(Check(monitor, obs, results, item["verdict"], retried=item["retried"]))
    return checks, missing


def hand_over(
    store: Store, sweep_id: str, shard: int, shards: int, checks: list[Check], at: datetime
) -> None:
    """Leave one shard's checks in the store for the parent sweep `sweep_id`."""
    from vigil.runtime import flow_run_id
    from vigil.store import ShardHandoff

    with store.session() as session:
        session.add(
            ShardHandoff(
                sweep_id=sweep_id,
                shard=shard,
                shards=shards,
                handed_at=at,
                flow_run_id=flow_run_id(),
                checks=handoff(checks),
            )
        )


def take_handoffs(store: Store, sweep_id: str, now: datetime) -> dict[int, dict[str, Any]]:
    """The checks each shard of `sweep_id` handed over, by shard, removed from the store
    with any a shard left for an earlier sweep that had stopped waiting for it."""
    from sqlalchemy import delete, or_, select

    from vigil.store import ShardHandoff

    with store.session() as session:
        rows = session.scalars(select(ShardHandoff).where(ShardHandoff.sweep_id == sweep_id))
        taken = {row.shard: row.checks for row in rows}
        session.execute(
            delete(ShardHandoff).where(
                or_(
                    ShardHandoff.sweep_id == sweep_id,
                    ShardHandoff.handed_at < now - HANDOFF_KEEP,
                )
            )
        )
    return taken
