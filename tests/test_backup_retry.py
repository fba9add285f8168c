"""pg_dump's connection is killed mid-upload: the half-written multipart upload is aborted
(no orphaned parts), the dump is retried against the same snapshot, and the backup that
lands is complete and verified."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from flows.backup import daily_backup
from tests.backup_helpers import add_bulk, backups, configure, quick_retries, seed, task_run_counts
from tests.fixtures.s3 import S3Endpoint
from tests.helpers import run

pytestmark = pytest.mark.usefixtures("prefect_api")

PART = 5 * 1024**2


def kill_pg_dump_once_a_part_is_up(endpoint: S3Endpoint, bucket: str, url: str) -> threading.Event:
    killed = threading.Event()
    client = endpoint.client()

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                parts = client.list_parts(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                if parts.get("Parts"):
                    with psycopg.connect(url, autocommit=True) as connection:
                        connection.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = 'pg_dump' AND datname = current_database()"
                        )
                    killed.set()
                    return
            time.sleep(0.01)

    threading.Thread(target=watch, daemon=True).start()
    return killed


def test_a_dump_killed_mid_upload_is_aborted_and_retried(
    tmp_path: Path,
    pg_database: str,
    s3_server: S3Endpoint,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quick_retries(monkeypatch)
    seed(pg_database)
    add_bulk(pg_database, 200_000)
    settings = {"endpoint_url": s3_server.url, "region": "us-east-1", "part_size": PART}
    config = configure(
        tmp_path,
        pg_database,
        f"s3://{s3_bucket}/vigil",
        backup={"s3": settings, "compression": 9},
    )
    killed = kill_pg_dump_once_a_part_is_up(s3_server, s3_bucket, pg_database)

    state, summary = run(daily_backup, config_path=str(config))

    assert killed.is_set(), "the dump finished before it could be killed: make it bigger"
    assert state.is_completed(), state.message
    assert task_run_counts(state)["dump main"] == 2
    [record] = backups(tmp_path)
    assert (record.status, record.verified) == ("succeeded", True)
    client = s3_server.client()
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert sorted(keys) == [
        f"vigil/main/{record.id}.{suffix}" for suffix in ("dump", "globals.sql", "manifest.json")
    ]
    rows = {t["name"]: t["rows"] for t in record.manifest["tables"]}  # type: ignore[index]
    assert rows["public.bulk"] == 200_000
    assert summary["databases"][0]["verified"] is True
