"""A daily backup into S3 over HTTP (moto's server): a multipart upload of several parts,
server-side encrypted, whose stored bytes hash to the catalog's checksum, with nothing left
half-uploaded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from flows.backup import daily_backup
from tests.backup_helpers import add_bulk, backups, configure, seed, verifications
from tests.fixtures.s3 import S3Endpoint
from tests.helpers import run

pytestmark = pytest.mark.usefixtures("prefect_api")

PART = 5 * 1024**2


def test_backup_to_s3_streams_parts_encrypted_and_verified(
    tmp_path: Path, pg_database: str, s3_server: S3Endpoint, s3_bucket: str
) -> None:
    seed(pg_database)
    add_bulk(pg_database, 120_000)
    s3 = {"endpoint_url": s3_server.url, "region": "us-east-1", "sse": "AES256", "part_size": PART}
    config = configure(tmp_path, pg_database, f"s3://{s3_bucket}/vigil", backup={"s3": s3})

    state, _ = run(daily_backup, config_path=str(config))

    assert state.is_completed(), state.message
    [record] = backups(tmp_path)
    assert (record.status, record.verified) == ("succeeded", True)
    key = f"vigil/main/{record.id}.dump"
    assert record.location == f"s3://{s3_bucket}/{key}"
    client = s3_server.client()
    head = client.head_object(Bucket=s3_bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == record.size_bytes
    assert record.size_bytes is not None and record.size_bytes > PART
    parts = int(head["ETag"].strip('"').rsplit("-", 1)[1])
    assert parts == -(-record.size_bytes // PART)  # every part but the last is part_size
    body = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == record.sha256

    manifest_key = f"vigil/main/{record.id}.manifest.json"
    manifest = json.loads(client.get_object(Bucket=s3_bucket, Key=manifest_key)["Body"].read())
    assert manifest["dump"]["sha256"] == record.sha256
    assert {t["name"]: t["rows"] for t in manifest["tables"]}["public.bulk"] == 120_000
    assert (
        client.head_object(Bucket=s3_bucket, Key=manifest_key)["ServerSideEncryption"] == "AES256"
    )
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    [check] = verifications(tmp_path)
    assert check.status == "passed"
