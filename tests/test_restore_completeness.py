"""A restore is complete exactly when everything a logical backup holds comes back: on the
rich database (tests/richdb.py: partitions, large objects, sequences, materialized views,
row security, triggers, event triggers, rules, functions, extensions, foreign tables,
publications, comments, grants, odd names and values) the restore test passes, and each
kind of loss, made by restoring the real archive with TOC entries left out (`pg_restore
-l` / `-L`) or by altering a restored copy, fails naming the object that is missing."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tasks.pg import find_tool
from tasks.recovery import fetch, inspect
from tasks.storage import open_storage
from tests.fixtures.postgres import throwaway_database, with_database
from tests.fixtures.restore import Setup, checks_by_name
from tests.fixtures.s3 import S3Endpoint
from tests.richdb import RICH, build
from vigil.backup.verification import ReadBack, verify
from vigil.config import Database, load_config
from vigil.recovery import Finding

pytestmark = pytest.mark.usefixtures("prefect_api")

FINGERPRINTED = ["app.accounts", "app.measurements", "odd_values"]
COMPLETENESS = {"objects", "sequences", "large_objects", "matviews"}


@pytest.fixture(scope="module")
def rich(
    tmp_path_factory: pytest.TempPathFactory,
    pg_server_url: str,
    s3_server: S3Endpoint,
    prefect_api: None,
) -> Iterator[Setup]:
    """The rich database, backed up once to S3 (moto) by the daily flow, with a
    partitioned table as a critical table with a row floor, and three tables fingerprinted."""
    name = f"vigil_rich_{secrets.token_hex(6)}"
    bucket = s3_server.new_bucket("vigil-rich")
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        source = with_database(pg_server_url, name)
        build(source)
        made = Setup(tmp_path_factory.mktemp("rich"), source, pg_server_url, s3_server, bucket)
        made.database_settings = {
            "critical_tables": ["app.measurements", "app.sessions"],
            "min_rows": {"app.measurements": 2000, "app.by_kind": 90},
            "fingerprint_tables": FINGERPRINTED,
        }
        made.back_up()
        yield made
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass
class Archive:
    path: Path
    manifest: dict[str, Any]
    toc: list[str]


@pytest.fixture(scope="module")
def archive(rich: Setup, tmp_path_factory: pytest.TempPathFactory) -> Archive:
    """The rich backup's archive and manifest, fetched from S3 as every recovery fetches."""
    storage = open_storage(load_config(rich.config()).backup)
    fetched = fetch(storage, rich.backup_id, tmp_path_factory.mktemp("archive"))
    listed = subprocess.run(
        [find_tool("pg_restore"), "--list", str(fetched.archive)],
        capture_output=True,
        text=True,
        check=True,
    )
    return Archive(fetched.archive, fetched.manifest, listed.stdout.splitlines())


def restore_without(archive: Archive, target: str, left_out: Callable[[str], bool]) -> list[str]:
    """pg_restore the archive into `target` with the TOC entries `left_out` picks commented
    out of its list (-L), as an archive missing them would restore; returns them."""
    dropped = [line for line in archive.toc if not line.startswith(";") and left_out(line)]
    listing = archive.path.with_name(f"list-{secrets.token_hex(4)}")
    listing.write_text("\n".join(";" + line if line in dropped else line for line in archive.toc))
    # No --exit-on-error: what depends on a left-out entry fails, as in a broken restore.
    subprocess.run(
        [find_tool("pg_restore"), "-L", str(listing), "-d", target, str(archive.path)],
        capture_output=True,
        check=False,
    )
    return dropped


def judged(archive: Archive, target: str, *, privileges: bool = False) -> list[Finding]:
    return inspect(
        target, archive.manifest, timeout=120, jobs=1, amcheck=False, privileges=privileges
    ).findings


def failed(findings: list[Finding]) -> dict[str, str]:
    return {f.name: f.problem or "" for f in findings if not f.ok}


# --- passing -----------------------------------------------------------------------------------


