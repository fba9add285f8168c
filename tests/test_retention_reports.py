"""Reports and the status page read the same after retention has pruned the raw checks: a
yearly SLO report and the 90-day bars come from incidents and hourly rollups, which outlive
the checks. History here is 200 days deep, the raw horizon 30 days, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from vigil import statuspage
from vigil.config import parse_config
from vigil.report import build_report
from vigil.retention import plan
from vigil.store import Incident, Store
from vigil.store.prune import prune

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FIRST = NOW - timedelta(days=200, minutes=17)  # not on the hour: the exact start matters
CONFIG = """
slo: 99.9
retention: {checks: 30d}
monitors:
  - {name: api, url: 'http://127.0.0.1:1/health', public: true}
"""


def seed(store: Store) -> None:
    """A check every 10 minutes for 200 days, its rollups, and three outages: one 100 days
    ago (raw checks gone after pruning), one 10 days ago, one still open."""
    rows, at = [], FIRST
    while at < NOW:
        rows.append(
            {"monitor": "api", "checked_at": at, "ok": True, "state": "UP", "latency_ms": 20.0}
        )
        at += timedelta(minutes=10)
    for start in range(0, len(rows), 5000):
        store.add_check_results(rows[start : start + 5000])
    store.add_rollups(
        {
            "monitor": "api",
            "hour": r["checked_at"],
            "count": 1,
            "successes": 1,
            "total_latency_ms": 20.0,
        }
        for r in rows
    )
    with store.session() as session:
        for days_ago, minutes in ((100, 60), (10, 30)):
            start = NOW - timedelta(days=days_ago)
            session.add(
                Incident(
                    monitor="api",
                    state="DOWN",
                    started_at=start,
                    ended_at=start + timedelta(minutes=minutes),
                    severity="high",
                )
            )
        session.add(
            Incident(
                monitor="api", state="DOWN", started_at=NOW - timedelta(minutes=5), severity="high"
            )
        )


def figures(store: Store) -> dict[str, Any]:
    config = parse_config(CONFIG)
    year = build_report(config, store, NOW, days=365)
    [api] = year.monitors
    page = statuspage.build(config, store, NOW)
    [service] = page.services()
    return {
        "measured_minutes": api.measured_minutes,
        "uptime_pct": api.uptime_pct,
        "downtime_minutes": api.downtime_minutes,
        "incidents": api.incidents,
        "slo_remaining_minutes": api.slo.remaining_minutes if api.slo else None,
        "bars": [(d.day, d.measured_s, d.down_s) for d in service.days],
        "page_uptime": service.uptime_pct,
        "page_incidents": len(page.incidents),
    }


def test_a_yearly_report_and_the_90_day_bars_survive_pruning_the_raw_checks(store: Store) -> None:
    seed(store)
    before = figures(store)
    # The clock starts at the first check, to the minute, not at a later surviving one.
    assert before["measured_minutes"] == (NOW - FIRST).total_seconds() / 60
    assert before["downtime_minutes"] == 60 + 30 + 5
    config = parse_config(CONFIG)
    outcome = prune(store, plan(config.retention, NOW, ("api",)))
    checks = next(t for t in outcome.tables if t.table == "check_results")
    assert checks.deleted > 20_000, "the raw checks were not pruned"
    assert next(t for t in outcome.tables if t.table == "hourly_rollups").deleted == 0
    after = figures(store)
    assert after == before
    # A monitor first checked inside the period: its hour starts the clock once its first
    # checks are gone (never the first surviving check, 170 days late).
    assert after["measured_minutes"] >= (NOW - FIRST).total_seconds() / 60 - 60
