"""What does vigil's DR drill cost over the bare recovery a person would run by hand?

On the backup benchmark's database `vigil_bench_<rows>` (built once from
/work/shared/bench-data.sql, data that compresses like production's), backed up once by the
`daily-backup` flow to S3 on a moto server this script starts (its own process, real HTTP),
this times in one run, alternating, `--rounds` times each:

- bare: the runbook's recovery with boto3 and the PostgreSQL tools: list the bucket, fetch
  the newest dump to a file, SHA-256 it, `createdb`, `pg_restore --jobs N`, `count(*)` of
  every table, `dropdb`;
- vigil: the `dr-drill` flow for that database: locate in the bucket (and the records
  store), fetch with checksum, the same pg_restore into a drill database, the restore
  test's checks (exact counts with the recovery point, indexes, constraints, fingerprint,
  amcheck), teardown, RTO/RPO, report, record, artifact, notification;

and prints each one's best time and the ratio.

    python -m benchmarks.drill [--rows 500000] [--jobs 2] [--rounds 2]

Uses $PREFECT_API_URL when set, else Prefect's test harness (its start-up is not timed).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.restore_test import SERVER, alternate, run_main
from benchmarks.restore_test import bare as restore_bare
from vigil.runtime import summary_of

BUCKET = "vigil-bench"
PREFIX = "drill"


def s3_client(url: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def bare(s3_url: str, jobs: int) -> float:
    """The newest dump from the bucket (as `aws s3 cp`), its SHA-256, then the restore
    benchmark's bare restore: createdb, pg_restore, count(*) of every table, dropdb."""
    started = time.monotonic()
    client = s3_client(s3_url)
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")["Contents"]
    key = max((o for o in listed if o["Key"].endswith(".dump")), key=lambda o: o["Key"])["Key"]
    with tempfile.TemporaryDirectory(prefix="bench-drill-") as folder:
        archive = Path(folder) / "backup.dump"
        client.download_file(BUCKET, key, str(archive))
        fetched = time.monotonic()
        digest = hashlib.sha256()
        with archive.open("rb") as data:
            for chunk in iter(lambda: data.read(1 << 20), b""):
                digest.update(chunk)
        print(f"  bare: fetch {fetched - started:.2f}s, sha256 {time.monotonic() - fetched:.2f}s")
        restore_bare(SERVER, archive, jobs)
    return time.monotonic() - started


def vigil(config: Path) -> float:
    from flows.drill import dr_drill

    started = time.monotonic()
    state: Any = dr_drill(config_path=str(config), return_state=True)
    elapsed = time.monotonic() - started
    summary = summary_of(state)
    if not isinstance(summary, dict) or summary.get("status") != "passed":
        raise SystemExit(f"the drill did not pass: {state.message}")
    phases = ", ".join(
        f"{p['name']} {p['duration_s']:.2f}s" for p in summary["phases"] if p["duration_s"]
    )
    print(f"  vigil: {phases}; whole flow {elapsed:.2f}s")
    return elapsed


def write_config(folder: Path, url: str, s3_url: str, jobs: int) -> Path:
    body = {
        "store": {"url": f"sqlite:///{folder / 'vigil.db'}"},
        "databases": [{"name": "bench", "url": url}],
        "backup": {
            "storage": f"s3://{BUCKET}/{PREFIX}",
            "s3": {"endpoint_url": s3_url, "region": "us-east-1"},
            # pg_dump's own gzip, so the bare side's pg_restore reads the downloaded object
            # as it is (the restore-test benchmark measures zstd and age).
            "compression": "gzip:1",
        },
        "restore_test": {"jobs": jobs},
        "drill": {"target_url": SERVER, "rto": "1h", "rpo": "24h"},
    }
    path = folder / "vigil.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def measure(args: argparse.Namespace) -> None:
    from benchmarks.backup import database_size, database_url, ensure_database, start_moto
    from flows.backup import daily_backup

    ensure_database(args.rows)
    url = database_url(args.rows)
    print(f"database {url.rsplit('/', 1)[1]}: {database_size(args.rows) / 1e6:,.0f} MB")
    moto, s3_url = start_moto()
    try:
        with tempfile.TemporaryDirectory(prefix="vigil-bench-") as folder:
            config = write_config(Path(folder), url, s3_url, args.jobs)
            state: Any = daily_backup(config_path=str(config), return_state=True)
            assert state.is_completed(), state.message
            print(f"backed up to s3://{BUCKET}/{PREFIX} on moto; jobs {args.jobs}")
            times = alternate(
                {"bare": lambda: bare(s3_url, args.jobs), "vigil": lambda: vigil(config)},
                args.rounds,
            )
    finally:
        moto.kill()
        moto.wait()
    best_bare, best_vigil = min(times["bare"]), min(times["vigil"])
    print(
        f"best: bare S3 fetch + sha256 + pg_restore + count(*) {best_bare:.2f}s, vigil DR drill "
        f"{best_vigil:.2f}s, ratio {best_vigil / best_bare:.2f}"
    )


def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    run_main(measure, (__doc__ or "").splitlines()[0])


if __name__ == "__main__":
    main()
