"""The restored copy's own checks on a real PostgreSQL database: an invalid index is named,
a leftover is recognised only by its exact name pattern, and a row mismatch names the table
with both numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from tests.backup_helpers import seed
from vigil import restore_test as rt


def test_an_invalid_index_in_the_restored_copy_is_named(pg_database: str) -> None:
    seed(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as connection:
        assert rt.valid_indexes(connection).ok
        connection.execute("INSERT INTO monitors (user_id, name) VALUES (1, 'monitor 1')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            connection.execute("CREATE UNIQUE INDEX CONCURRENTLY monitors_name ON monitors (name)")

        finding = rt.valid_indexes(connection)

    assert not finding.ok
    assert finding.observed == "invalid: public.monitors_name"
    assert finding.problem is not None and "public.monitors_name" in finding.problem


def test_amcheck_checks_every_btree_index(pg_database: str) -> None:
    seed(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as connection:
        finding = rt.check_btrees(connection)
    assert (finding.ok, finding.observed) == (True, "6 indexes checked")


def test_a_row_mismatch_names_the_table_and_both_numbers() -> None:
    manifest = {
        "tables": [
            {"name": "public.orders", "rows": 10_000, "exact": True},
            {"name": "public.users", "rows": 40, "exact": True},
            {"name": "public.gone", "rows": 3, "exact": True},
        ]
    }
    findings = rt.compare_rows(manifest, {"public.orders": 9_850, "public.users": 40})
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