def test_the_rich_database_restores_completely_and_the_restore_test_passes(rich: Setup) -> None:
    # amcheck's own truth on partitioned indexes is another test's (test_restore_test_checks).
    rich.settings = {"scratch_url": rich.server, "jobs": 2, "amcheck": False}

    state, _ = rich.restore_test()

    assert state.is_completed(), state.message
    record = rich.latest()
    checks = checks_by_name(record)
    assert [c for c in record.checks if not c["ok"]] == []
    assert COMPLETENESS <= set(checks)
    assert checks["objects"]["observed"].endswith(
        "(grants not compared: restored without privileges)"
    )
    assert checks["large_objects"]["observed"] == f"{RICH['large_objects']}, data as backed up"
    assert checks["matviews"]["observed"] == "2 as in the backup"
    for table in FINGERPRINTED:
        assert checks[f"fingerprint {table}"]["ok"]
    assert checks["fingerprint app.measurements"]["observed"] == "2,000 rows, as backed up"
    for table, rows in RICH["rows"].items():
        assert checks[f"rows {table}"]["observed"] == f"{rows:,}"


def test_the_manifest_records_what_a_restore_must_bring_back(archive: Archive) -> None:
    manifest = archive.manifest
    objects = manifest["objects"]
    assert "tenant_isolation on app.accounts" in objects["policy"]
    assert objects["row security on"]["app.accounts"] == "enabled, forced"
    assert (
        objects["partition"]["app.m2024_north"] == "of app.m2024 FOR VALUES IN ('oslo', 'tromsø')"
    )
    assert objects["partition"]["app.m_default"] == "of app.measurements DEFAULT"
    assert set(objects["extension"]) >= {"pgcrypto", "hstore", "citext", "postgres_fdw"}
    assert "vigil_rich_ddl" in objects["event trigger"]
    assert "vigil_rich_pub" in objects["publication"]
    assert "app.remote_orders" in objects["foreign table"]
    assert 'public."Mixed Case.Table"' in objects["table"]
    assert manifest["sequences"]["app.invoice_no"] == {
        "last_value": 2024,
        "is_called": True,
        "increment": 7,
    }
    assert manifest["sequences"]["app.never_called"]["is_called"] is False
    contents = manifest["contents"]
    assert contents["large_objects"]["count"] == 3
    assert contents["matviews"] == {"app.readings_by_city": 4, "app.stale_report": None}
    assert set(contents["fingerprints"]) == set(FINGERPRINTED)
    assert manifest["partitions"]["app.measurements"] == ["app.m2023", "app.m2024", "app.m_default"]


def test_a_partitioned_table_is_verified_through_its_leaves(rich: Setup, archive: Archive) -> None:
    """critical_tables and min_rows name partitioned parents: their data are their leaves'."""
    toc = "\n".join(archive.toc)
    database = Database(
        name="rich",
        url=rich.source,
        critical_tables=["app.measurements", "app.by_kind"],
        min_rows={"app.measurements": 2000, "app.sessions": 65},
    )
    dump = archive.manifest["dump"]
    observed = ReadBack(True, dump["size_bytes"], dump["sha256"], toc, None, 10, None)
    checks = {
        c.name: c
        for c in verify(
            archive.manifest,
            observed,
            database,
            previous_size=None,
            max_age=timedelta(days=3650),
            now=datetime.now(UTC),
        ).checks
    }
    assert checks["critical_table app.measurements"].passed
    assert checks["critical_table app.measurements"].observed == "app.measurements present"
    assert checks["critical_table app.by_kind"].passed
    assert (
        checks["min_rows app.measurements"].passed,
        checks["min_rows app.measurements"].observed,
    ) == (True, "2000")
    assert (checks["min_rows app.sessions"].passed, checks["min_rows app.sessions"].observed) == (
        False,
        "64",
    )

    leaf_gone = "\n".join(line for line in archive.toc if "TABLE DATA app m2024_rest" not in line)
    observed = ReadBack(True, dump["size_bytes"], dump["sha256"], leaf_gone, None, 10, None)
    again = verify(
        archive.manifest,
        observed,
        database,
        previous_size=None,
        max_age=timedelta(days=3650),
        now=datetime.now(UTC),
    )
    critical = {c.name: c for c in again.checks}["critical_table app.measurements"]
    assert (critical.passed, critical.observed) == (False, "absent")
