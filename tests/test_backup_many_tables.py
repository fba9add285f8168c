"""Tens of thousands of tables on a server with default settings: where a bare pg_dump
fits in the lock table (max_locks_per_transaction = 64), `vigil backup` does too, since its
exact row counts are taken in batches that each import the dump's snapshot and release
their locks as they go, instead of one transaction holding a lock on every table next to
pg_dump's own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from tests.backup_helpers import backups, configure
from vigil.cli import app

pytestmark = pytest.mark.usefixtures("prefect_api")

TABLES = 8_000
# One DO block, committing every 500 tables: a single transaction creating 8,000 tables
# would itself run out of the lock table this test is about.
BUILD = """
DO $$
BEGIN
    FOR i IN 1..{tables} LOOP
        EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i);
        EXECUTE format('INSERT INTO t%s VALUES (1, ''x''), (2, ''y'')', i);
        IF i % 500 = 0 THEN COMMIT; END IF;
    END LOOP;
END $$
"""


def test_eight_thousand_tables_back_up_where_bare_pg_dump_does(
    tmp_path: Path, pg_database: str
) -> None:
    with psycopg.connect(pg_database, autocommit=True) as connection:
        locks = connection.execute("SHOW max_locks_per_transaction").fetchone()
        connection.execute(BUILD.format(tables=TABLES).encode())
    assert locks == ("64",), "the point is a server with the default lock table"
    bare = subprocess.run(
        ["pg_dump", "-Fc", "-Z1", f"--dbname={pg_database}", "-f", str(tmp_path / "bare.dump")],
        capture_output=True,
        text=True,
    )
    assert bare.returncode == 0, bare.stderr
    config = configure(
        tmp_path,
        pg_database,
        (tmp_path / "backups").as_uri(),
        database={"critical_tables": ["t1", f"t{TABLES}"], "min_rows": {"t42": 2}},
    )

    result = CliRunner().invoke(app, ["backup", "-c", str(config), "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True
    [record] = backups(tmp_path)
    assert (record.status, record.verified) == ("succeeded", True)
    manifest = record.manifest
    assert manifest is not None and len(manifest["tables"]) == TABLES
    assert all(t["exact"] and t["rows"] == 2 for t in manifest["tables"])
    assert manifest["total_rows"] == 2 * TABLES
