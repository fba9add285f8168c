"""A restore is complete exactly when everything a logical backup holds comes back: on the
rich database (tests/richdb.py: partitions, large objects, sequences, materialized views,
row security, triggers, event triggers, rules, functions, extensions, foreign tables,
publications, comments, grants, odd names and values) the restore test passes, and each
kind of loss, made by restoring the real archive with TOC entries left out (`pg_restore
-l` / `-L`) or by altering a restored copy, fails naming the object that is missing."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from flows.backup import daily_backup
from flows.drill import dr_drill
from tasks.pg import find_tool
from tasks.recovery import fetch, inspect
from tasks.storage import open_storage
from tests.backup_helpers import backups
from tests.fixtures.postgres import throwaway_database, with_database
from tests.fixtures.receivers import HttpReceiver
from tests.fixtures.restore import Setup, checks_by_name
from tests.fixtures.s3 import S3Endpoint
from tests.helpers import run, write_config
from tests.richdb import RICH, build
from vigil.backup.identity import Keys
from vigil.backup.verification import ReadBack, verify
from vigil.cli import app
from vigil.config import Database, load_config
from vigil.recovery import Finding
from vigil.store import Backup, open_store

pytestmark = pytest.mark.usefixtures("prefect_api")

FINGERPRINTED = ["app.accounts", "app.measurements", "odd_values"]
COMPLETENESS = {"objects", "sequences", "large_objects", "matviews"}


@pytest.fixture(scope="module")
def rich(
    tmp_path_factory: pytest.TempPathFactory,
    pg_server_url: str,
    s3_server: S3Endpoint,
    prefect_api: None,
) -> Iterator[Setup]:
    """The rich database, backed up once to S3 (moto) by the daily flow, with a
    partitioned table as a critical table with a row floor, and three tables fingerprinted."""
    name = f"vigil_rich_{secrets.token_hex(6)}"
    bucket = s3_server.new_bucket("vigil-rich")
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        source = with_database(pg_server_url, name)
        build(source)
        made = Setup(tmp_path_factory.mktemp("rich"), source, pg_server_url, s3_server, bucket)
        made.database = {
            "critical_tables": ["app.measurements", "app.sessions"],
            "min_rows": {"app.measurements": 2000, "app.by_kind": 90},
            "fingerprint_tables": FINGERPRINTED,
        }
        made.back_up()
        yield made
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass
class Archive:
    path: Path
    manifest: dict[str, Any]
    toc: list[str]


@pytest.fixture(scope="module")
def archive(rich: Setup, tmp_path_factory: pytest.TempPathFactory) -> Archive:
    """The rich backup's archive and manifest, fetched from S3 as every recovery fetches."""
    storage = open_storage(load_config(rich.config()).backup)
    fetched = fetch(storage, rich.backup_id, tmp_path_factory.mktemp("archive"))
    listed = subprocess.run(
        [find_tool("pg_restore"), "--list", str(fetched.archive)],
        capture_output=True,
        text=True,
        check=True,
    )
    return Archive(fetched.archive, fetched.manifest, listed.stdout.splitlines())


def restore_without(archive: Archive, target: str, left_out: Callable[[str], bool]) -> list[str]:
    """pg_restore the archive into `target` with the TOC entries `left_out` picks commented
    out of its list (-L), as an archive missing them would restore; returns them."""
    dropped = [line for line in archive.toc if not line.startswith(";") and left_out(line)]
    listing = archive.path.with_name(f"list-{secrets.token_hex(4)}")
    listing.write_text("\n".join(";" + line if line in dropped else line for line in archive.toc))
    # No --exit-on-error: what depends on a left-out entry fails, as in a broken restore.
    subprocess.run(
        [find_tool("pg_restore"), "-L", str(listing), "-d", target, str(archive.path)],
        capture_output=True,
        check=False,
    )
    return dropped


def judged(archive: Archive, target: str, *, privileges: bool = False) -> list[Finding]:
    return inspect(
        target, archive.manifest, timeout=120, jobs=1, amcheck=True, privileges=privileges
    ).findings


def failed(findings: list[Finding]) -> dict[str, str]:
    return {f.name: f.problem or "" for f in findings if not f.ok}


# --- passing -----------------------------------------------------------------------------------


