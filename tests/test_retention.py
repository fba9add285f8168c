"""Retention of vigil's records store, on SQLite and PostgreSQL: every table has a rule, what
is old goes (in batches, beside a writer), what reports and `vigil status` need stays, the
SQLite file shrinks, and reports and the status page read the same across the boundary."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select

from vigil.config import RecordsRetention, parse_config
from vigil.retention import NO_HISTORY, ORDER, RULES, plan
from vigil.store import (
    Backup,
    BackupDeletion,
    BackupVerification,
    CheckResult,
    DeployMeasurement,
    DeployVerification,
    Drill,
    HourlyRollup,
    Incident,
    MonitorState,
    Notification,
    RestoreTest,
    ShardHandoff,
    Store,
    open_store,
)
from vigil.store.prune import ensure_incremental, prune, store_size

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=2000)  # past every default horizon
RECENT = NOW - timedelta(days=1)


def count(store: Store, model: Any) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# --- every table has a rule -------------------------------------------------------------------


def test_every_table_the_store_holds_has_a_retention_rule(store: Store) -> None:
    """Lists the tables of a migrated store (not the models: a migration could add one):
    a table with no rule grows forever, which is the failure this test exists for."""
    tables = set(inspect(store.engine).get_table_names())
    assert tables - NO_HISTORY == set(RULES), (
        f"tables without a retention rule: {sorted(tables - NO_HISTORY - set(RULES))}; "
        f"rules without a table: {sorted(set(RULES) - tables)}"
    )
    assert sorted(ORDER) == sorted(RULES)


def test_the_plan_cuts_each_table_at_its_horizon() -> None:
    retention = RecordsRetention(checks=timedelta(days=7), rollups=timedelta(days=90))
    cuts = {c.table: c for c in plan(retention, NOW, ("api",))}
    assert cuts["check_results"].before == NOW - timedelta(days=7)
    assert cuts["hourly_rollups"].before == NOW - timedelta(days=90)
    assert cuts["incidents"].before == NOW - timedelta(days=1825)
    assert cuts["notifications"].before == NOW - timedelta(days=1825)
    assert cuts["shard_handoffs"].before == NOW - timedelta(days=1)
    assert cuts["monitor_states"].monitors == ("api",)
    with pytest.raises(ValueError, match="aware"):
        plan(retention, NOW.replace(tzinfo=None))


def test_config_defaults_and_refusals() -> None:
    config = parse_config("retention: {checks: 14d}")
    assert config.retention.checks == timedelta(days=14)
    assert config.retention.rollups == timedelta(days=400)
    assert config.retention.backups == timedelta(days=1825)
    assert config.retention.prefect_runs_horizon == timedelta(days=7)
    for bad, words in (
        ("{checks: 500d}", "rollups must be kept at least as long as checks"),
        ("{prefect_runs: 30m}", "longer than 1h"),
        ("{checks: 10s}", "at least 1m"),
        ("{raw: 3d}", "unknown key"),
    ):
        with pytest.raises(Exception, match=words):
            parse_config(f"retention: {bad}")


# --- what goes and what stays -----------------------------------------------------------------


def seed_every_table(store: Store) -> None:
    """An old and a recent row in every table, plus the old rows guards must keep."""
    with store.session() as s:
        # api's first check stays whatever its age (reports start its clock there)
        s.add(CheckResult(monitor="api", checked_at=OLD - timedelta(days=1), ok=True, state="UP"))
        for at in (OLD, RECENT):
            s.add(CheckResult(monitor="api", checked_at=at, ok=True, state="UP"))
            s.add(HourlyRollup(monitor="api", hour=at.replace(minute=0), count=1, successes=1))
            s.add(
                Notification(
                    sent_at=at,
                    channel="ops",
                    channel_type="slack",
                    severity="low",
                    title="t",
                    status="sent",
                )
            )
            s.add(ShardHandoff(sweep_id=str(at), shard=0, shards=2, handed_at=at))
            s.add(BackupVerification(verified_at=at, status="passed"))
        s.add(MonitorState(monitor="api", last_checked_at=OLD))  # configured: kept
        s.add(MonitorState(monitor="gone", last_checked_at=OLD))  # removed from the config
        s.add(MonitorState(monitor="gone-recently", last_checked_at=RECENT))
        s.add(Incident(monitor="api", state="DOWN", started_at=OLD, ended_at=OLD, severity="high"))
        s.add(Incident(monitor="api", state="DOWN", started_at=OLD, severity="high"))  # open
        s.add(Backup(id="b-gone", database="main", created_at=OLD, status="succeeded"))
        s.add(Backup(id="b-failed", database="main", created_at=OLD, status="failed"))
        s.add(Backup(id="b-kept", database="main", created_at=OLD, status="succeeded"))
        s.add(BackupDeletion(backup_id="b-gone", database="main", deleted_at=OLD))
        s.add(BackupDeletion(backup_id="b-long-gone", database="main", deleted_at=OLD))
        for database in ("main", "billing"):
            s.add(RestoreTest(database=database, started_at=OLD, status="passed"))
        s.add(RestoreTest(database="main", started_at=OLD + timedelta(days=1), status="passed"))
        s.add(Drill(started_at=OLD, status="passed"))
        s.add(Drill(started_at=RECENT, status="passed"))
        old_deploy = DeployVerification(target="web", started_at=OLD, verdict="passed")
        old_deploy.measurements.append(DeployMeasurement(measured_at=OLD, verdict="pass"))
        s.add(old_deploy)
        s.add(DeployVerification(target="web", started_at=RECENT, verdict="passed"))
        s.add(DeployVerification(target="api", started_at=OLD, verdict="passed"))  # its newest


def remaining(store: Store) -> dict[str, Any]:
    with store.session() as s:
        return {
            "checks": count(store, CheckResult),
            "rollups": count(store, HourlyRollup),
            "notifications": count(store, Notification),
            "handoffs": count(store, ShardHandoff),
            "verifications": count(store, BackupVerification),
            "states": sorted(s.scalars(select(MonitorState.monitor))),
            "incidents_open": [i.ended_at for i in s.scalars(select(Incident))],
            "backups": sorted(s.scalars(select(Backup.id))),
            "deletions": sorted(s.scalars(select(BackupDeletion.backup_id))),
            "restore_tests": sorted(
                (r.database, r.started_at) for r in s.scalars(select(RestoreTest))
            ),
            "drills": [d.started_at for d in s.scalars(select(Drill))],
            "deploys": sorted(
                (d.target, d.started_at) for d in s.scalars(select(DeployVerification))
            ),
            "measurements": count(store, DeployMeasurement),
        }


def test_prune_deletes_the_old_and_keeps_what_is_still_needed(store: Store) -> None:
    seed_every_table(store)
    cuts = plan(RecordsRetention(), NOW, ("api",))
    before = remaining(store)

    dry = prune(store, cuts, dry_run=True)
    assert remaining(store) == before, "a dry run deleted something"
    by_table = {t.table: t.eligible for t in dry.tables}
    assert by_table["check_results"] == 1 and by_table["monitor_states"] == 1
    assert by_table["backups"] == 2 and by_table["incidents"] == 1

    done = prune(store, cuts, batch_size=1)
    # A gone backup's deletion goes once its row has; measurements go with their
    # verification (ON DELETE CASCADE), so none is left over for their own rule.
    assert {t.table: t.deleted for t in done.tables} == {**by_table, "backup_deletions": 2}
    assert done.tables[0].batches == 1
    after = remaining(store)
    assert after["checks"] == 2, "the first and the recent check stay"
    assert after["rollups"] == after["notifications"] == 1
    assert after["handoffs"] == after["verifications"] == 1
    assert after["states"] == ["api", "gone-recently"]
    assert after["incidents_open"] == [None], "an open incident was deleted"
    assert after["backups"] == ["b-kept"], "a backup still in storage was forgotten"
    assert after["deletions"] == []
    assert after["restore_tests"] == [("billing", OLD), ("main", OLD + timedelta(days=1))], (
        "the newest restore test per database must stay"
    )
    assert after["drills"] == [RECENT]
    assert after["deploys"] == [("api", OLD), ("web", RECENT)]
    assert after["measurements"] == 0

    again = prune(store, cuts)
    assert again.deleted == 0, "a second prune found more to delete"


def test_a_deletion_stays_while_its_backup_row_does(store: Store) -> None:
    """If a backup's row were kept (still young) but its deletion forgotten, the catalog
    would think the archive is back in storage."""
    with store.session() as s:
        s.add(Backup(id="b1", database="main", created_at=OLD, status="succeeded"))
        s.add(BackupDeletion(backup_id="b1", database="main", deleted_at=OLD))
    retention = RecordsRetention(backups=timedelta(days=3000))  # the backup row is young
    prune(store, plan(retention, NOW))
    assert count(store, BackupDeletion) == 1
    cuts = [c for c in plan(RecordsRetention(), NOW) if c.table == "backup_deletions"]
    prune(store, cuts)  # deletions cut alone: the backup row is still there
    assert count(store, BackupDeletion) == 1


# --- the file shrinks ---------------------------------------------------------------------------


def fill_checks(store: Store, rows: int, at: datetime) -> None:
    batch = [
        {
            "monitor": f"m{i % 100}",
            "checked_at": at + timedelta(seconds=i),
            "ok": True,
            "state": "UP",
            "latency_ms": 1.0,
            "error": "x" * 60,
            "failed_conditions": [],
        }
        for i in range(rows)
    ]
    for start in range(0, rows, 5000):
        store.add_check_results(batch[start : start + 5000])


def test_a_new_sqlite_store_shrinks_after_pruning(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as store:
        assert ensure_incremental(store.engine)
        fill_checks(store, 30_000, OLD)
        fill_checks(store, 1_000, RECENT)
        store.engine.dispose()
        big = store_size(store) or 0
        outcome = prune(store, plan(RecordsRetention(), NOW), batch_size=5_000)
        # each of the 100 monitors keeps its first check
        assert outcome.tables[0].deleted == 29_900 and outcome.tables[0].batches == 6
        assert "incremental vacuum returned" in outcome.vacuum
        small = store_size(store) or 0
        assert small < big / 5, f"the file did not shrink: {big} -> {small} bytes"
        assert count(store, CheckResult) == 1_100


def test_an_existing_store_without_auto_vacuum_is_converted_once(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    sqlite3.connect(path).close()  # made by an older vigil: auto_vacuum NONE
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE placeholder (x)")  # tables exist: the pragma alone cannot help
    raw.close()
    with open_store(f"sqlite:///{path}") as store:
        assert not ensure_incremental(store.engine)
        fill_checks(store, 10_000, OLD)
        big = store_size(store) or 0
        outcome = prune(store, plan(RecordsRetention(), NOW))
        assert outcome.vacuum.startswith("converted to auto_vacuum=INCREMENTAL")
        assert ensure_incremental(store.engine)
        assert (store_size(store) or 0) < big / 3
        fill_checks(store, 1_000, OLD)
        assert "converted" not in prune(store, plan(RecordsRetention(), NOW)).vacuum


def test_postgresql_prune_vacuums_the_tables_it_deleted_from(pg_database: str) -> None:
    with open_store(pg_database) as store:
        fill_checks(store, 5_000, OLD)
        outcome = prune(store, plan(RecordsRetention(), NOW))
        assert outcome.vacuum == "VACUUM (ANALYZE) on 1 table(s): freed space is reused"
        with store.engine.connect() as c:
            vacuumed = c.exec_driver_sql(
                "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'check_results'"
            ).scalar()
        assert vacuumed is not None
        assert prune(store, plan(RecordsRetention(), NOW)).vacuum.startswith("nothing deleted")


# --- never blocks a sweep -----------------------------------------------------------------------


def test_pruning_lets_a_writer_in_between_batches(store: Store) -> None:
    """A sweep writing while a big prune runs gets its rows in during the prune, not after
    it: the deletes are many short transactions (one long one would hold SQLite's write
    lock until the end, and every write would land after it)."""
    fill_checks(store, 20_000, OLD)
    during: list[datetime] = []
    stop = threading.Event()

    def sweep_writer() -> None:
        while not stop.is_set():
            store.add_check_results(
                [{"monitor": "live", "checked_at": datetime.now(UTC), "ok": True, "state": "UP"}]
            )
            during.append(datetime.now(UTC))

    cuts = [c for c in plan(RecordsRetention(), NOW) if c.table == "check_results"]
    writer = threading.Thread(target=sweep_writer)
    writer.start()
    try:
        started = datetime.now(UTC)
        outcome = prune(store, cuts, batch_size=500, pause=0.02)
        finished = datetime.now(UTC)
    finally:
        stop.set()
        writer.join()
    assert outcome.tables[0].deleted == 19_900 and outcome.tables[0].batches == 40
    inside = [t for t in during if started < t < finished]
    assert len(inside) >= 20, f"only {len(inside)} writes landed during the prune"
