"""Sealed backups, for real: the daily flow compresses with zstd and seals with age for
public-key recipients; `vigil restore`, the restore test and the drill open them with an
identity from a file or an environment variable; Debian's `age` and `zstd` open them by hand
(the README's one line) and vigil opens what `age` sealed; a wrong or missing identity, a
tampered object, a rotated key and a gzip backup from before all this behave as an operator
needs."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from typer.testing import CliRunner, Result

from flows.backup import daily_backup
from flows.drill import dr_drill
from flows.restore_test import weekly_restore_test
from tasks.pgdump import read_back
from tasks.storage import open_storage
from tests.backup_helpers import EXPECTED, backups, counts, fresh_database, seed
from tests.fixtures.postgres import throwaway_database
from tests.fixtures.s3 import S3Endpoint
from tests.helpers import run, write_config
from vigil.backup.identity import Keys
from vigil.backup.sealing import load_identities
from vigil.cli import app
from vigil.config import load_config
from vigil.redact import redact

pytestmark = [
    pytest.mark.usefixtures("prefect_api"),
    pytest.mark.skipif(
        shutil.which("age") is None or shutil.which("zstd") is None,
        reason="Debian's age and zstd are needed (./dev test installs them: apt-get install age)",
    ),
]
AGE_MAGIC = b"age-encryption.org/v1\n"


def keypair(folder: Path, name: str) -> tuple[Path, str]:
    """An identity file made by `age-keygen`, and its recipient."""
    path = folder / f"{name}.txt"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return path, recipient


def sealed_config(
    tmp_path: Path,
    source: str,
    storage: str,
    recipients: list[str],
    *,
    identity: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    body: dict[str, Any] = {
        "databases": [
            {"name": "main", "url": source, "critical_tables": ["users", "audit.events"]}
        ],
        "backup": {
            "storage": storage,
            "config_files": [str(tmp_path / "vigil.yaml")],
            **({"encrypt": {"recipients": recipients}} if recipients else {}),
        },
        **(extra or {}),
    }
    if identity:
        body.setdefault("restore_test", {})["identity"] = identity
    return write_config(tmp_path, yaml.safe_dump(body, sort_keys=False))


def back_up(config: Path) -> str:
    state, _ = run(daily_backup, config_path=str(config))
    assert state.is_completed(), state.message
    return sorted(b.id for b in backups(config.parent))[-1]


def restore(config: Path, backup: str, target: str, *options: str) -> Result:
    return CliRunner().invoke(app, ["restore", backup, "--to", target, "-c", str(config), *options])


def tables_in(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'audit')"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_sealed_backup_opens_with_vigil_and_with_the_age_cli_and_nothing_else(
    tmp_path: Path, pg_database: str, pg_server_url: str
) -> None:
    seed(pg_database)
    key, recipient = keypair(tmp_path, "key")
    folder = tmp_path / "backups"
    config = sealed_config(tmp_path, pg_database, folder.as_uri(), [recipient])
    backup = back_up(config)
    stored = folder / "main" / f"{backup}.dump"
    data = stored.read_bytes()
    manifest = json.loads((folder / "main" / f"{backup}.manifest.json").read_text())

    # Sealed: age's format, no plaintext of the database in the dump or the config archive.
    assert data.startswith(AGE_MAGIC) and b"user1@example.com" not in data
    assert manifest["dump"]["encoding"] == ["zstd", "age"]
    assert manifest["dump"]["recipients"] == [recipient]
    assert manifest["dump"]["sha256"] == hashlib.sha256(data).hexdigest()
    tarball = (folder / "main" / f"{backup}.config.tar.gz").read_bytes()
    assert tarball.startswith(AGE_MAGIC) and b"vigil.yaml" not in tarball
    assert manifest["config_archive"]["encoding"] == ["age"]
    opened = subprocess.run(
        f"age -d -i {key} {folder / 'main' / f'{backup}.config.tar.gz'} | tar tz",
        shell=True, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "vigil.yaml" in opened.stdout
    # The host that made it held no identity: verified by checksum and the listed contents.
    [record] = backups(tmp_path)
    assert record.verified

    # The README's manual recovery, exactly as written there.
    with fresh_database(pg_server_url) as target:
        line = f"age -d -i {key} {stored} | zstd -d > dump && pg_restore -d {target} dump"
        subprocess.run(line, shell=True, cwd=tmp_path, check=True, capture_output=True)
        assert counts(target) == EXPECTED

    # vigil opens it with the identity from a file, and from an environment variable.
    with fresh_database(pg_server_url) as target:
        result = restore(config, backup, target, "--identity", str(key))
        assert result.exit_code == 0, result.output
        assert counts(target) == EXPECTED
    with fresh_database(pg_server_url) as target, pytest.MonkeyPatch.context() as env:
        env.setenv("SEAL_TEST_KEY", key.read_text())
        result = restore(config, backup, target, "--identity", "env:SEAL_TEST_KEY")
        assert result.exit_code == 0, result.output
        assert counts(target) == EXPECTED
    # `vigil backups` tells whom it was sealed for.
    listing = CliRunner().invoke(app, ["backups", "-c", str(config)])
    assert f"sealed for {recipient}" in listing.output and "warning" not in listing.output

    # The other direction: an archive sealed by the age CLI (zstd by the zstd CLI) opens in vigil.
    other_key, other = keypair(tmp_path, "other")
    plain = tmp_path / "plain.dump"
    subprocess.run(["pg_dump", "-Fc", "-Z0", "-f", str(plain), pg_database], check=True)
    resealed = subprocess.run(
        f"zstd -1 -c {plain} | age -r {other}", shell=True, capture_output=True, check=True
    ).stdout
    stored.write_bytes(resealed)
    manifest["dump"].update(
        sha256=hashlib.sha256(resealed).hexdigest(),
        size_bytes=len(resealed),
        recipients=[other],
        archive_bytes=plain.stat().st_size,
    )
    (folder / "main" / f"{backup}.manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "vigil.db").unlink()  # the store is lost: vigil restores from storage alone
    with fresh_database(pg_server_url) as target:
        result = restore(config, backup, target, "--identity", str(other_key))
        assert result.exit_code == 0, result.output
        assert counts(target) == EXPECTED


def test_a_missing_or_wrong_identity_is_one_clear_line_and_the_target_stays_empty(
    tmp_path: Path, pg_database: str, pg_server_url: str
) -> None:
    seed(pg_database)
    _, recipient = keypair(tmp_path, "key")
    wrong, wrong_recipient = keypair(tmp_path, "wrong")
    config = sealed_config(tmp_path, pg_database, (tmp_path / "b").as_uri(), [recipient])
    backup = back_up(config)

    with fresh_database(pg_server_url) as target:
        cases = {
            "no identity": (),
            "wrong key": ("--identity", str(wrong)),
            "unreadable file": ("--identity", str(tmp_path / "absent.txt")),
            "unset variable": ("--identity", "env:SEAL_TEST_UNSET"),
        }
        outputs = {}
        for case, options in cases.items():
            result = restore(config, backup, target, *options)
            assert result.exit_code == 1, (case, result.output)
            assert "Traceback" not in result.output and len(result.output.splitlines()) <= 2
            outputs[case] = result.output
            assert tables_in(target) == 0, case
    assert f"sealed with age for {recipient}; no identity was given" in outputs["no identity"]
    assert f"answers to {wrong_recipient} only (wrong key" in outputs["wrong key"]
    assert "cannot read the identity file" in outputs["unreadable file"]
    assert "SEAL_TEST_UNSET, which is not set" in outputs["unset variable"]
    # An identity read is a secret from then on.
    secret = next(line for line in wrong.read_text().splitlines() if line.startswith("AGE-"))
    load_identities(str(wrong), "test")
    assert secret not in redact(f"key {secret}")


def test_a_tampered_sealed_object_is_refused_before_pg_restore_runs(
    tmp_path: Path, pg_database: str, pg_server_url: str
) -> None:
    seed(pg_database)
    key, recipient = keypair(tmp_path, "key")
    folder = tmp_path / "backups"
    config = sealed_config(tmp_path, pg_database, folder.as_uri(), [recipient])
    backup = back_up(config)
    stored = folder / "main" / f"{backup}.dump"
    original = stored.read_bytes()
    loaded = load_config(config)
    storage = open_storage(loaded.backup)
    manifest = json.loads((folder / "main" / f"{backup}.manifest.json").read_text())
    identities = load_identities(str(key), "test")
    assert (
        read_back(storage, Keys.of(backup), manifest["dump"], identities).decoded_bytes
        == (manifest["dump"]["archive_bytes"])
    )

    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    # A whole new archive, validly sealed for the same public key: only the checksum tells.
    forged = subprocess.run(
        ["age", "-r", recipient], input=b"PGDMP not this backup", capture_output=True, check=True
    ).stdout
    with fresh_database(pg_server_url) as target:
        for tampered in (bytes(flipped), forged, original[:-100]):
            stored.write_bytes(tampered)
            result = restore(config, backup, target, "--identity", str(key))
            assert result.exit_code == 1, result.output
            assert "checksum mismatch" in result.output and "not restoring" in result.output
            assert tables_in(target) == 0
            observed = read_back(storage, Keys.of(backup), manifest["dump"], identities)
            assert observed.sha256 != manifest["dump"]["sha256"]
        stored.write_bytes(original)
        assert restore(config, backup, target, "--identity", str(key)).exit_code == 0


def test_key_rotation_new_backups_for_new_recipients_old_ones_still_open_with_old_keys(
    tmp_path: Path, pg_database: str, pg_server_url: str
) -> None:
    seed(pg_database)
    old_key, old = keypair(tmp_path, "old")
    new_key, new = keypair(tmp_path, "new")
    storage = (tmp_path / "backups").as_uri()
    first = back_up(sealed_config(tmp_path, pg_database, storage, [old]))
    # Rotation: the new recipient only, and the restore test's identity is the new key.
    config = sealed_config(tmp_path, pg_database, storage, [new], identity=str(new_key))
    second = back_up(config)

    listing = CliRunner().invoke(app, ["backups", "-c", str(config)])
    assert listing.exit_code == 0, listing.output
    lines = {line.split()[0]: line for line in listing.stdout.splitlines() if line}
    assert lines[first].endswith(f"sealed for {old}") and lines[second].endswith(
        f"sealed for {new}"
    )
    assert f"warning: {first}: no configured identity opens it (sealed for {old})" in (
        listing.output
    )
    assert f"warning: {second}" not in listing.output
    as_json = json.loads(CliRunner().invoke(app, ["backups", "-c", str(config), "--json"]).stdout)
    assert {e["id"]: e["sealed_for"] for e in as_json} == {first: [old], second: [new]}
    # Without identities on this host, the current recipient list is the judge.
    keyless = sealed_config(tmp_path, pg_database, storage, [new])
    listing = CliRunner().invoke(app, ["backups", "-c", str(keyless)])
    assert f"warning: {first}: sealed only for recipients no longer in" in listing.output

    config = sealed_config(tmp_path, pg_database, storage, [new], identity=str(new_key))
    with fresh_database(pg_server_url) as target:
        refused = restore(config, first, target)  # restore_test.identity: the new key
        assert refused.exit_code == 1 and f"sealed for {old}" in refused.output
        result = restore(config, first, target, "--identity", str(old_key))
        assert result.exit_code == 0, result.output
        assert counts(target) == EXPECTED


def test_gzip_backups_from_before_still_restore(
    tmp_path: Path, pg_database: str, pg_server_url: str
) -> None:
    seed(pg_database)
    folder = tmp_path / "backups"
    config = sealed_config(tmp_path, pg_database, folder.as_uri(), [])
    text = config.read_text().replace("backup:\n", "backup:\n  compression: 1\n", 1)
    config.write_text(text)  # the old setting: pg_dump's own gzip level
    backup = back_up(config)
    path = folder / "main" / f"{backup}.manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["dump"]["compression"] == 1 and manifest["dump"]["encoding"] == []
    for field in ("codec", "encoding", "archive_bytes"):  # as a manifest from before wrote it
        del manifest["dump"][field]
    path.write_text(json.dumps(manifest))
    subprocess.run(["pg_restore", "--list", str(folder / "main" / f"{backup}.dump")], check=True,
                   capture_output=True)  # fmt: skip

    with fresh_database(pg_server_url) as target:
        result = restore(config, backup, target)
        assert result.exit_code == 0, result.output
        assert counts(target) == EXPECTED


def test_restore_test_and_drill_open_sealed_backups_in_s3_with_their_identities(
    tmp_path: Path, pg_server_url: str, s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    key, recipient = keypair(tmp_path, "key")
    bucket = s3_server.new_bucket()
    s3 = {
        "endpoint_url": s3_server.url,
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "part_size": "5MiB",
    }
    with throwaway_database(pg_server_url) as source:
        seed(source)
        with psycopg.connect(source, autocommit=True) as connection:  # several parts
            connection.execute(
                "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || md5(random()::text) AS v "
                "FROM generate_series(1, 300000) g"
            )

        def configure(identity: str | None) -> Path:
            extra = {
                "restore_test": {"scratch_url": pg_server_url, "jobs": 2, "identity": identity},
                "drill": {"target_url": pg_server_url, "rto": "10m", "rpo": "1h",
                          "identity": identity},
            }  # fmt: skip
            config = sealed_config(
                tmp_path, source, f"s3://{bucket}/vigil", [recipient], extra=extra
            )
            text = config.read_text().replace("backup:\n", f"backup:\n  s3: {json.dumps(s3)}\n", 1)
            config.write_text(text)
            return config

        config = configure("env:SEAL_TEST_IDENTITY")
        monkeypatch.setenv("SEAL_TEST_IDENTITY", key.read_text())
        backup = back_up(config)
        objects = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
        dump = next(o for o in objects if o["Key"].endswith(f"{backup}.dump"))
        body = s3_server.client().get_object(Bucket=bucket, Key=dump["Key"])["Body"].read()
        assert body.startswith(AGE_MAGIC) and dump["Size"] > 5 * 1024 * 1024
        # This host holds the identity: the read-back unsealed and decompressed it whole.
        [record] = backups(tmp_path)
        assert record.verified

        state, summary = run(weekly_restore_test, config_path=str(config))
        assert state.is_completed(), state.message
        state, summary = run(dr_drill, config_path=str(config))
        assert state.is_completed() and summary["status"] == "passed", summary

        monkeypatch.delenv("SEAL_TEST_IDENTITY")
        state, summary = run(weekly_restore_test, config_path=str(config))
        assert state.is_failed()
        assert "SEAL_TEST_IDENTITY, which is not set" in state.message
        assert "Traceback" not in state.message
        unset = configure(None)
        state, summary = run(dr_drill, config_path=str(unset))
        assert state.is_failed() and summary["status"] != "passed"
        assert "no identity was given (set drill.identity" in json.dumps(summary)


def test_the_globals_file_is_sealed_opens_with_the_identity_and_the_age_cli_only(
    tmp_path: Path, pg_database: str, pg_server_url: str
) -> None:
    seed(pg_database)
    key, recipient = keypair(tmp_path, "key")
    wrong, _ = keypair(tmp_path, "wrong")
    folder = tmp_path / "backups"
    extra = {"restore_test": {"scratch_url": pg_server_url, "identity": str(key)}}
    config = sealed_config(tmp_path, pg_database, folder.as_uri(), [recipient], extra=extra)
    backup = back_up(config)
    saved = folder / "main" / f"{backup}.globals.sql"
    manifest = json.loads((folder / "main" / f"{backup}.manifest.json").read_text())
    entry = manifest["globals"]["file"]
    sealed = saved.read_bytes()

    # Sealed like the dump: age's format, no role names or SQL in the clear.
    assert sealed.startswith(AGE_MAGIC) and b"CREATE ROLE" not in sealed
    assert b"postgres" not in sealed
    assert entry["encoding"] == ["age"] and entry["recipients"] == [recipient]
    assert entry["sha256"] == hashlib.sha256(sealed).hexdigest()
    # Debian's age opens it with the identity, and refuses without the right one.
    opened = subprocess.run(["age", "-d", "-i", str(key), str(saved)], capture_output=True)
    assert opened.returncode == 0 and b"CREATE ROLE" in opened.stdout
    refused = subprocess.run(["age", "-d", "-i", str(wrong), str(saved)], capture_output=True)
    assert refused.returncode != 0 and b"CREATE ROLE" not in refused.stdout
    # The restore test reads it back with its identity: a finding of its own.
    state, summary = run(weekly_restore_test, config_path=str(config))
    assert state.is_completed(), state.message
    [tested] = summary["databases"]
    [found] = [f for f in tested["checks"] if f["name"] == "globals"]
    assert found["ok"] and found["observed"].startswith("unsealed, ")

    # The other direction: a globals file sealed by the age CLI opens in vigil.
    resealed = subprocess.run(
        ["age", "-r", recipient], input=opened.stdout, capture_output=True, check=True
    ).stdout
    saved.write_bytes(resealed)
    entry.update(sha256=hashlib.sha256(resealed).hexdigest(), size_bytes=len(resealed))
    (folder / "main" / f"{backup}.manifest.json").write_text(json.dumps(manifest))
    with fresh_database(pg_server_url) as target:
        result = restore(config, backup, target, "--identity", str(key), "--no-owner")
        assert result.exit_code == 0, result.output

    # Tampered (one bit) and sealed for another key: the restore test fails on the globals.
    forged = subprocess.run(
        ["age", "-r", keypair(tmp_path, "other")[1]], input=opened.stdout,
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    flipped = bytearray(resealed)
    flipped[len(flipped) // 2] ^= 0x01
    problems = {
        "tampered": (bytes(flipped), "checksum mismatch: the saved globals"),
        "other key": (forged, "does not decrypt with the identity given"),
    }
    for case, (data, words) in problems.items():
        saved.write_bytes(data)
        if case == "other key":  # a consistent manifest: only the seal can tell
            entry.update(sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
            (folder / "main" / f"{backup}.manifest.json").write_text(json.dumps(manifest))
        state, summary = run(weekly_restore_test, config_path=str(config))
        assert state.is_failed(), case
        [tested] = summary["databases"]
        [found] = [f for f in tested["checks"] if f["name"] == "globals"]
        assert not found["ok"] and words in found["observed"], (case, found)
