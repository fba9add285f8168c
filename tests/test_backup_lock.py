"""Two backups of the same database never overlap: a run waits while the Prefect concurrency
limit `backup-<database>` is held, and one that cannot get it in time gives up (BackupLocked)
naming the run that holds it, and says so at the webhook."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.backup import backup_lock, daily_backup
from tests.backup_helpers import backups, configure, seed
from tests.fixtures.receivers import HttpReceiver
from tests.helpers import run
from vigil.store import Backup, open_store

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_a_backup_waits_while_another_holds_the_database(tmp_path: Path, pg_database: str) -> None:
    seed(pg_database)
    config = str(configure(tmp_path, pg_database, (tmp_path / "b").as_uri()))
    states: list[Any] = []
    waiting = threading.Thread(
        target=lambda: states.append(run(daily_backup, config_path=config)[0])
    )

    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as store:
        with backup_lock(store, "main", timedelta(seconds=5)):
            waiting.start()
            time.sleep(1)
            assert waiting.is_alive() and backups(tmp_path) == [], "it did not wait for the lock"
            released = datetime.now(UTC)
        waiting.join(timeout=60)

    [state] = states
    assert state.is_completed(), state.message
    [record] = backups(tmp_path)
    assert record.created_at >= released.replace(microsecond=0)


def test_a_backup_that_cannot_get_the_lock_gives_up_and_names_the_holder(
    tmp_path: Path,
    pg_database: str,
    webhook_receiver: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = (tmp_path / "b").as_uri()
    config = str(
        configure(
            tmp_path,
            pg_database,
            storage,
            hook=webhook_receiver.url,
            backup={"lock_timeout": "500ms"},
        )
    )
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    holder = Backup(
        id="main-20240501T020000Z",
        database="main",
        created_at=datetime(2024, 5, 1, 2, 0, tzinfo=UTC),
        flow_run_id="4c3f0000-0000-4000-8000-000000000001",
    )
    with open_store(store_url) as store:
        with store.session() as session:
            session.add(holder)
        with backup_lock(store, "main", timedelta(seconds=5)):
            state, summary = run(daily_backup, config_path=config)

    assert state.is_failed() and state.name == "BackupLocked", state.message
    message = state.message or ""
    assert "waited 500ms for the lock 'backup-main' and gave up" in message
    assert "backup main-20240501T020000Z has held it since 2024-05-01 02:00:00 UTC" in message
    assert "4c3f0000-0000-4000-8000-000000000001" in message
    assert "raise backup.lock_timeout" in message
    assert [b.id for b in backups(tmp_path)] == [holder.id], "no backup may start without the lock"
    [alert] = webhook_receiver.json_bodies()
    assert (alert["severity"], alert["title"]) == ("critical", "Backup of main did not run")
    assert summary["databases"][0]["status"] == "locked"
