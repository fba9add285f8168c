"""How checks probed in another run reach the one run that decides: sharded sweeps.

A shard probes, evaluates and confirms its share of the monitors (`shard_of`) and leaves
its checks in the records store (`hand_over`); workers on other machines share nothing
else. The parent sweep takes them (`take_handoffs`) and rebuilds the checks in config order
(`merge_handoffs`); a monitor no shard reported on keeps its state and is not recorded.
The payload is JSON: everything decision, records, alerts and the table read from a check,
and nothing else (no body, no raw values).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select

from vigil.conditions import ConditionResult, Observation
from vigil.config import Monitor
from vigil.runtime import flow_run_id
from vigil.store import ShardHandoff, Store
from vigil.sweep.checks import MonitorCheck

# Hand-overs nobody took (a parent that stopped waiting) are removed after this long.
HANDOFF_KEEP = timedelta(days=1)


def shard_of(monitors: list[Monitor], shard: int, shards: int) -> list[Monitor]:
    """Monitors of one shard: a stable split by position, so every monitor is in exactly one."""
    if shards <= 1:
        return monitors
    return monitors[shard::shards]


def handoff(checks: list[MonitorCheck]) -> dict[str, dict[str, Any]]:
    """What a shard hands to the parent sweep, by monitor name."""
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
) -> tuple[list[MonitorCheck], list[Monitor]]:
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
        checks.append(_check(monitor, item))
    return checks, missing


def _check(monitor: Monitor, item: dict[str, Any]) -> MonitorCheck:
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
    return MonitorCheck(monitor, obs, results, item["verdict"], retried=item["retried"])


def hand_over(
    store: Store,
    sweep_id: str,
    shard: int,
    shards: int,
    checks: list[MonitorCheck],
    at: datetime,
) -> None:
    """Leave one shard's checks in the store for the parent sweep `sweep_id`."""
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
