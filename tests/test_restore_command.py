"""`vigil restore`: the real recovery. A backup made by the daily flow is fetched, its
checksum proven, restored in parallel into a fresh database and compared table by table
with its manifest; a non-empty target is refused unless --clean; a manifest that disagrees
with the restored data fails the restore; the catalog is not needed (store lost)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner, Result

from flows.backup import daily_backup
from tests.backup_helpers import EXPECTED, backups, configure, counts, fresh_database, seed
from tests.helpers import run
from vigil.backup.identity import Keys
from vigil.cli import app

pytestmark = pytest.mark.usefixtures("prefect_api")
ROOT = Path(__file__).resolve().parents[1]


def restore(config: Path, backup: str, target: str, *options: str) -> Result:
    return CliRunner().invoke(app, ["restore", backup, "--to", target, "-c", str(config), *options])


def test_restore_into_a_fresh_database_matches_the_manifest(
    tmp_path: Path, pg_database: str, pg_server_url: str
) -> None:
    seed(pg_database)
    folder = tmp_path / "backups"
    config = configure(tmp_path, pg_database, folder.as_uri())
    state, _ = run(daily_backup, config_path=str(config))
    assert state.is_completed(), state.message
    [record] = backups(tmp_path)

    with fresh_database(pg_server_url) as target:
        result = restore(config, record.id, target, "--jobs", "2")

        assert result.exit_code == 0, result.output
        assert counts(target) == EXPECTED
        assert f"restored {record.id} (database main, taken " in result.output
        assert f"sha256 {record.sha256} matches the catalog and manifest" in result.output
        assert "pg_restore" in result.output and "(2 jobs), checks" in result.output
        assert "3 of 3 tables have the manifest's row counts" in result.output

        result = restore(config, record.id, target)

        assert result.exit_code == 2, result.output
        assert "is not empty (audit.events, " in result.output and "pass --clean" in result.output

        result = restore(config, record.id, target, "--clean", "--json")

        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["ok"] is True and report["backup_id"] == record.id
        assert {c["name"]: c["observed"] for c in report["checks"]}["rows public.monitors"] == "120"
        assert counts(target) == EXPECTED

    manifest_path = folder / Keys.of(record.id).manifest
    manifest = json.loads(manifest_path.read_text())
    for table in manifest["tables"]:
        if table["name"] == "public.users":
            table["rows"] = 41
    manifest_path.write_text(json.dumps(manifest))
    (tmp_path / "elsewhere").mkdir()
    lost_store = configure(tmp_path / "elsewhere", pg_database, folder.as_uri())

    with fresh_database(pg_server_url) as target:
        result = restore(lost_store, record.id, target)

    assert result.exit_code == 1, result.output
    assert "matches the manifest (not in this store's catalog)" in result.output
    assert "MISSING public.users: 41 rows in the manifest, 40 restored" in result.output
    assert "2 of 3 tables have the manifest's row counts" in result.output


def test_restore_refuses_bad_usage(tmp_path: Path, pg_database: str) -> None:
    config = configure(tmp_path, pg_database, (tmp_path / "b").as_uri())

    assert restore(config, "yesterday", pg_database).exit_code == 2
    result = restore(config, "main-20240501T020000Z", "mysql://x")
    assert result.exit_code == 2 and "--to must be a postgresql:// URL" in result.output
    result = restore(config, "main-20240501T020000Z", pg_database)
    assert result.exit_code == 1 and "no readable manifest at file://" in result.output


SLOW_VIEW = """
CREATE FUNCTION slow_in_restored_copy() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    IF current_database() LIKE 'vigil\\_restore\\_%' THEN
        PERFORM pg_sleep(600);
    END IF;
    RETURN 1;
END $$;
CREATE MATERIALIZED VIEW slow_summary AS SELECT slow_in_restored_copy() AS one;
"""


def test_restore_gets_the_restore_tests_checks(
    tmp_path: Path, pg_database: str, pg_server_url: str
) -> None:
    """The real recovery judges the copy as the restore test does: indexes, constraints,
    valid indexes, fingerprint, amcheck (the extension is not left in the target)."""
    seed(pg_database)
    config = configure(tmp_path, pg_database, (tmp_path / "backups").as_uri())
    state, _ = run(daily_backup, config_path=str(config))
    assert state.is_completed(), state.message
    [record] = backups(tmp_path)

    with fresh_database(pg_server_url) as target:
        result = restore(config, record.id, target, "--json")
        with psycopg.connect(target) as connection:
            extensions = connection.execute("SELECT extname FROM pg_extension").fetchall()

    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert {"indexes", "constraints", "valid_indexes", "schema_fingerprint", "amcheck"} <= set(
        checks
    )
    assert checks["amcheck"]["observed"] == "6 indexes checked"
    assert ("amcheck",) not in extensions


def test_sigterm_during_restore_stops_pg_restore_and_leaves_no_archive(
    tmp_path: Path, pg_database: str, pg_server_url: str
) -> None:
    seed(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as connection:
        connection.execute(SLOW_VIEW.encode())
    config = configure(tmp_path, pg_database, (tmp_path / "backups").as_uri())
    state, _ = run(daily_backup, config_path=str(config))
    assert state.is_completed(), state.message
    [record] = backups(tmp_path)
    folders = set(Path(tempfile.gettempdir()).glob("vigil-restore-*"))

    with fresh_database(pg_server_url) as target:
        name = target.rsplit("/", 1)[1]
        command = [sys.executable, "-m", "vigil", "restore", record.id, "--to", target]
        child = subprocess.Popen(
            [*command, "-c", str(config)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for_refresh(pg_server_url, name, child)
            child.send_signal(signal.SIGTERM)
            output, _ = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()

        assert child.returncode == 1, output
        assert "restore stopped by SIGTERM: pg_restore was stopped" in output
        assert not [p for p in live_commands() if name in p and "pg_restore" in p]
        assert set(Path(tempfile.gettempdir()).glob("vigil-restore-*")) <= folders


def wait_for_refresh(server: str, name: str, child: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert child.poll() is None, f"the restore ended early: {child.communicate()[0]}"
        with psycopg.connect(server, autocommit=True) as admin:
            row = admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
                "AND query LIKE 'REFRESH MATERIALIZED VIEW%%'",
                (name,),
            ).fetchone()
        if row is not None:
            return
        time.sleep(0.1)
    raise AssertionError("pg_restore never reached the slow view")


def live_commands() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found
