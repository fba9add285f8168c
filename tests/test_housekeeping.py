"""Pruning on its own and by hand: the `daily-housekeeping` duty (a real flow run) and
`vigil records prune [--dry-run]` delete what is past retention, say what per table, and
keep the rest; a store that refuses ends the run `PruneFailed`, not a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from flows.housekeeping import daily_housekeeping
from tests.helpers import table_artifact
from vigil.cli import app
from vigil.store import CheckResult, Incident, Store, open_store

NOW = datetime.now(UTC)


def seed(store: Store) -> None:
    rows = [
        {"monitor": "api", "checked_at": NOW - timedelta(days=d), "ok": True, "state": "UP"}
        for d in (90, 60, 45, 10, 1)
    ]
    store.add_check_results(rows)
    with store.session() as session:
        session.add(
            Incident(
                monitor="api",
                state="DOWN",
                started_at=NOW - timedelta(days=60),
                ended_at=NOW - timedelta(days=59),
                severity="high",
            )
        )


def config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "vigil.yaml"
    path.write_text(
        f"store: {{url: '{store_url}'}}\n"
        "retention: {checks: 30d}\n"
        "monitors: [{name: api, url: 'http://127.0.0.1:1/'}]\n"
    )
    return path


def checks(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(CheckResult)) or 0)


def test_records_prune_dry_run_says_what_it_would_delete_and_deletes_nothing(
    tmp_path: Path, store_url: str
) -> None:
    with open_store(store_url) as store:
        seed(store)
    path = config(tmp_path, store_url)
    runner = CliRunner()
    dry = runner.invoke(app, ["records", "prune", "--dry-run", "-c", str(path)])
    assert dry.exit_code == 0, dry.output
    assert "would delete" in dry.output
    line = next(x for x in dry.output.splitlines() if "check_results" in x)
    # the 60- and 45-day-old checks; the 90-day-old one is the monitor's first check, kept
    assert "would delete         2 row(s) older than    30d" in line, line
    with open_store(store_url) as store:
        assert checks(store) == 5
    done = runner.invoke(app, ["records", "prune", "--json", "-c", str(path)])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    tables = {t["table"]: t for t in report["tables"]}
    assert tables["check_results"]["deleted"] == 2 and tables["incidents"]["deleted"] == 0
    assert report["dry_run"] is False and report["deleted"] == 2
    with open_store(store_url) as store:
        assert checks(store) == 3


def test_the_housekeeping_duty_prunes_and_publishes_what_went(
    prefect_api: None, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    with open_store(store_url) as store:
        seed(store)
    state = daily_housekeeping(config_path=str(config(tmp_path, store_url)), return_state=True)
    assert state.is_completed(), state.message
    assert state.message.startswith("deleted 2 record(s) past retention; incremental vacuum")
    rows = {r["table"]: r for r in table_artifact("records-housekeeping")}
    assert rows["check_results"]["deleted"] == 2 and rows["check_results"]["keep"] == "30d"
    assert rows["incidents"]["deleted"] == 0
    with open_store(store_url) as store:
        assert checks(store) == 3


def test_a_store_that_refuses_ends_the_run_prune_failed(prefect_api: None, tmp_path: Path) -> None:
    broken = tmp_path / "vigil.db"
    broken.write_bytes(b"this is not an SQLite database" * 100)
    state = daily_housekeeping(
        config_path=str(config(tmp_path, f"sqlite:///{broken}")), return_state=True
    )
    assert state.is_failed() and state.name == "PruneFailed"
    assert "the records store refused the prune: " in state.message
    assert "not a database" in state.message