def test_the_rich_database_restores_completely_and_the_restore_test_passes(rich: Setup) -> None:
    # amcheck on, as by default: the partitioned parents' indexes must not count as corrupt.
    rich.settings = {"scratch_url": rich.server, "jobs": 2}

    state, _ = rich.restore_test()

    assert state.is_completed(), state.message
    record = rich.latest()
    checks = checks_by_name(record)
    assert [c for c in record.checks if not c["ok"]] == []
    assert set(checks) >= COMPLETENESS
    assert checks["objects"]["observed"].endswith(
        "(grants not compared: restored without privileges)"
    )
    assert checks["large_objects"]["observed"] == f"{RICH['large_objects']}, data as backed up"
    assert checks["matviews"]["observed"] == "2 as in the backup"
    for table in FINGERPRINTED:
        assert checks[f"fingerprint {table}"]["ok"]
    assert checks["fingerprint app.measurements"]["observed"] == "2,000 rows, as backed up"
    for table, rows in RICH["rows"].items():
        assert checks[f"rows {table}"]["observed"] == f"{rows:,}"


def test_the_manifest_records_what_a_restore_must_bring_back(archive: Archive) -> None:
    manifest = archive.manifest
    objects = manifest["objects"]
    assert "tenant_isolation on app.accounts" in objects["policy"]
    assert objects["row security on"]["app.accounts"] == "enabled, forced"
    assert (
        objects["partition"]["app.m2024_north"] == "of app.m2024 FOR VALUES IN ('oslo', 'tromsø')"
    )
    assert objects["partition"]["app.m_default"] == "of app.measurements DEFAULT"
    assert set(objects["extension"]) >= {"pgcrypto", "hstore", "citext", "postgres_fdw"}
    assert "vigil_rich_ddl" in objects["event trigger"]
    assert "vigil_rich_pub" in objects["publication"]
    assert "app.remote_orders" in objects["foreign table"]
    assert 'public."Mixed Case.Table"' in objects["table"]
    assert manifest["sequences"]["app.invoice_no"] == {
        "last_value": 2024,
        "is_called": True,
        "increment": 7,
    }
    assert manifest["sequences"]["app.never_called"]["is_called"] is False
    contents = manifest["contents"]
    assert contents["large_objects"]["count"] == 3
    assert contents["matviews"] == {"app.readings_by_city": 4, "app.stale_report": None}
    assert set(contents["fingerprints"]) == set(FINGERPRINTED)
    assert manifest["partitions"]["app.measurements"] == ["app.m2023", "app.m2024", "app.m_default"]


def test_a_partitioned_table_is_verified_through_its_leaves(rich: Setup, archive: Archive) -> None:
    """critical_tables and min_rows name partitioned parents: their data are their leaves'."""
    toc = "\n".join(archive.toc)
    database = Database(
        name="rich",
        url=rich.source,
        critical_tables=["app.measurements", "app.by_kind"],
        min_rows={"app.measurements": 2000, "app.sessions": 65},
    )
    dump = archive.manifest["dump"]
    observed = ReadBack(True, dump["size_bytes"], dump["sha256"], toc, None, 10, None)
    checks = {
        c.name: c
        for c in verify(
            archive.manifest,
            observed,
            database,
            previous_size=None,
            max_age=timedelta(days=3650),
            now=datetime.now(UTC),
        ).checks
    }
    assert checks["critical_table app.measurements"].passed
    assert checks["critical_table app.measurements"].observed == "app.measurements present"
    assert checks["critical_table app.by_kind"].passed
    assert (
        checks["min_rows app.measurements"].passed,
        checks["min_rows app.measurements"].observed,
    ) == (True, "2000")
    assert (checks["min_rows app.sessions"].passed, checks["min_rows app.sessions"].observed) == (
        False,
        "64",
    )

    leaf_gone = "\n".join(line for line in archive.toc if "TABLE DATA app m2024_rest" not in line)
    observed = ReadBack(True, dump["size_bytes"], dump["sha256"], leaf_gone, None, 10, None)
    again = verify(
        archive.manifest,
        observed,
        database,
        previous_size=None,
        max_age=timedelta(days=3650),
        now=datetime.now(UTC),
    )
    critical = {c.name: c for c in again.checks}["critical_table app.measurements"]
    assert (critical.passed, critical.observed) == (False, "absent")


# --- each kind of loss, named --------------------------------------------------------------


def entry(*words: str) -> Callable[[str], bool]:
    """A TOC line of the archive's listing: `<id>; <oids> <words...> <owner>`."""
    wanted = " ".join(words) + " "

    def matches(line: str) -> bool:
        return wanted in line.split(";", 1)[-1] + " "

    return matches


