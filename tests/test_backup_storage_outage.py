"""S3 goes away in the middle of an upload (a dedicated moto server, stopped once parts are
up): the dump is retried, then the backup is marked failed, retention does not run, a
critical alert goes out; once S3 is back, the next backup aborts the orphaned upload."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from flows.backup import daily_backup
from tests.backup_helpers import (
    add_bulk,
    backups,
    configure,
    deletions,
    quick_retries,
    seed,
    task_run_counts,
)
from tests.fixtures.receivers import HttpReceiver
from tests.fixtures.s3 import S3Endpoint
from tests.helpers import run
from tests.ports import free_port
from vigil.store import Backup, open_store

pytestmark = pytest.mark.usefixtures("prefect_api")

PART = 5 * 1024**2
OLD = ("main-20240101T020000Z", "main-20240102T020000Z")


@pytest.fixture
def own_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Endpoint]:
    """A moto server only this test stops (the session's shared one must stay up)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # boto3's own knob: fail fast, tasks retry
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = S3Endpoint(url=f"http://127.0.0.1:{port}", server=server)
    yield endpoint
    endpoint.server.stop()


def when_parts_are_up(
    endpoint: S3Endpoint, bucket: str, act: Callable[[], None]
) -> threading.Event:
    """Call `act` from a thread as soon as some upload in `bucket` has a part stored."""
    done = threading.Event()
    client = endpoint.client()

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                parts = client.list_parts(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                if parts.get("Parts"):
                    act()
                    done.set()
                    return
            time.sleep(0.01)

    threading.Thread(target=watch, daemon=True).start()
    return done


def old_backups(store_url: str, endpoint: S3Endpoint, bucket: str) -> None:
    """Two verified backups from long ago that retention would delete after a good run."""
    client = endpoint.client()
    with open_store(store_url) as store, store.session() as session:
        for n, name in enumerate(OLD):
            for suffix in ("dump", "manifest.json"):
                client.put_object(Bucket=bucket, Key=f"vigil/main/{name}.{suffix}", Body=b"x" * 100)
            created = datetime.now(UTC) - timedelta(days=40 - n)
            session.add(
                Backup(
                    id=name,
                    database="main",
                    created_at=created,
                    status="succeeded",
                    verified=True,
                    size_bytes=100,
                )
            )


def stored_keys(endpoint: S3Endpoint, bucket: str) -> list[str]:
    found = endpoint.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(o["Key"] for o in found)


def test_storage_outage_mid_upload_fails_alerts_and_leaves_old_backups_alone(
    tmp_path: Path,
    pg_database: str,
    own_s3: S3Endpoint,
    webhook_receiver: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quick_retries(monkeypatch)
    seed(pg_database)
    add_bulk(pg_database, 400_000)
    bucket = "vigil-outage"
    own_s3.client().create_bucket(Bucket=bucket)
    settings = {"endpoint_url": own_s3.url, "region": "us-east-1", "part_size": PART}
    backup = {
        "s3": settings,
        "retention": {"keep_last": 1, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0},
    }
    storage = f"s3://{bucket}/vigil"
    # The slowest compression leaves time to pull the plug between parts.
    slow = {**backup, "compression": 9}
    config = configure(tmp_path, pg_database, storage, hook=webhook_receiver.url, backup=slow)
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    old_backups(store_url, own_s3, bucket)
    cut = when_parts_are_up(own_s3, bucket, own_s3.server.stop)

    state, _ = run(daily_backup, config_path=str(config))

    assert cut.is_set(), "the upload finished before the outage: make the dump bigger"
    assert state.is_failed() and state.name == "BackupFailed", state.message
    message = state.message or ""
    assert f"{own_s3.url}" in message and "S3 unreachable" in message
    assert task_run_counts(state)["dump main"] == 4, "the dump should be tried 4 times"
    new = backups(tmp_path)[-1]
    assert (new.status, new.verified, new.sha256) == ("failed", False, None)
    assert "S3 unreachable" in (new.error or "")
    assert deletions(tmp_path) == []
    [alert] = webhook_receiver.json_bodies()
    assert (alert["severity"], alert["title"]) == ("critical", "Backup of main failed")
    assert "S3 unreachable" in alert["summary"]

    own_s3.server = ThreadedMotoServer(
        ip_address="127.0.0.1", port=int(own_s3.url.rsplit(":", 1)[1])
    )
    own_s3.server.start()
    client = own_s3.client()
    [orphan] = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert orphan["Key"] == f"vigil/main/{new.id}.dump"
    assert f"vigil/main/{new.id}.dump" not in stored_keys(own_s3, bucket)
    assert all(f"vigil/main/{name}.dump" in stored_keys(own_s3, bucket) for name in OLD)

    config = configure(tmp_path, pg_database, storage, hook=webhook_receiver.url, backup=backup)
    state, _ = run(daily_backup, config_path=str(config))

    assert state.is_completed(), state.message
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    good = backups(tmp_path)[-1]
    assert (good.status, good.verified) == ("succeeded", True)
    assert sorted(d.backup_id for d in deletions(tmp_path)) == sorted(OLD)
    assert stored_keys(own_s3, bucket) == [
        f"vigil/main/{good.id}.dump",
        f"vigil/main/{good.id}.globals.sql",
        f"vigil/main/{good.id}.manifest.json",
    ]
