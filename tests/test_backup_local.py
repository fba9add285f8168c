"""`vigil backup` into a local folder, against a real database: the dump, its manifest and
the catalog agree with the database, the backup is verified as stored, the run publishes
its table, a low summary reaches the webhook and `vigil backups` lists it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.backup_helpers import (
    EXPECTED,
    backups,
    configure,
    seed,
    verifications,
)
from tests.fixtures.receivers import HttpReceiver
from tests.helpers import table_artifact
from vigil import clock
from vigil.cli import app

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_backup_to_a_folder_is_complete_verified_and_announced(
    tmp_path: Path, pg_database: str, webhook_receiver: HttpReceiver
) -> None:
    seed(pg_database)
    folder = tmp_path / "backups"
    config = configure(
        tmp_path,
        pg_database,
        folder.as_uri(),
        hook=webhook_receiver.url,
        backup={"config_files": [str(tmp_path / "vigil.yaml")]},
    )

    result = CliRunner().invoke(app, ["backup", "-c", str(config), "--json"])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    [record] = backups(tmp_path)
    assert (record.status, record.verified) == ("succeeded", True)
    assert record.id.startswith("main-") and record.database == "main"
    files = sorted(p.name for p in (folder / "main").iterdir())
    assert files == [
        f"{record.id}.{ext}" for ext in ("config.tar.gz", "dump", "globals.sql", "manifest.json")
    ]
    dump = (folder / "main" / f"{record.id}.dump").read_bytes()
    assert record.size_bytes == len(dump)
    assert record.sha256 == hashlib.sha256(dump).hexdigest()
    assert record.location == (folder / "main" / f"{record.id}.dump").as_uri()
    assert (folder / "main" / f"{record.id}.dump").stat().st_mode & 0o777 == 0o600

    manifest = json.loads((folder / "main" / f"{record.id}.manifest.json").read_text())
    assert manifest["backup_id"] == record.id
    assert manifest["dump"]["sha256"] == record.sha256
    assert {t["name"]: t["rows"] for t in manifest["tables"]} == EXPECTED
    assert all(t["exact"] for t in manifest["tables"])
    assert (
        "public.monitors_user_id CREATE INDEX monitors_user_id ON public.monitors "
        "USING btree (user_id)"
    ) in manifest["indexes"]
    assert any("FOREIGN KEY (user_id) REFERENCES users(id)" in c for c in manifest["constraints"])
    assert manifest["schema_fingerprint"].startswith("sha256:")
    assert manifest["server_version_num"] >= 150000 and manifest["database_size"] > 0
    assert manifest["config_archive"]["files"] == [str(tmp_path / "vigil.yaml")]

    # zstd by default, outside pg_dump: the plain zstd and pg_restore read it.
    assert (manifest["dump"]["codec"], manifest["dump"]["encoding"]) == ("zstd:1", ["zstd"])
    assert manifest["dump"]["compression"] == 0 and manifest["dump"]["archive_bytes"] > len(dump)
    listing = subprocess.run(
        f"zstd -dc {folder / 'main' / f'{record.id}.dump'} | pg_restore --list",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "TABLE DATA public users" in listing and "TABLE DATA audit events" in listing

    [check] = verifications(tmp_path)
    assert (check.backup_id, check.status, check.checks_failed) == (record.id, "passed", 0)
    assert check.verification_details is not None
    details = check.verification_details["checks"]
    names = [c["name"] for c in details]
    assert {"checksum", "size", "critical_table users", "min_rows users", "max_age"} <= set(names)
    assert "archive_decodes" in names
    assert check.checks_passed == len(names)
    checksum = next(c for c in details if c["name"] == "checksum")
    assert checksum["expected"] == checksum["observed"] == record.sha256

    [row] = table_artifact("daily-backup")
    assert (row["database"], row["backup"], row["verification"]) == ("main", record.id, "verified")
    assert row["rows"] == sum(EXPECTED.values())

    [alert] = webhook_receiver.json_bodies()
    assert alert["severity"] == "low" and alert["kind"] == "info"
    assert "Backups verified: main" in alert["title"]
    assert summary["databases"][0]["backup_id"] == record.id
    listed = CliRunner().invoke(app, ["backups", "-c", str(config)])
    assert listed.exit_code == 0
    assert f"{record.id}" in listed.stdout and "succeeded verified" in listed.stdout
    header = listed.stdout.splitlines()[0].split()
    assert header[:2] == ["BACKUP", "CREATED"] and "LOCATION" in header, listed.stdout


def test_backup_command_refuses_an_unknown_database(tmp_path: Path) -> None:
    config = configure(tmp_path, "postgresql://127.0.0.1/x", (tmp_path / "b").as_uri())

    result = CliRunner().invoke(app, ["backup", "--database", "billing", "-c", str(config)])

    assert result.exit_code == 2
    assert "no database named 'billing' under `databases:` (known: main)" in result.output


def test_backups_on_a_frozen_clock_take_the_next_free_second(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backup ids are per second: a second backup in the same vigil second (here a frozen
    VIGIL_CLOCK, where that second never ends) takes the next one instead of waiting."""
    seed(pg_database)
    config = configure(tmp_path, pg_database, (tmp_path / "backups").as_uri())
    at = datetime(2031, 1, 1, 2, 0, tzinfo=UTC)
    env = {**os.environ, clock.ENV: clock.frozen(at)}
    command = [sys.executable, "-m", "vigil", "backup", "-c", str(config), "--json"]
    for _ in range(2):
        done = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr
    first, second = backups(tmp_path)
    assert first.created_at.replace(tzinfo=UTC) == at
    assert second.created_at.replace(tzinfo=UTC) == at + timedelta(seconds=1)
    assert first.id != second.id and second.verified
