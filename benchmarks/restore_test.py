"""What does vigil's restore test cost over the bare restore it wraps?

On the backup benchmark's database `vigil_bench_<rows>` (built once from
/work/shared/bench-data.sql by `benchmarks.backup.ensure_database` and reused: uuids, hashes,
timestamps, jsonb, so it compresses like production data), backed up once by the
`daily-backup` flow into a local folder with the defaults (zstd) and sealed with age for
a key made here (`--plain`: not sealed), this times in one run, alternating, `--rounds`
times each:

- bare: `createdb`, `pg_restore --jobs N` of the same archive, uncompressed on disk
  (unsealed and decompressed once beforehand, not timed), `count(*)` of every table,
  `dropdb` — the least a person would do to call a backup restorable;
- vigil: the `weekly-restore-test` flow for that database — fetch, SHA-256 of the sealed
  object, unsealing and decompressing into the archive file as it arrives, scratch
  database, the same pg_restore, exact counts with the recovery point, indexes, constraints,
  fingerprint, amcheck on every B-tree index (work the bare side does not do), record,
  artifact, drop, and Prefect's own cost of a flow run;

and prints each one's steps, best time and the ratio (target <= 1.2). The two take turns
going first, since whichever follows a restore pays for the checkpoint its writes started.

    python benchmarks/restore_test.py [--rows 500000] [--jobs 2] [--rounds 2]

Uses $PREFECT_API_URL when set, else Prefect's test harness (its start-up is not timed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import yaml
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SERVER = os.environ.get("VIGIL_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def on(server: str, name: str) -> str:
    """The server URL pointing at database `name` (a URL, as vigil's config wants)."""
    return urlsplit(server)._replace(path=f"/{name}").geturl()


@contextlib.contextmanager
def database(server: str, name: str) -> Iterator[str]:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield on(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def bare(server: str, archive: Path, jobs: int) -> float:
    """createdb, pg_restore --jobs, count(*) of every table, dropdb."""
    started = time.monotonic()
    with database(server, f"bench_bare_{secrets.token_hex(4)}") as url:
        subprocess.run(
            ["pg_restore", f"--jobs={jobs}", "--no-owner", "--dbname", url, str(archive)],
            check=True,
        )
        restored = time.monotonic()
        with psycopg.connect(url) as connection:
            tables = connection.execute(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            ).fetchall()
            for (table,) in tables:
                connection.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table)))
        counted = time.monotonic()
    print(
        f"  bare: pg_restore {restored - started:.2f}s (with createdb), "
        f"count(*) {counted - restored:.2f}s, whole {time.monotonic() - started:.2f}s"
    )
    return time.monotonic() - started


def vigil(config: Path, name: str) -> float:
    from flows.restore_test import weekly_restore_test

    started = time.monotonic()
    state: Any = weekly_restore_test(config_path=str(config), database=name, return_state=True)
    elapsed = time.monotonic() - started
    if not state.is_completed():
        raise SystemExit(f"the restore test did not pass: {state.message}")
    [result] = state.result()["databases"]
    steps = ", ".join(
        f"{k} {result[k]:.2f}s" for k in ("fetch_s", "restore_s", "check_s", "amcheck_s")
    )
    print(f"  vigil: {steps}, whole flow {elapsed:.2f}s")
    return elapsed


def write_config(folder: Path, name: str, url: str, jobs: int, sealed: bool = True) -> Path:
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    key = folder / "key.txt"
    key.write_text(f"{identity}\n")
    backup: dict[str, Any] = {"storage": (folder / "backups").as_uri()}
    settings: dict[str, Any] = {"scratch_url": SERVER, "jobs": jobs, "max_duration": "30m"}
    if sealed:
        backup["encrypt"] = {"recipients": [str(identity.to_public())]}
        settings["identity"] = str(key)
    body = {
        "store": {"url": f"sqlite:///{folder / 'vigil.db'}"},
        "databases": [{"name": name, "url": url}],
        "backup": backup,
        "restore_test": settings,
    }
    path = folder / "vigil.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def measure(args: argparse.Namespace) -> None:
    from benchmarks.backup import database_size, database_url, ensure_database
    from flows.backup import daily_backup

    ensure_database(args.rows)
    url, name = database_url(args.rows), "bench"
    print(f"database {url.rsplit('/', 1)[1]}: {database_size(args.rows) / 1e6:,.0f} MB")
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as folder:
        config = write_config(Path(folder), name, url, args.jobs, not getattr(args, "plain", False))
        state: Any = daily_backup(config_path=str(config), return_state=True)
        assert state.is_completed(), state.message
        [stored] = (Path(folder) / "backups" / name).glob("*.dump")
        archive = plain_archive(Path(folder), stored)
        print(
            f"stored {stored.stat().st_size / 1e6:,.0f} MB, uncompressed archive "
            f"{archive.stat().st_size / 1e6:,.0f} MB; jobs {args.jobs}"
        )
        times = alternate(
            {
                "bare": lambda: bare(SERVER, archive, args.jobs),
                "vigil": lambda: vigil(config, name),
            },
            args.rounds,
        )
    best_bare, best_vigil = min(times["bare"]), min(times["vigil"])
    print(
        f"best: bare pg_restore + count(*) {best_bare:.2f}s, vigil restore test "
        f"{best_vigil:.2f}s, ratio {best_vigil / best_bare:.2f} (target <= 1.2)"
    )


def plain_archive(folder: Path, stored: Path) -> Path:
    """The stored archive unsealed and decompressed once, as the bare side's input."""
    from tasks.codec import decode
    from vigil.backup.sealing import load_identities

    manifest = json.loads(
        stored.with_name(stored.name.replace(".dump", ".manifest.json")).read_text()
    )
    keys = load_identities(str(folder / "key.txt"), "benchmark").keys
    archive = folder / "plain.dump"

    def chunks() -> Iterator[bytes]:
        with open(stored, "rb") as source:
            while chunk := source.read(1 << 20):
                yield chunk

    with open(archive, "wb") as out:
        decode(chunks(), manifest["dump"].get("encoding") or [], keys, out.write)
    return archive


def alternate(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each side `rounds` times, taking turns to go first: the one that follows pays for
    the checkpoint the previous restore's writes set off."""
    times: dict[str, list[float]] = {side: [] for side in runs}
    for round_ in range(1, rounds + 1):
        order = list(runs) if round_ % 2 else list(reversed(runs))
        for side in order:
            times[side].append(runs[side]())
        spent = ", ".join(f"{side} {times[side][-1]:.2f}s" for side in runs)
        print(f"round {round_} ({' then '.join(order)}): {spent}")
    return times


def run_main(measure: Callable[[argparse.Namespace], None], description: str) -> None:
    """The restore benchmarks' command line, against $PREFECT_API_URL or a test harness."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=500_000, help="rows of bench-data.sql")
    parser.add_argument("--jobs", type=int, default=2, help="pg_restore --jobs for both")
    parser.add_argument("--rounds", type=int, default=2, help="alternating timings of each")
    parser.add_argument("--plain", action="store_true", help="restore_test: an unsealed backup")
    args = parser.parse_args()
    if os.environ.get("PREFECT_API_URL"):
        measure(args)
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        measure(args)


def main() -> None:
    run_main(measure, (__doc__ or "").splitlines()[0])


if __name__ == "__main__":
    main()
