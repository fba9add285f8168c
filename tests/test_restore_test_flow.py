"""The weekly restore test end to end: a real backup of a real database in S3 (moto over
HTTP), restored into scratch databases on the real PostgreSQL server, judged, dropped,
recorded, published and alerted."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from tests.fixtures.restore import Setup, checks_by_name, scratch_databases
from tests.helpers import markdown_artifact
from vigil.restore_test import artifact_key

pytestmark = pytest.mark.usefixtures("prefect_api", "nothing_left_behind")


def test_a_good_backup_restores_completely_and_passes(shared: Setup) -> None:
    backup = shared.backup_id

    state, summary = shared.restore_test()

    assert state.is_completed(), state.message
    record = shared.latest()
    assert (record.status, record.backup_id, record.rto_met) == ("passed", backup, True)
    assert record.duration_s is not None and record.duration_s > 0
    checks = checks_by_name(record)
    assert all(c["ok"] for c in record.checks), record.checks
    assert checks["rows public.users"]["observed"] == "40"
    assert checks["rows public.monitors"]["expected"] == "120"
    assert checks["rows audit.events"]["observed"] == "500"
    assert checks["indexes"]["observed"] == "6 restored"
    assert checks["amcheck"]["observed"] == "6 indexes checked"
    with psycopg.connect(shared.source) as source:
        newest = source.execute("SELECT max(created_at) FROM users").fetchone()
    assert newest is not None and record.recovery_point == newest[0]
    report = summary["databases"][0]
    assert report["scratch_database"].startswith(f"vigil_restore_{shared.name}_")
    assert shared.alerts() == []
    assert markdown_artifact(artifact_key(shared.name)).startswith(
        f"# Restore test of `{shared.name}`: passed"
    )


def test_a_tampered_object_fails_at_the_checksum_and_alerts(setup: Setup) -> None:
    backup = setup.back_up()
    client = setup.s3.client()
    key = setup.object_key(backup, "dump")
    body = bytearray(client.get_object(Bucket=setup.bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    client.put_object(Bucket=setup.bucket, Key=key, Body=bytes(body))

    state, _ = setup.restore_test()

    assert state.is_failed() and state.name == "RestoreTestFailed"
    [record] = setup.records()
    assert record.status == "failed" and record.checks == []
    assert record.error is not None and "checksum mismatch" in record.error
    [alert] = setup.alerts()
    assert (alert["severity"], alert["subject"]) == ("critical", setup.name)
    assert alert["title"] == f"Restore test of {setup.name} failed"
    assert "corrupted or truncated" in alert["summary"]


def test_a_manifest_disagreeing_with_the_dump_fails_naming_the_table(setup: Setup) -> None:
    backup = setup.back_up()
    client = setup.s3.client()
    key = setup.object_key(backup, "manifest.json")
    manifest = json.loads(client.get_object(Bucket=setup.bucket, Key=key)["Body"].read())
    for table in manifest["tables"]:
        if table["name"] == "public.monitors":
            table["rows"] = 10_000
    client.put_object(Bucket=setup.bucket, Key=key, Body=json.dumps(manifest).encode())

    state, _ = setup.restore_test()

    assert state.is_failed()
    [record] = setup.records()
    checks = checks_by_name(record)
    assert checks["rows public.monitors"] == {
        "name": "rows public.monitors",
        "ok": False,
        "expected": "10,000",
        "observed": "120",
    }
    assert checks["rows public.users"]["ok"]
    assert "public.monitors: 10,000 rows in the manifest, 120 restored" in state.message
    assert record.error == "public.monitors: 10,000 rows in the manifest, 120 restored"
    [alert] = setup.alerts()
    assert alert["summary"] == record.error


def test_an_index_the_restore_cannot_rebuild_is_caught(setup: Setup) -> None:
    """An invalid index (a failed CREATE INDEX CONCURRENTLY) is in the manifest but pg_dump
    leaves it out: the restored copy lacks it, and the test says which."""
    with psycopg.connect(setup.source, autocommit=True) as source:
        source.execute("INSERT INTO monitors (user_id, name) VALUES (1, 'monitor 1')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            source.execute("CREATE UNIQUE INDEX CONCURRENTLY monitors_name ON monitors (name)")
    setup.back_up()

    state, _ = setup.restore_test()

    assert state.is_failed()
    [record] = setup.records()
    indexes = checks_by_name(record)["indexes"]
    assert (indexes["ok"], indexes["observed"]) == (False, "6 restored")
    assert indexes["expected"] == "7 as in the manifest"
    assert "indexes: 7 in the manifest, 6 restored; missing public.monitors_name" in (
        record.error or ""
    )


def test_a_failing_sql_check_fails_the_test(shared: Setup) -> None:
    shared.settings["checks"] = [
        {"name": "has-users", "sql": "select count(*) > 0 from users"},
        {"name": "many-users", "sql": "select count(*) > 1000 from users"},
    ]

    state, _ = shared.restore_test()

    assert state.is_failed()
    record = shared.latest()
    checks = checks_by_name(record)
    assert checks["check has-users"]["ok"]
    assert checks["check many-users"] == {
        "name": "check many-users",
        "ok": False,
        "expected": "true",
        "observed": "False",
    }
    assert record.error == (
        "check many-users: expected true, got False (select count(*) > 1000 from users)"
    )


KILLED_RUN = """
import sys, time
from datetime import UTC, datetime, timedelta
from tasks.recovery import scratch
from vigil import restore_test as rt
with scratch.scratch_session(sys.argv[1], sys.argv[2], wait=timedelta(seconds=30)) as admin:
    name = rt.scratch_name(sys.argv[2], datetime.now(UTC))
    scratch.create_database(admin, name)
    print(name, flush=True)
    time.sleep(600)
