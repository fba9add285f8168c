"""What do vigil's backup and restore test cost on a database of many small tables?

For each table count (default 5,000 and 10,000: `t<i> (id int PRIMARY KEY, v text)` with
two rows each, built in one DO block committing every 500 tables), on a server with
default settings (max_locks_per_transaction = 64), this times in one run:

- bare backup: `pg_dump -Fc -Z1`;
- vigil backup: the `daily-backup` flow (snapshot, the same pg_dump, exact counts of every
  table in batches importing the snapshot, globals, manifest, read back, verify);
- bare restore: `createdb` + `pg_restore -j2` of the same archive;
- vigil restore test: the `weekly-restore-test` flow (checksum, scratch database, the same
  pg_restore, exact counts, indexes, constraints, amcheck of every B-tree index, drop);

each vigil side in a child process (its peak RSS is its own), each bare tool under GNU
time, and prints time, ratio and peak memory. The databases are dropped afterwards.

    python benchmarks/many_tables.py [--tables 5000 10000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import yaml
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.backup import child_env, own_peak_mb
from benchmarks.restore_test import SERVER, database, on

BUILD = """
DO $$
BEGIN
    FOR i IN 1..{tables} LOOP
        EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i);
        EXECUTE format('INSERT INTO t%s VALUES (1, ''x''), (2, ''y'')', i);
        IF i % 500 = 0 THEN COMMIT; END IF;
    END LOOP;
END $$
"""


def timed(command: list[str], folder: Path) -> tuple[float, float]:
    """(seconds, peak RSS MB) of a PostgreSQL tool run under GNU time."""
    peak = folder / f"peak-{secrets.token_hex(3)}"
    started = time.monotonic()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(peak), *command], check=True)
    return time.monotonic() - started, int(peak.read_text().split()[-1]) / 1024


def in_child(duty: str, config: Path, env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one vigil flow run in a process of its own."""
    command = [sys.executable, "-m", "benchmarks.many_tables", "--child", duty, str(config)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{duty} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return float(figures["seconds"]), float(figures["peak_mb"])


def child(duty: str, config: str) -> None:
    from flows.backup import daily_backup
    from flows.restore_test import weekly_restore_test

    run = daily_backup if duty == "backup" else weekly_restore_test
    started = time.perf_counter()
    state: Any = run(config_path=config, return_state=True)
    seconds = time.perf_counter() - started
    if not state.is_completed():
        raise SystemExit(f"the {duty} did not succeed: {state.message}")
    print(json.dumps({"seconds": seconds, "peak_mb": own_peak_mb()}))


def write_config(folder: Path, url: str, jobs: int) -> Path:
    body = {
        "store": {"url": f"sqlite:///{folder / 'vigil.db'}"},
        "databases": [{"name": "many", "url": url}],
        "backup": {"storage": (folder / "backups").as_uri()},
        "restore_test": {"scratch_url": SERVER, "jobs": jobs, "max_duration": "60m"},
    }
    path = folder / "vigil.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def measure(tables: int, jobs: int, env: dict[str, str]) -> list[tuple[str, float, float]]:
    with (
        tempfile.TemporaryDirectory(prefix="vigil-bench-many-") as where,
        database(SERVER, f"bench_many_{tables}_{secrets.token_hex(3)}") as url,
    ):
        folder = Path(where)
        started = time.monotonic()
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(BUILD.format(tables=int(tables)).encode())
        print(f"{tables:,} tables built in {time.monotonic() - started:.1f}s")
        config = write_config(folder, url, jobs)
        archive = folder / "bare.dump"
        figures = [
            (
                "bare pg_dump -Fc -Z1",
                *timed(["pg_dump", "-Fc", "-Z1", "-f", str(archive), url], folder),
            )
        ]
        figures.append(("vigil backup", *in_child("backup", config, env)))
        target = f"bench_many_restore_{secrets.token_hex(3)}"
        server = urlsplit(SERVER)
        where_to = ["-h", server.hostname or "127.0.0.1", "-p", str(server.port or 5432)]
        where_to += ["-U", server.username or "postgres"]
        seconds_create, _ = timed(["createdb", *where_to, target], folder)
        seconds, peak = timed(
            ["pg_restore", f"-j{jobs}", "-d", on(SERVER, target), str(archive)], folder
        )
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(target)))
        figures.append((f"bare createdb + pg_restore -j{jobs}", seconds_create + seconds, peak))
        figures.append(("vigil restore test", *in_child("restore", config, env)))
    return figures


def report(tables: int, figures: list[tuple[str, float, float]]) -> None:
    (_, dump_s, _), _, (_, restore_s, _), _ = figures
    print(f"{'':2}{'':36} {'time':>8} {'ratio':>6} {'peak RSS':>9}")
    for (name, seconds, peak), base in zip(
        figures, (dump_s, dump_s, restore_s, restore_s), strict=True
    ):
        print(f"  {name:<36} {seconds:>7.2f}s {seconds / base:>6.2f} {peak:>6.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[5_000, 10_000])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("DUTY", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        env = child_env(str(PREFECT_API_URL.value()))
        for tables in args.tables:
            report(tables, measure(tables, args.jobs, env))


if __name__ == "__main__":
    main()
