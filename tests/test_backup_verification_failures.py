"""Every backup verification check seen failing in a real `daily-backup` run, as well as
passing: the run ends VerificationFailed naming the check with what was expected and seen,
the Slack receiver gets the critical alert saying so, and retention does not run (the older
backup it would have pruned is still there). The one check a real pg_dump cannot be made to
fail, "tables in the archive", is seen failing on a real archive that lost a table."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from flows.backup import daily_backup
from tasks.notify import notify
from tasks.pgdump import read_back
from tasks.storage import open_storage
from tests.backup_helpers import add_bulk, backups, deletions, seed
from tests.fixtures.receivers import HttpReceiver
from tests.helpers import run
from vigil.backup.identity import Keys
from vigil.backup.outcome import BackupOutcome, alerts_for
from vigil.backup.verification import verify
from vigil.config import load_config

pytestmark = pytest.mark.usefixtures("prefect_api")

# Keep only the newest verified backup: a verified second backup prunes the first.
PRUNE_ALL_BUT_ONE = {"keep_last": 1, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}


def slack_config(
    tmp_path: Path,
    url: str,
    slack: HttpReceiver,
    *,
    database: dict[str, Any] | None = None,
    backup: dict[str, Any] | None = None,
) -> Path:
    """One database `main`, a folder storage, every severity routed to a Slack incoming
    webhook served by `slack`."""
    main = {"name": "main", "url": url, "critical_tables": ["users"], **(database or {})}
    body = {
        "store": {"url": f"sqlite:///{tmp_path / 'vigil.db'}"},
        "channels": {"slack": {"type": "slack", "webhook_url": slack.url}},
        "routes": {s: ["slack"] for s in ("critical", "high", "medium", "low")},
        "databases": [main],
        "backup": {"storage": (tmp_path / "backups").as_uri(), **(backup or {})},
    }
    path = tmp_path / "vigil.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def slack_text(request_body: dict[str, Any]) -> str:
    """Everything a person reads in the Slack message, markup undone."""
    parts = [request_body.get("text", "")]
    for block in request_body.get("blocks", []):
        parts += [block.get("text", {}).get("text", "")]
        parts += [f.get("text", "") for f in block.get("fields", [])]
    text = "\n".join(parts)
    return text.replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")


def shrink(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("TRUNCATE bulk")


def nothing(url: str) -> None:
    return None


# (failing check, database settings, backup settings, change before the second run,
#  what the check must say it saw)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], Callable[[str], None], str]] = {
    "critical_tables": (
        "critical_table ghost",
        {"critical_tables": ["users", "ghost"]},
        {},
        nothing,
        "expected table and its data in the archive, observed absent",
    ),
    "min_rows": (
        "min_rows users",
        {"min_rows": {"users": 1000}},
        {},
        nothing,
        "expected >= 1000 rows, observed 40",
    ),
    "min_backup_size": (
        "min_backup_size",
        {"min_backup_size": "1GB"},
        {},
        nothing,
        "expected >= 1.0 GB",
    ),
    "half_the_previous_size": (
        "no_sudden_shrink",
        {},
        {},
        shrink,
        "(half the previous",
    ),
    "max_age": ("max_age", {}, {"max_age": "0s"}, nothing, "expected <= 0ms"),
}


@pytest.mark.parametrize("case", [*CASES, "none"])
def test_a_failed_check_fails_the_run_alerts_and_skips_retention(
    case: str, tmp_path: Path, pg_database: str, webhook_receiver: HttpReceiver
) -> None:
    """The second backup fails one check (or, for "none", none: the control, where the
    same retention does prune the first backup)."""
    seed(pg_database)
    add_bulk(pg_database, 20_000)
    config = slack_config(tmp_path, pg_database, webhook_receiver)
    state, _ = run(daily_backup, config_path=str(config))
    assert state.is_completed(), state.message
    [first] = backups(tmp_path)
    first_dump = tmp_path / "backups" / "main" / f"{first.id}.dump"
    assert first_dump.exists() and first.verified

    check, database, backup, change, seen = CASES.get(case, ("", {}, {}, nothing, ""))
    change(pg_database)
    backup = {"retention": PRUNE_ALL_BUT_ONE, **backup}
    config = slack_config(tmp_path, pg_database, webhook_receiver, database=database, backup=backup)
    state, summary = run(daily_backup, config_path=str(config))

    second = backups(tmp_path)[-1]
    alert = slack_text(webhook_receiver.json_bodies()[-1])
    if case == "none":
        assert state.is_completed(), state.message
        assert second.verified and [d.backup_id for d in deletions(tmp_path)] == [first.id]
        assert not first_dump.exists()
        assert "Backups verified: main" in alert
        return
    assert state.is_failed() and state.name == "VerificationFailed", (state.name, state.message)
    assert second.status == "succeeded" and second.verified is False
    [failure] = [c for c in summary["databases"][0]["checks"] if not c["passed"]]
    assert failure["name"] == check
    line = f"{check}: FAILED (expected {failure['expected']}, observed {failure['observed']})"
    assert line in state.message and seen in line
    assert "Backup of main failed verification" in alert
    assert f"{check}: FAILED" in alert and seen in alert
    assert "retention did not run" in alert
    assert deletions(tmp_path) == [] and first_dump.exists()


def test_a_table_lost_from_the_archive_fails_verification_by_name(
    tmp_path: Path, pg_database: str, webhook_receiver: HttpReceiver
) -> None:
    """The stored archive is replaced by a real dump of the same database without one
    table, with the manifest's size and checksum made to match it: only the archive's
    contents can tell, and they name the lost table and the critical table's data."""
    seed(pg_database)
    config = slack_config(
        tmp_path,
        pg_database,
        webhook_receiver,
        database={"critical_tables": ["audit.events"]},
        backup={"compression": "gzip:1"},  # the archive is re-packed with pg_restore -L
    )
    state, _ = run(daily_backup, config_path=str(config))
    assert state.is_completed(), state.message
    [record] = backups(tmp_path)
    keys = Keys.of(record.id)
    folder = tmp_path / "backups"
    manifest = json.loads((folder / keys.manifest).read_text())
    loaded = load_config(config)
    storage = open_storage(loaded.backup)

    def judged() -> Any:
        return verify(
            manifest,
            read_back(storage, keys),
            loaded.databases[0],
            previous_size=None,
            max_age=loaded.backup.max_age,
            now=datetime.now(UTC),
        )

    assert judged().passed
    lossy = subprocess.run(
        ["pg_dump", "-Fc", "--exclude-table=audit.events", f"--dbname={pg_database}"],
        capture_output=True,
        check=True,
    ).stdout
    (folder / keys.dump).write_bytes(lossy)
    probe = read_back(storage, keys)
    manifest["dump"].update(size_bytes=probe.size_bytes, sha256=probe.sha256)

    verification = judged()

    failed = {c.name: c.observed for c in verification.failures}
    assert failed == {
        "tables_in_archive": "missing audit.events",
        "critical_table audit.events": "absent",
    }
    outcome = BackupOutcome("main", backup_id=record.id, status="succeeded")
    outcome.verification = verification
    [alert] = alerts_for([outcome], loaded.backup.storage)
    assert notify(loaded, alert) == 1
    text = slack_text(webhook_receiver.json_bodies()[-1])
    assert "Backup of main failed verification" in text
    assert "tables_in_archive: FAILED (expected all 3 tables of the snapshot, " in text
    assert "observed missing audit.events)" in text