def either(*tests: Callable[[str], bool]) -> Callable[[str], bool]:
    return lambda line: any(test(line) for test in tests)


LOSSES = {
    "large objects": (
        either(entry("BLOB"), entry("BLOBS"), entry("LARGE OBJECT")),
        {
            "large_objects": "large objects: 0 of 3 restored",
            "objects: comment on large object": "comment on large object ",
        },
    ),
    "a sequence value": (
        entry("SEQUENCE SET app invoice_no"),
        {"sequences": "sequence app.invoice_no at 1000 (not called), expected 2024 (is_called)"},
    ),
    "a materialized view's data": (
        entry("MATERIALIZED VIEW DATA app readings_by_city"),
        {
            "matviews": "materialized view app.readings_by_city not populated, expected 4 rows "
            "(its REFRESH was not restored)"
        },
    ),
    "a policy": (
        entry("POLICY app accounts tenant_isolation"),
        {"objects: policy": "policy tenant_isolation on app.accounts missing"},
    ),
    "row level security": (
        entry("ROW SECURITY app accounts"),
        {
            "objects: row security on": "row security on app.accounts: 'enabled, forced' in "
            "the backup, 'disabled, forced' restored"
        },
    ),
    "a trigger": (
        entry("TRIGGER app notes notes_touch"),
        {"objects: trigger": "trigger notes_touch on app.notes missing"},
    ),
    "an event trigger": (
        entry("EVENT TRIGGER - vigil_rich_ddl"),
        {"objects: event trigger": "event trigger vigil_rich_ddl missing"},
    ),
    "a rule": (
        entry("RULE app notes notes_archive"),
        {"objects: rule": "rule notes_archive on app.notes missing"},
    ),
    "a function": (
        entry("FUNCTION app add(integer, integer)"),
        {"objects: function": "function app.add(integer,integer) missing"},
    ),
    "an extension": (
        entry("EXTENSION - pg_trgm"),
        {
            "objects: extension": "extension pg_trgm missing",
            "objects: comment on extension": "comment on extension pg_trgm missing",
        },
    ),
    "a foreign table": (
        entry("FOREIGN TABLE app remote_orders"),
        {
            "objects: foreign table": "foreign table app.remote_orders missing",
            "objects: foreign table column": "foreign table column app.remote_orders.id "
            "missing; foreign table column app.remote_orders.total missing",
        },
    ),
    "a publication": (
        either(entry("PUBLICATION - vigil_rich_pub"), entry("PUBLICATION TABLE")),
        {
            "objects: publication": "publication vigil_rich_pub missing",
            "objects: publication relation": "publication relation app.accounts in publication "
            "vigil_rich_pub missing; publication relation app.notes in publication "
            "vigil_rich_pub missing",
        },
    ),
    "a partition's attachment": (
        entry("TABLE ATTACH app m2023"),
        {
            "objects: partition": "partition app.m2023 not attached to app.measurements "
            "(FOR VALUES FROM ('2023-01-01') TO ('2024-01-01'))",
            "objects: index partition": "index partition app.m2023_city_idx not attached to "
            "app.measurements_city; index partition app.m2023_pkey not attached to "
            "app.measurements_pkey",
            "rows app.measurements": "app.measurements: 2,000 rows in the manifest, ",
            "fingerprint app.measurements": "fingerprint app.measurements: contents differ from "
            "the backup's (2,000 rows backed up, ",
        },
    ),
    "a comment": (
        entry("COMMENT app TABLE accounts"),
        {"objects: comment on table": "comment on table app.accounts missing"},
    ),
    "a view": (
        entry("VIEW app happy_accounts"),
        {
            "objects: view": "view app.happy_accounts missing",
            "objects: view column": "view column app.happy_accounts.email missing; "
            "view column app.happy_accounts.id missing",
        },
    ),
    "a column default": (
        entry("DEFAULT app accounts id"),
        {"objects: default value": "default value for app.accounts.id missing"},
    ),
    "a sequence's owner": (
        entry("SEQUENCE OWNED BY app accounts_id_seq"),
        {
            "objects: sequence": "sequence app.accounts_id_seq: 'bigint start 1 increment 1 min 1 "
            "max 9223372036854775807 cache 1 owned by app.accounts.id' in the backup, 'bigint "
            "start 1 increment 1 min 1 max 9223372036854775807 cache 1' restored"
        },
    ),
}


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_each_kind_of_loss_fails_naming_what_is_missing(
    loss: str, archive: Archive, pg_server_url: str
) -> None:
    left_out, expected = LOSSES[loss]
    with throwaway_database(pg_server_url, "vigil_loss") as target:
        dropped = restore_without(archive, target, left_out)
        assert dropped, f"no TOC entry matched for {loss}"

        problems = failed(judged(archive, target))

    assert set(problems) == set(expected), problems
    for name, text in expected.items():
        assert problems[name].startswith(text), problems[name]


