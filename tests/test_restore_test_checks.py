"""The restored copy's own checks on a real PostgreSQL database: an invalid index is named,
amcheck reads every B-tree index, a leftover is recognised only by its exact name pattern,
and a row mismatch names the table with both numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tasks.recovery.inspect import (
    btree_indexes,
    connect_all,
    install_amcheck,
    invalid_indexes,
    read_restored,
    scan_and_check,
    spread,
)
from tests.backup_helpers import seed
from vigil import recovery
from vigil import restore_test as rt


def test_an_invalid_index_in_the_restored_copy_is_named(pg_database: str) -> None:
    seed(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as connection:
        assert recovery.valid_indexes(invalid_indexes(connection)).ok
        connection.execute("INSERT INTO monitors (user_id, name) VALUES (1, 'monitor 1')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            connection.execute("CREATE UNIQUE INDEX CONCURRENTLY monitors_name ON monitors (name)")

        finding = recovery.valid_indexes(invalid_indexes(connection))

    assert not finding.ok
    assert finding.observed == "invalid: public.monitors_name"
    assert finding.problem is not None and "public.monitors_name" in finding.problem


def test_amcheck_checks_every_btree_index_and_leaves_no_extension(pg_database: str) -> None:
    seed(pg_database)
    manifest = {"snapshot": {"taken_at": datetime.now(UTC).isoformat()}}
    with psycopg.connect(pg_database, autocommit=True) as connection:
        restored = read_restored(manifest, connection, amcheck=True)
        extension = connection.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'")
        assert extension.fetchone() is None, "amcheck was created for the check, then dropped"
    assert restored.amcheck is not None
    finding = recovery.btree_finding(restored.amcheck, restored.amcheck_skipped)
    assert (finding.ok, finding.observed) == (True, "6 indexes checked")


def test_a_row_mismatch_names_the_table_and_both_numbers() -> None:
    manifest = {
        "tables": [
            {"name": "public.orders", "rows": 10_000, "exact": True},
            {"name": "public.users", "rows": 40, "exact": True},
            {"name": "public.gone", "rows": 3, "exact": True},
        ]
    }
    findings = recovery.compare_rows(manifest, {"public.orders": 9_850, "public.users": 40})
    problems = [f.problem for f in findings if not f.ok]
    assert problems == [
        "public.gone: 3 rows in the manifest, table missing from the restore",
        "public.orders: 10,000 rows in the manifest, 9,850 restored",
    ]


def test_only_this_databases_scratch_names_count_as_leftovers() -> None:
    name = rt.scratch_name("Shop-EU", datetime(2024, 5, 1, 2, 0, tzinfo=UTC))
    assert name == "vigil_restore_shop_eu_20240501_020000"
    assert rt.is_scratch_of(name, "Shop-EU")
    assert not rt.is_scratch_of(name, "shop")
    assert not rt.is_scratch_of("vigil_restore_3f2a9c0d11aa", "Shop-EU")
    assert len(rt.scratch_name("x" * 80, datetime.now(UTC))) <= 63


def test_shared_checks_stop_every_statement_when_one_fails(pg_database: str) -> None:
    """A failure (or a SIGTERM) in one unit of work cancels the others' statements, so
    nothing keeps running in a scratch database that is about to be dropped."""

    def fails(connection: psycopg.Connection[Any]) -> None:
        connection.execute("SELECT pg_sleep(0.2)")
        raise rt.RestoreTestError("a unit failed")

    def sleeps(connection: psycopg.Connection[Any]) -> None:
        connection.execute("SELECT pg_sleep(600)")

    with connect_all(pg_database, 60.0, 2) as connections:
        with pytest.raises(rt.RestoreTestError, match="a unit failed"):
            spread(connections, [sleeps, fails])
        pids = [c.info.backend_pid for c in connections]
        with psycopg.connect(pg_database, autocommit=True) as observer:
            busy = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) AND state = 'active'",
                (pids,),
            ).fetchone()
        assert busy == (0,)
        assert [c.execute("SELECT 1").fetchone() for c in connections] == [(1,), (1,)]


def test_checks_shared_over_connections_find_what_one_connection_finds(pg_database: str) -> None:
    seed(pg_database)
    with connect_all(pg_database, 60.0, 3) as (connection, *helpers):
        skipped, _ = install_amcheck(connection)
        indexes = btree_indexes(connection) if skipped is None else []
        tables = ["public.users", "public.monitors", "audit.events"]
        cutoff = datetime.now(UTC)
        scans, checks = scan_and_check(connection, helpers, tables, indexes, cutoff)
    assert {s.name: s.rows for s in scans} == {
        "public.users": 40,
        "public.monitors": 120,
        "audit.events": 500,
    }
    assert len(checks) == 6 and all(c.problem is None for c in checks)
