"""The weekly restore test end to end: a real backup of a real database in S3 (moto over
HTTP), restored into scratch databases on the real PostgreSQL server, judged, dropped,
recorded, published and alerted."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql
from sqlalchemy import select
from typer.testing import CliRunner

from flows.backup import daily_backup
from flows.restore_test import artifact_key, weekly_restore_test
from tests.backup_helpers import seed
from tests.fixtures.postgres import with_database
from tests.fixtures.receivers import HttpReceiver
from tests.fixtures.s3 import S3Endpoint
from tests.helpers import run, write_config
from vigil.store import Backup, RestoreTest, open_store

pytestmark = pytest.mark.usefixtures("prefect_api")


def scratch_databases(server_url: str) -> set[str]:
    with psycopg.connect(server_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'vigil\\_restore\\_%'"
        )
        return {str(r[0]) for r in rows}


@pytest.fixture(autouse=True)
def nothing_left_behind(pg_server_url: str) -> Iterator[None]:
    """Every test ends with no scratch database and no temporary folder of its own left
    (others' runs on the same server may own databases that existed before)."""
    before = scratch_databases(pg_server_url)
    folders = set(Path(tempfile.gettempdir()).glob("vigil-restore-test-*"))
    yield
    assert scratch_databases(pg_server_url) <= before
    assert set(Path(tempfile.gettempdir()).glob("vigil-restore-test-*")) <= folders


class Setup:
    """One database `name` on the test server, backed up to a fresh bucket, with a config
    whose restore tests use the same server for scratch databases."""

    def __init__(
        self, tmp_path: Path, source: str, server: str, s3: S3Endpoint, bucket: str
    ) -> None:
        self.tmp_path, self.source, self.server = tmp_path, source, server
        self.s3, self.bucket = s3, bucket
        self.hook: HttpReceiver | None = None
        self.backup_id = ""
        self.name = f"shop_{secrets.token_hex(4)}"
        self.settings: dict[str, Any] = {"scratch_url": server, "jobs": 2}

    def config(self) -> str:
        s3 = {
            "endpoint_url": self.s3.url,
            "region": "us-east-1",
            "access_key_id": "testing",
            "secret_access_key": "testing",
        }
        body = {
            "databases": [{"name": self.name, "url": self.source}],
            "backup": {"storage": f"s3://{self.bucket}/vigil", "s3": s3},
            "restore_test": self.settings,
        }
        dumped = yaml.safe_dump(body, sort_keys=False)
        return str(write_config(self.tmp_path, dumped, hook=self.hook.url if self.hook else None))

    def back_up(self) -> str:
        state, _ = run(daily_backup, config_path=self.config())
        assert state.is_completed(), state.message
        with open_store(self.store_url) as store, store.session() as session:
            newest = session.scalars(select(Backup.id).order_by(Backup.created_at.desc())).first()
        assert newest is not None
        self.backup_id = newest
        return newest

    def restore_test(self, **parameters: Any) -> tuple[Any, Any]:
        return run(weekly_restore_test, config_path=self.config(), **parameters)

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.tmp_path / 'vigil.db'}"

    def records(self) -> list[RestoreTest]:
        with open_store(self.store_url) as store, store.session() as session:
            return list(session.scalars(select(RestoreTest).order_by(RestoreTest.id)))

    def object_key(self, backup: str, suffix: str) -> str:
        return f"vigil/{self.name}/{backup}.{suffix}"

    def latest(self) -> RestoreTest:
        return self.records()[-1]

    def alerts(self) -> list[dict[str, Any]]:
        assert self.hook is not None
        return [b for b in self.hook.json_bodies() if b["duty"] == "weekly-restore-test"]


@pytest.fixture
def setup(
    tmp_path: Path,
    pg_database: str,
    pg_server_url: str,
    s3_server: S3Endpoint,
    s3_bucket: str,
    webhook_receiver: HttpReceiver,
) -> Setup:
    """A database of its own, for tests that alter the backup or the source."""
    seed(pg_database)
    made = Setup(tmp_path, pg_database, pg_server_url, s3_server, s3_bucket)
    made.hook = webhook_receiver
    return made


@pytest.fixture(scope="module")
def backed_up(
    tmp_path_factory: pytest.TempPathFactory,
    pg_server_url: str,
    s3_server: S3Endpoint,
    prefect_api: None,
) -> Iterator[Setup]:
    """One good backup that tests which only read it share (a backup run costs seconds)."""
    name = f"vigil_test_{secrets.token_hex(6)}"
    bucket = f"vigil-test-{secrets.token_hex(6)}"
    s3_server.client().create_bucket(Bucket=bucket)
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        source = with_database(pg_server_url, name)
        seed(source)
        shared = Setup(tmp_path_factory.mktemp("shared"), source, pg_server_url, s3_server, bucket)
        shared.back_up()
        yield shared
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def shared(backed_up: Setup, webhook_receiver: HttpReceiver) -> Setup:
    backed_up.hook = webhook_receiver
    backed_up.settings = {"scratch_url": backed_up.server, "jobs": 2}
    return backed_up


def checks_by_name(record: RestoreTest) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in record.checks}


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
    assert _latest_markdown(artifact_key(shared.name)).startswith(
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
from vigil import restore_test as rt
with rt.scratch_session(sys.argv[1], sys.argv[2], wait=timedelta(seconds=30)) as admin:
    name = rt.scratch_name(sys.argv[2], datetime.now(UTC))
    rt.create_database(admin, name)
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


def _latest_markdown(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key!r}"
    return str(found[0].data)


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