def test_the_complete_archive_restored_the_same_way_passes(
    archive: Archive, pg_server_url: str
) -> None:
    """The same restore with nothing left out: every loss above is the entry's, not the
    method's (grants compared too: this restore keeps them)."""
    with throwaway_database(pg_server_url, "vigil_loss") as target:
        restore_without(archive, target, lambda line: False)

        findings = judged(archive, target, privileges=True)

    assert failed(findings) == {}
    objects = {f.name: f for f in findings}["objects"]
    assert objects.ok and "grants not compared" not in objects.observed


ALTERED = {
    "changed rows with equal counts": (
        "UPDATE app.accounts SET email = 'someone@else.example' WHERE id = 7",
        {
            "fingerprint app.accounts": "fingerprint app.accounts: contents differ from the "
            "backup's (51 rows backed up, 51 restored)"
        },
    ),
    "an enum label": (
        "ALTER TYPE app.mood ADD VALUE 'angry'",
        {
            "objects: type": "type app.mood: \"'sad', 'ok', 'happy'\" in the backup, "
            "\"'sad', 'ok', 'happy', 'angry'\" restored"
        },
    ),
    "a large object's data": (
        "SELECT lo_put(min(oid), 0, '\\x00'::bytea) FROM pg_largeobject_metadata",
        {"large_objects": "large objects: 3 restored, but their data differs from the backup's"},
    ),
    "a grant": (
        "REVOKE SELECT ON app.accounts FROM vigil_rich_reader",
        {
            "objects: grants on table": "grants on table app.accounts: "
            "'postgres=arwdDxt/postgres,vigil_rich_reader=r/postgres' in the backup, "
            "'postgres=arwdDxt/postgres' restored"
        },
    ),
    "a sequence set back": (
        "SELECT setval('app.accounts_id_seq', 1, false)",
        {"sequences": "sequence app.accounts_id_seq at 1 (not called), expected 51 (is_called)"},
    ),
    "a trigger disabled": (
        "ALTER TABLE app.notes DISABLE TRIGGER notes_touch",
        {
            "objects: trigger": "trigger notes_touch on app.notes: 'CREATE TRIGGER notes_touch "
            "BEFORE INSERT OR UPDATE ON app.notes FOR EACH ROW EXECUTE FUNCTION app.touch() "
            "(enabled)' in the backup, 'CREATE TRIGGER notes_touch BEFORE INSERT OR UPDATE ON "
            "app.notes FOR EACH ROW EXECUTE FUNCTION app.touch() (disabled)' restored"
        },
    ),
}


@pytest.mark.parametrize("change", sorted(ALTERED))
def test_an_altered_copy_fails_naming_what_differs(
    change: str, archive: Archive, pg_server_url: str
) -> None:
    statement, expected = ALTERED[change]
    with throwaway_database(pg_server_url, "vigil_loss") as target:
        restore_without(archive, target, lambda line: False)
        with psycopg.connect(target, autocommit=True) as connection:
            connection.execute(statement.encode())

        problems = failed(judged(archive, target, privileges=True))

    assert set(problems) == set(expected), problems
    for name, text in expected.items():
        assert problems[name].startswith(text), problems[name]


def test_a_manifest_from_before_these_checks_is_judged_without_them(
    archive: Archive, pg_server_url: str
) -> None:
    """Backward compatible: an older manifest has no objects, sequences, contents or
    partition tree; its restore is judged on what it records and says what it does not."""
    old = {
        key: value
        for key, value in archive.manifest.items()
        if key not in ("objects", "sequences", "contents", "partitions")
    }
    with throwaway_database(pg_server_url, "vigil_loss") as target:
        restore_without(archive, target, LOSSES["large objects"][0])

        findings = inspect(target, old, timeout=120, jobs=1, amcheck=True).findings

    by_name = {f.name: f for f in findings}
    assert failed(findings) == {}
    for name in ("objects", "sequences", "large_objects", "matviews"):
        assert by_name[name].observed == "not recorded in this backup (written by an older vigil)"
    assert by_name["rows app.measurements"].observed == "0"


