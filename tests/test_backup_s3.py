"""A daily backup into S3 over HTTP (moto's server): a multipart upload of several parts,
several at once, server-side encrypted, whose stored bytes hash to the catalog's checksum,
with nothing left half-uploaded; parts that finish out of order still make the object; a
part S3 refuses aborts the upload and names the part."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.backup import daily_backup
from tasks.storage import LocalStorage, S3Storage, StorageError, read_bytes, upload
from tests.backup_helpers import add_bulk, backups, configure, seed, verifications
from tests.fixtures.s3 import S3Endpoint
from tests.helpers import run
from vigil.config import ConfigError, S3Settings, parse_config

pytestmark = pytest.mark.usefixtures("prefect_api")

PART = 5 * 1024**2


def test_backup_to_s3_streams_parts_encrypted_and_verified(
    tmp_path: Path, pg_database: str, s3_server: S3Endpoint, s3_bucket: str
) -> None:
    seed(pg_database)
    add_bulk(pg_database, 120_000)
    s3 = {
        "endpoint_url": s3_server.url,
        "region": "us-east-1",
        "sse": "AES256",
        "part_size": PART,
        "concurrency": 3,
    }
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


SECRET = "h20s3-not-to-be-seen"


def s3_storage(endpoint: S3Endpoint, bucket: str, concurrency: int) -> S3Storage:
    settings = S3Settings(
        endpoint_url=endpoint.url,
        region="us-east-1",
        part_size=PART,
        concurrency=concurrency,
        access_key_id="testing",
        secret_access_key=SECRET,
    )
    return S3Storage(f"s3://{bucket}/vigil", settings)


def stream(size: int) -> bytes:
    """Bytes that differ from part to part, so a part out of place changes the object."""
    return os.urandom(size)


def write_in_pieces(storage: Any, key: str, data: bytes) -> None:
    with upload(storage, key) as out:
        for start in range(0, len(data), 64 * 1024):  # age's chunk size, as the dump writes
            out.write(data[start : start + 64 * 1024])
        out.commit()


def wrap_upload_part(storage: S3Storage, around: Callable[..., Any]) -> None:
    """Route the storage's upload_part through `around(real, **arguments)`: the request
    still goes to the moto server; `around` only changes when or what it sends."""
    real = storage.client.upload_part
    storage.client.upload_part = lambda **arguments: around(real, **arguments)


def test_parts_in_flight_at_once_make_the_same_object_as_a_folder(
    tmp_path: Path, s3_server: S3Endpoint, s3_bucket: str
) -> None:
    data = stream(4 * PART + 12345)
    folder = LocalStorage((tmp_path / "folder").as_uri())
    storage = s3_storage(s3_server, s3_bucket, concurrency=3)
    in_flight, most = 0, 0
    lock = threading.Lock()

    def counting(real: Callable[..., Any], **arguments: Any) -> Any:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        try:
            return real(**arguments)
        finally:
            with lock:
                in_flight -= 1

    wrap_upload_part(storage, counting)

    write_in_pieces(folder, "main/one.dump", data)
    write_in_pieces(storage, "main/one.dump", data)

    assert read_bytes(storage, "main/one.dump") == read_bytes(folder, "main/one.dump") == data
    head = s3_server.client().head_object(Bucket=s3_bucket, Key="vigil/main/one.dump")
    assert head["ETag"].strip('"').endswith("-5")
    assert 1 < most <= 3


def test_parts_finishing_out_of_order_are_completed_in_part_order(
    s3_server: S3Endpoint, s3_bucket: str
) -> None:
    data = stream(3 * PART + 999)
    storage = s3_storage(s3_server, s3_bucket, concurrency=3)
    second_up = threading.Event()
    finished: list[int] = []

    def first_part_last(real: Callable[..., Any], **arguments: Any) -> Any:
        number = arguments["PartNumber"]
        if number == 1:
            assert second_up.wait(60)
        answer = real(**arguments)
        finished.append(number)
        if number == 2:
            second_up.set()
        return answer

    wrap_upload_part(storage, first_part_last)

    write_in_pieces(storage, "main/two.dump", data)

    assert finished.index(2) < finished.index(1)
    assert read_bytes(storage, "main/two.dump") == data


def test_a_part_s3_refuses_aborts_the_upload_and_names_the_part(
    s3_server: S3Endpoint, s3_bucket: str
) -> None:
    storage = s3_storage(s3_server, s3_bucket, concurrency=2)

    def third_part_refused(real: Callable[..., Any], **arguments: Any) -> Any:
        if arguments["PartNumber"] == 3:
            # Sent to an upload S3 does not know: it refuses this part (moto answers 500),
            # while the real upload holds the other parts and must be aborted.
            arguments["UploadId"] = "no-such-upload"
        return real(**arguments)

    wrap_upload_part(storage, third_part_refused)

    with pytest.raises(StorageError) as caught:
        write_in_pieces(storage, "main/three.dump", stream(5 * PART))

    message = str(caught.value)
    assert f"upload part 3 of s3://{s3_bucket}/vigil/main/three.dump" in message
    assert SECRET not in message
    client = s3_server.client()
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=s3_bucket).get("Contents", []) == []


@pytest.mark.parametrize("value", ["0", "-1", "two", "2.5", "true"])
def test_concurrency_must_be_a_whole_number_of_parts(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"backup:\n  s3: {{concurrency: {value}}}\n")
    [error] = caught.value.errors
    assert error.startswith("backup.s3.concurrency: concurrency must be a whole number"), error


def test_concurrency_defaults_to_two_parts_at_once() -> None:
    assert parse_config("").backup.s3.concurrency == 2
    assert parse_config("backup:\n  s3: {concurrency: 4}\n").backup.s3.concurrency == 4
