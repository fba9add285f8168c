"""Grandfather-father-son retention over a catalog spread over months: exactly which backups
survive and why; the newest verified backup always stays; `vigil backups prune` deletes a
backup's files together, records it, and `--dry-run` deletes nothing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from tests.backup_helpers import configure, deletions
from vigil.backup.identity import Keys, backup_id
from vigil.backup.retention import Candidate, plan_retention
from vigil.cli import app
from vigil.config import Retention
from vigil.store import Backup, open_store

NOW = datetime(2024, 6, 15, 3, 0, tzinfo=UTC)
OUTAGE = (date(2024, 5, 27), date(2024, 6, 5))  # no backups at all: a ten-day gap
UNVERIFIED = {date(2024, 5, 20), date(2024, 4, 10)}
FAILED = {date(2024, 6, 12)}
UNUSED = "postgresql://postgres@127.0.0.1:5432/not_contacted"


def nightly(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)


def months_of_backups() -> list[Candidate]:
    """A backup each night from January to 15 June, with a gap, failures and bad ones."""
    found = []
    day = date(2024, 1, 1)
    while day <= NOW.date():
        if not OUTAGE[0] <= day <= OUTAGE[1]:
            status = "failed" if day in FAILED else "succeeded"
            verified = day not in FAILED | UNVERIFIED
            found.append(Candidate(backup_id("main", nightly(day)), nightly(day), status, verified))
        day += timedelta(days=1)
    stale = datetime(2024, 6, 14, 12, 0, tzinfo=UTC)
    found.append(Candidate(backup_id("main", stale), stale, "running", False))
    return found


def test_gfs_keeps_exactly_the_newest_of_each_period_that_has_a_backup() -> None:
    retention = Retention(keep_last=3, keep_daily=7, keep_weekly=4, keep_monthly=4)

    decisions = {d.backup_id: d for d in plan_retention(months_of_backups(), retention, NOW)}

    kept = sorted(name for name, d in decisions.items() if d.keep)
    assert kept == sorted(
        [
            "main-20240615T020000Z",  # last 1, daily, week 24, June
            "main-20240614T020000Z",  # last 2, daily
            "main-20240614T120000Z",  # still running: never touched
            "main-20240613T020000Z",  # last 3, daily
            "main-20240612T020000Z",  # failed 3 days ago: kept a week to inspect
            "main-20240611T020000Z",  # daily (the 12th has no verified backup)
            "main-20240610T020000Z",  # daily
            "main-20240609T020000Z",  # daily, week 23
            "main-20240608T020000Z",  # daily: the 7th day that has a backup
            "main-20240526T020000Z",  # week 21 (week 22 fell in the gap), May
            "main-20240519T020000Z",  # week 20
            "main-20240430T020000Z",  # April
            "main-20240331T020000Z",  # March
        ]
    )
    newest = decisions["main-20240615T020000Z"].reasons
    assert newest == (
        "newest verified backup",
        "keep_last 3",
        "daily 2024-06-15",
        "weekly 2024-W24",
        "monthly 2024-06",
    )
    assert decisions["main-20240519T020000Z"].reasons == ("weekly 2024-W20",)
    assert decisions["main-20240520T020000Z"].reasons == (
        "not verified, superseded by a newer verified backup",
    )
    assert decisions["main-20240607T020000Z"].reasons == (
        "outside keep_last=3, keep_daily=7, keep_weekly=4, keep_monthly=4",
    )
    assert len(decisions) == len(months_of_backups())


def test_the_newest_verified_backup_survives_when_newer_ones_are_bad() -> None:
    old = [nightly(date(2024, 1, d)) for d in (1, 2, 3)]
    recent = [nightly(date(2024, 6, d)) for d in (14, 15)]
    catalog = [Candidate(backup_id("main", at), at, "succeeded", True) for at in old]
    catalog += [Candidate(backup_id("main", at), at, "succeeded", False) for at in recent]
    rules = Retention(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)

    decisions = {d.backup_id: d for d in plan_retention(catalog, rules, NOW)}

    assert {name for name, d in decisions.items() if d.keep} == {
        "main-20240103T020000Z",
        "main-20240614T020000Z",
        "main-20240615T020000Z",
    }
    assert decisions["main-20240103T020000Z"].reasons == ("newest verified backup", "keep_last 1")
    assert decisions["main-20240615T020000Z"].reasons == (
        "not verified, but newer than any verified backup",
    )


def test_prune_deletes_files_together_records_it_and_dry_run_changes_nothing(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "backups"
    rules = {"keep_last": 2, "keep_daily": 3, "keep_weekly": 0, "keep_monthly": 0}
    config = str(configure(tmp_path, UNUSED, folder.as_uri(), backup={"retention": rules}))
    days = [datetime.now(UTC).replace(microsecond=0) - timedelta(days=n) for n in range(6)]
    names = [backup_id("main", at) for at in days]
    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as store, store.session() as session:
        for name, at in zip(names, days, strict=True):
            session.add(
                Backup(id=name, database="main", created_at=at, status="succeeded", verified=True)
            )
            keys = Keys.of(name)
            for key in (keys.dump, keys.manifest, keys.config_archive):
                (folder / key).parent.mkdir(parents=True, exist_ok=True)
                (folder / key).write_bytes(b"backup")
    files_before = sorted(p.name for p in (folder / "main").iterdir())

    dry = CliRunner().invoke(app, ["backups", "prune", "--dry-run", "-c", config])

    assert dry.exit_code == 0, dry.output
    assert "main: 3 kept, 3 would delete" in dry.stdout
    assert f"would delete {names[5]}: outside keep_last=2, keep_daily=3" in dry.stdout
    assert sorted(p.name for p in (folder / "main").iterdir()) == files_before
    assert deletions(tmp_path) == []

    real = CliRunner().invoke(app, ["backups", "prune", "--json", "-c", config])

    assert real.exit_code == 0, real.output
    report = json.loads(real.stdout)["databases"]["main"]
    assert [d["backup_id"] for d in report if not d["keep"]] == names[3:]
    assert sorted(p.name for p in (folder / "main").iterdir()) == sorted(
        f"{name}.{ext}" for name in names[:3] for ext in ("dump", "manifest.json", "config.tar.gz")
    )
    recorded = deletions(tmp_path)
    assert [d.backup_id for d in recorded] == names[3:]
    assert recorded[0].reason == "outside keep_last=2, keep_daily=3, keep_weekly=0, keep_monthly=0"
    assert recorded[0].location == (folder / Keys.of(names[3]).dump).as_uri()

    listed = CliRunner().invoke(app, ["backups", "--json", "-c", config])
    assert [e["id"] for e in json.loads(listed.stdout)] == names[:3]
    everything = CliRunner().invoke(app, ["backups", "--all", "--json", "-c", config])
    assert [e["deleted"] for e in json.loads(everything.stdout)] == [False] * 3 + [True] * 3
    gone = CliRunner().invoke(app, ["restore", names[4], "--to", UNUSED, "-c", config])
    assert gone.exit_code == 1
    assert f"{names[4]} was deleted by retention at " in gone.output