# --- the real recovery and the weekly test, on a re-packed (incomplete) archive ---------------


def repack(archive: Archive, server_url: str, left_out: Callable[[str], bool], out: Path) -> None:
    """An archive missing what `left_out` picks, as a broken backup would be: the real one
    restored without those entries, dumped again (the manifest still promises them)."""
    with throwaway_database(server_url, "vigil_repack") as scratch:
        restore_without(archive, scratch, left_out)
        subprocess.run(
            [find_tool("pg_dump"), "-Fc", "-Z1", "-f", str(out), f"--dbname={scratch}"],
            check=True,
            capture_output=True,
        )


def replace_dump(manifest: dict[str, Any], data: bytes) -> dict[str, Any]:
    """The manifest describing `data` as its dump (so the checksum passes and only the
    completeness checks can tell)."""
    dump = {**manifest["dump"], "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return {**manifest, "dump": dump}


INCOMPLETE = either(
    LOSSES["large objects"][0],
    LOSSES["a policy"][0],
    LOSSES["a sequence value"][0],
    LOSSES["a materialized view's data"][0],
)
REPORTED = [
    "MISSING large objects: 0 of 3 restored",
    "MISSING policy tenant_isolation on app.accounts missing",
    "MISSING sequence app.invoice_no at 1000 (not called), expected 2024 (is_called)",
    "MISSING materialized view app.readings_by_city not populated, expected 4 rows",
]


def folder_config(tmp_path: Path, source: str, folder: Path) -> Path:
    body = {
        "databases": [
            {
                "name": "rich",
                "url": source,
                "critical_tables": ["app.measurements"],
                "min_rows": {"app.measurements": 1},
                "fingerprint_tables": ["app.accounts"],
            }
        ],
        "backup": {"storage": folder.as_uri(), "compression": "gzip:1"},
        "restore_test": {"amcheck": True},
    }
    return write_config(tmp_path, yaml.safe_dump(body, sort_keys=False))


def cli_restore(config: Path, backup: str, target: str, *options: str) -> Result:
    return CliRunner().invoke(app, ["restore", backup, "--to", target, "-c", str(config), *options])


def test_vigil_restore_creates_the_target_and_reports_completeness_on_folder_storage(
    tmp_path: Path, rich: Setup, archive: Archive, pg_server_url: str
) -> None:
    folder = tmp_path / "backups"
    config = folder_config(tmp_path, rich.source, folder)
    state, _ = run(daily_backup, config_path=str(config))
    assert state.is_completed(), state.message
    [record] = backups(tmp_path)
    name = f"vigil_restored_{secrets.token_hex(4)}"
    target = with_database(pg_server_url, name)
    try:
        result = cli_restore(config, record.id, target, "--json")

        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["created_target"] is True and report["problems"] == []
        checks = {c["name"]: c for c in report["checks"]}
        assert (
            checks["objects"]["ok"] and "grants not compared" not in checks["objects"]["observed"]
        )
        assert checks["large_objects"]["observed"] == "3, data as backed up"
        assert checks["fingerprint app.accounts"]["observed"] == "51 rows, as backed up"
        assert checks["rows app.measurements"]["observed"] == "2,000"
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # The incomplete archive in place of the dump, the manifest still promising it all;
    # a store that has lost the catalog (the manifest alone is trusted).
    dump_path, manifest_path = (
        folder / Keys.of(record.id).dump,
        folder / Keys.of(record.id).manifest,
    )
    repack(archive, pg_server_url, INCOMPLETE, dump_path)
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps(replace_dump(manifest, dump_path.read_bytes())))
    (tmp_path / "lost").mkdir()
    lost = folder_config(tmp_path / "lost", rich.source, folder)

    with throwaway_database(pg_server_url, "vigil_restored") as empty:
        result = cli_restore(lost, record.id, empty)

    assert result.exit_code == 1, result.output
    assert f"restored INCOMPLETE {record.id}" in result.output
    for line in REPORTED:
        assert line in result.output
    assert "the copy is INCOMPLETE" in result.output