"""


def test_a_scratch_database_left_by_a_killed_run_is_dropped_by_the_next(shared: Setup) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_RUN), shared.server, shared.name],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert child.stdout is not None
        leftover = child.stdout.readline().strip()
    finally:
        child.kill()
        child.wait()
    other = f"vigil_restore_other_{secrets.token_hex(3)}_20240101_000000"
    with psycopg.connect(shared.server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(other)))
    try:
        assert leftover in scratch_databases(shared.server)

        state, summary = shared.restore_test()

        assert state.is_completed(), state.message
        assert leftover in summary["databases"][0]["dropped_leftovers"]
        assert leftover not in scratch_databases(shared.server)
        assert other in scratch_databases(shared.server)
    finally:
        with psycopg.connect(shared.server, autocommit=True) as admin:
            for name in (leftover, other):
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def test_no_backup_to_test_is_a_failure_with_the_reason(setup: Setup) -> None:
    state, _ = setup.restore_test()

    assert state.is_failed()
    [record] = setup.records()
    assert record.error == f"{setup.name}: no backup on record to test (run `vigil backup`)"
    [alert] = setup.alerts()
    assert alert["severity"] == "critical" and alert["summary"] == record.error


def test_a_restore_slower_than_the_rto_alerts_high(shared: Setup) -> None:
    shared.settings["max_duration"] = "1ms"
    shared.settings["hard_timeout"] = "5m"

    state, _ = shared.restore_test()

    assert state.is_failed() and state.name == "RestoreTooSlow"
    record = shared.latest()
    assert (record.status, record.rto_met) == ("passed", False)
    [alert] = shared.alerts()
    assert alert["severity"] == "high"
    assert "OVER the 1ms RTO" in alert["summary"]


def test_the_cli_runs_the_flow_and_prints_json(shared: Setup) -> None:
    from vigil.cli import app

    backup = shared.backup_id

    result = CliRunner().invoke(
        app, ["restore-test", "-c", shared.config(), "--backup", backup, "--json"]
    )

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is True
    [database] = document["databases"]
    assert (database["backup_id"], database["status"]) == (backup, "passed")
    bad = CliRunner().invoke(app, ["restore-test", "-c", shared.config(), "-d", "nope"])
    assert bad.exit_code == 2


def test_a_run_over_the_hard_time_limit_fails_and_cleans_up(shared: Setup) -> None:
    shared.settings["hard_timeout"] = "1ms"

    state, _ = shared.restore_test()

    assert state.is_failed()
    record = shared.latest()
    assert record.error == "the hard time limit of 1ms ran out before pg_restore"
    assert record.duration_s is None and record.rto_met is None


def test_a_scratch_server_refusing_connections_fails_with_the_reason(
    shared: Setup, closed_port: int
) -> None:
    shared.settings["scratch_url"] = f"postgresql://postgres@127.0.0.1:{closed_port}/postgres"

    state, _ = shared.restore_test()

    assert state.is_failed()
    error = shared.latest().error or ""
    assert error.startswith(
        f"cannot connect to the scratch server postgres@127.0.0.1:{closed_port}/postgres"
    )
    [alert] = shared.alerts()
    assert alert["severity"] == "critical" and alert["summary"] == error
