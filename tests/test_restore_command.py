"""`vigil restore`: the real recovery. A backup made by the daily flow is fetched, its
checksum proven, restored in parallel into a fresh database and compared table by table
with its manifest; a non-empty target is refused unless --clean; a manifest that disagrees
with the restored data fails the restore; the catalog is not needed (store lost)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from flows.backup import daily_backup
from tests.backup_helpers import EXPECTED, backups, configure, counts, fresh_database, seed
from tests.helpers import run
from vigil.backup import Keys
from vigil.cli import app

pytestmark = pytest.mark.usefixtures("prefect_api")


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
        assert "pg_restore" in result.output and "(2 jobs), total" in result.output
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
    assert "MISMATCH rows public.users: FAILED (expected 41, observed 40)" in result.output
    assert "2 of 3 tables have the manifest's row counts" in result.output


def test_restore_refuses_bad_usage(tmp_path: Path, pg_database: str) -> None:
    config = configure(tmp_path, pg_database, (tmp_path / "b").as_uri())

    assert restore(config, "yesterday", pg_database).exit_code == 2
    result = restore(config, "main-20240501T020000Z", "mysql://x")
    assert result.exit_code == 2 and "--to must be a postgresql:// URL" in result.output
    result = restore(config, "main-20240501T020000Z", pg_database)
    assert result.exit_code == 1 and "no readable manifest at file://" in result.output