def test_vigil_restore_says_how_to_create_a_target_it_cannot_create(
    tmp_path: Path, rich: Setup, pg_server_url: str
) -> None:
    """A user without CREATEDB gets the exact statement to run, and nothing is restored."""
    role = f"vigil_nocreate_{secrets.token_hex(3)}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(role)))
    try:
        config = folder_config(tmp_path, rich.source, tmp_path / "backups")
        state, _ = run(daily_backup, config_path=str(config))
        assert state.is_completed(), state.message
        [record] = backups(tmp_path)
        target = f"postgresql://{role}@127.0.0.1:5432/vigil_nowhere_{secrets.token_hex(3)}"
        target = make_url(pg_server_url).set(username=role, database=target.rsplit("/", 1)[1])

        result = cli_restore(config, record.id, target.render_as_string(hide_password=False))

        assert result.exit_code == 1, result.output
        assert "does not exist" in result.output and "cannot be created here" in result.output
        assert "TEMPLATE template0" in result.output
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_restore_test_fails_on_an_incomplete_archive_in_s3_and_alerts(
    rich: Setup,
    archive: Archive,
    pg_server_url: str,
    webhook_receiver: HttpReceiver,
    tmp_path: Path,
) -> None:
    rich.hook = webhook_receiver
    rich.settings = {"scratch_url": rich.server, "jobs": 2}
    store_incomplete(rich, archive, pg_server_url, tmp_path)

    state, _ = rich.restore_test()

    assert state.is_failed(), state.message
    record = rich.latest()
    checks = checks_by_name(record)
    assert {name for name, c in checks.items() if not c["ok"]} == {
        "large_objects",
        "objects: comment on large object",
        "objects: policy",
        "sequences",
        "matviews",
    }
    for line in REPORTED:
        assert line.removeprefix("MISSING ") in (record.error or "") + state.message
    [alert] = rich.alerts()
    assert (alert["severity"], alert["title"]) == (
        "critical",
        f"Restore test of {rich.name} failed",
    )
    assert alert["summary"] == REPORTED[2].removeprefix("MISSING ")
    told = "\n".join([alert["summary"], *alert["details"]])
    for line in REPORTED:
        assert line.removeprefix("MISSING ") in told


def store_incomplete(rich: Setup, archive: Archive, server_url: str, tmp_path: Path) -> str:
    """A new backup in S3 whose archive is re-packed without the INCOMPLETE entries, its
    manifest and catalog row rewritten to match (so only completeness can tell)."""
    backup = rich.back_up()
    repacked = tmp_path / "repacked.dump"
    repack(archive, server_url, INCOMPLETE, repacked)
    data = repacked.read_bytes()
    client = rich.s3.client()
    key = rich.object_key(backup, "manifest.json")
    manifest = json.loads(client.get_object(Bucket=rich.bucket, Key=key)["Body"].read())
    manifest = replace_dump(manifest, data)
    client.put_object(Bucket=rich.bucket, Key=rich.object_key(backup, "dump"), Body=data)
    client.put_object(Bucket=rich.bucket, Key=key, Body=json.dumps(manifest).encode())
    with open_store(rich.store_url) as store, store.session() as session:
        row = session.get(Backup, backup)
        assert row is not None
        row.sha256, row.size_bytes = manifest["dump"]["sha256"], len(data)
        session.commit()
    return backup


def test_the_drill_passes_a_complete_copy_and_fails_an_incomplete_one_naming_the_losses(
    rich: Setup,
    archive: Archive,
    pg_server_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    rich.settings = {"scratch_url": rich.server, "jobs": 2}
    rich.drill = {"target_url": rich.server, "rto": "10m", "rpo": "1h"}
    phase = f"restore {rich.name}"
    try:
        rich.back_up()
        state, summary = run(dr_drill, config_path=rich.config())
        assert state.is_completed(), state.message
        [restored] = [p for p in summary["phases"] if p["name"] == phase]
        assert restored["verdict"] == "ok", restored
        checks = {f["name"]: f for f in restored["findings"]}
        assert checks["amcheck"]["ok"] and checks["large_objects"]["ok"]

        store_incomplete(rich, archive, pg_server_url, tmp_path)
        state, summary = run(dr_drill, config_path=rich.config())
    finally:
        rich.drill = None

    assert state.is_failed() and state.name == "RecoveryFailed", state.message
    [restored] = [p for p in summary["phases"] if p["name"] == phase]
    assert restored["verdict"] == "FAILED"
    assert {f["name"] for f in restored["findings"] if not f["ok"]} == {
        "large_objects",
        "objects: comment on large object",
        "objects: policy",
        "sequences",
        "matviews",
    }
    told = "\n".join(summary["action_items"])
    for line in REPORTED:
        assert line.removeprefix("MISSING ") in told
