"""The recorded counts and the dump describe the same instant: pg_dump imports the snapshot
whose counts the manifest records, so writes made meanwhile are in neither."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg

from tasks.pgdump import dump_database
from tasks.snapshot import open_snapshot
from tasks.storage import LocalStorage
from tests.backup_helpers import EXPECTED, counts, fresh_database, seed
from vigil.backup.identity import Keys
from vigil.config import Compression, Database


def test_writes_after_the_snapshot_are_in_neither_the_counts_nor_the_dump(
    tmp_path: Path, pg_database: str, pg_server_url: str
) -> None:
    seed(pg_database)
    database = Database(name="main", url=pg_database)
    storage = LocalStorage((tmp_path / "backups").as_uri())
    keys = Keys.of("main-20240501T020000Z")

    with open_snapshot(database) as held:
        held.start_counting()
        with psycopg.connect(pg_database, autocommit=True) as other:
            other.execute(
                "INSERT INTO users (email) SELECT 'late' || g FROM generate_series(1, 25) g"
            )
            other.execute("DELETE FROM audit.events WHERE id <= 100")
        later = held.connection.execute("SELECT count(*) FROM users").fetchone()
        assert later == (40,), "the snapshot's transaction must not see later writes"
        dump_database(database, held.facts, Compression(codec="gzip"), storage, keys.dump)
        facts = held.counted()

    assert {t.name: t.rows for t in facts.tables} == EXPECTED
    assert all(t.exact for t in facts.tables)
    assert counts(pg_database) == {**EXPECTED, "public.users": 65, "audit.events": 400}
    with fresh_database(pg_server_url) as target:
        subprocess.run(
            [
                "pg_restore",
                "--exit-on-error",
                f"--dbname={target}",
                str(tmp_path / "backups" / keys.dump),
            ],
            check=True,
            capture_output=True,
        )
        assert counts(target) == EXPECTED


def test_planner_estimates_instead_of_counting_when_asked(pg_database: str) -> None:
    seed(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as connection:
        connection.execute("ANALYZE")
    database = Database(name="main", url=pg_database, exact_counts=False)

    with open_snapshot(database) as held:
        held.start_counting()
        tables = held.counted().tables

    assert {t.name: t.rows for t in tables} == EXPECTED
    assert not any(t.exact for t in tables)
