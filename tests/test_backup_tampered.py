"""A backup altered in storage after it was written (one byte flipped, or cut short) is caught
by reading it back: verification fails the checksum (and the size), and `vigil restore`
refuses it without touching the target."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.backup import daily_backup
from tasks.pgdump import read_back
from tasks.storage import open_storage
from tests.backup_helpers import backups, configure, counts, fresh_database, seed
from tests.fixtures.s3 import S3Endpoint
from tests.helpers import run
from vigil.backup.identity import Keys
from vigil.backup.verification import Verification, verify
from vigil.cli import app
from vigil.config import load_config

pytestmark = pytest.mark.usefixtures("prefect_api")


def verify_stored(config: Path, backup: str) -> Verification:
    """What the flow does after an upload: read the object back and judge it."""
    loaded = load_config(config)
    storage = open_storage(loaded.backup)
    keys = Keys.of(backup)
    manifest = json.loads(b"".join(storage.read(keys.manifest)))
    database = loaded.databases[0]
    observed = read_back(storage, keys, manifest["dump"])
    return verify(
        manifest,
        observed,
        database,
        previous_size=None,
        max_age=loaded.backup.max_age,
        now=datetime.now(UTC),
    )


def failed(verification: Verification) -> dict[str, tuple[str, str]]:
    return {c.name: (c.expected, c.observed) for c in verification.failures}


def test_flipped_or_truncated_objects_fail_verification_and_restore_refuses_them(
    tmp_path: Path, pg_database: str, pg_server_url: str, s3_server: S3Endpoint, s3_bucket: str
) -> None:
    seed(pg_database)
    settings = {"endpoint_url": s3_server.url, "region": "us-east-1"}
    config = configure(tmp_path, pg_database, f"s3://{s3_bucket}/v", backup={"s3": settings})
    state, _ = run(daily_backup, config_path=str(config))
    assert state.is_completed(), state.message
    [record] = backups(tmp_path)
    assert verify_stored(config, record.id).passed
    client = s3_server.client()
    key = f"v/{Keys.of(record.id).dump}"
    original = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    middle = len(original) // 2
    flipped = original[:middle] + bytes([original[middle] ^ 0xFF]) + original[middle + 1 :]

    client.put_object(Bucket=s3_bucket, Key=key, Body=flipped)
    verification = verify_stored(config, record.id)

    assert not verification.passed
    assert set(failed(verification)) == {"checksum"}
    expected, observed = failed(verification)["checksum"]
    assert expected == record.sha256 and observed != record.sha256

    client.put_object(Bucket=s3_bucket, Key=key, Body=original[: len(original) - 100])
    verification = verify_stored(config, record.id)

    assert {"size", "checksum"} <= set(failed(verification))
    assert failed(verification)["size"] == (str(len(original)), str(len(original) - 100))

    with fresh_database(pg_server_url) as target:
        result = CliRunner().invoke(app, ["restore", record.id, "--to", target, "-c", str(config)])

        assert result.exit_code == 1, result.output
        assert "does not match its manifest" in result.output
        assert "corrupted or truncated, not restoring" in result.output
        assert counts(target) == {}
