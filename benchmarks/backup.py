"""Backup benchmark: vigil's daily backup, to a folder and to S3, against a bare pg_dump of the
same database, in one run.

    .venv/bin/python -m benchmarks.backup                   # 4,000,000 rows, about 1.1 GB
    .venv/bin/python -m benchmarks.backup --rows 500000     # a quicker run
    .venv/bin/python -m benchmarks.backup --rounds 3        # more rounds against noise

The database (`vigil_bench_<rows>`) is built once with /work/shared/bench-data.sql
(`psql -v rows=N -f`), data that compresses like production data, and reused while its row
count matches. Each variant runs in a subprocess of its own, one after another, `--rounds`
times in turn; the medians of the rounds are compared (the machine is shared):

  pg_dump       `pg_dump --format=custom -Z1 -f FILE` (vigil's compression before zstd)
  pg_dump-zstd  `pg_dump -Fc -Z0 | zstd -1 -T2 > FILE`: the plain way of the new default
  local         the `daily-backup` flow run for real to a folder with the default zstd:1 on
                2 threads: snapshot with exact counts, pg_dump -Z0 compressed on zstd's own
                threads and streamed through SHA-256 into `.partial` + fsync + rename,
                manifest, read-back verification (hash, decompress all of it, pg_restore
                --list), records, retention, artifact
  local-age     the same, sealed with age for one recipient (the host holds no identity:
                the read-back proves the checksum of the sealed object)
  local-gzip    the same with `compression: gzip:1` (pg_dump's own -Z1, vigil's old way)
  s3            zstd to S3 on a moto server this benchmark starts (its own process), with
                the default part_size, 8MiB (two parts in memory, one uploading)
  s3-age        the same, sealed
  empty         a flow with one task that does nothing: Prefect's own fixed cost per run

pg_dump's own `--compress=zstd` needs pg_dump 16 or newer; the run says whether this
client has it.

For the flows, "time" is the flow call (after imports, against a Prefect test API started
here) and "process" the whole subprocess from exec to exit; the store is migrated before any
timing. Peak memory is each variant's
own process: vigil's Python process (its VmHWM), and pg_dump for the bare variant.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vigil.runtime import summary_of

BENCH_SQL = Path("/work/shared/bench-data.sql")
SERVER = os.environ.get("VIGIL_BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432")
VARIANTS = (
    "pg_dump", "pg_dump-zstd", "local", "local-age", "local-gzip", "s3", "s3-age", "empty"
)  # fmt: skip
FLOW_VARIANTS = ("local", "local-age", "local-gzip", "s3", "s3-age")
BARE_VARIANTS = ("pg_dump", "pg_dump-zstd")
MB = 1_000_000


# --- the database ---------------------------------------------------------------------------


def database_url(rows: int) -> str:
    return f"{SERVER}/vigil_bench_{rows}"


def ensure_database(rows: int) -> None:
    """Build the benchmark database unless it already holds `rows` events."""
    url = database_url(rows)
    probe = subprocess.run(
        ["psql", "-XAtq", "-d", url, "-c", "SELECT count(*) FROM events"],
        capture_output=True,
        text=True,
    )
    if probe.returncode == 0 and probe.stdout.strip() == str(rows):
        return
    name = url.rsplit("/", 1)[1]
    admin = f"{SERVER}/postgres"
    print(f"building {name} ({rows:,} rows) with {BENCH_SQL} ...", flush=True)
    subprocess.run(
        ["psql", "-Xq", "-d", admin, "-c", f"DROP DATABASE IF EXISTS {name}"], check=True
    )
    subprocess.run(["psql", "-Xq", "-d", admin, "-c", f"CREATE DATABASE {name}"], check=True)
    subprocess.run(
        [
            "psql",
            "-Xq",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            f"rows={rows}",
            "-d",
            url,
            "-f",
            str(BENCH_SQL),
        ],
        check=True,
    )
    subprocess.run(["psql", "-Xq", "-d", url, "-c", "VACUUM ANALYZE"], check=True)


def database_size(rows: int) -> int:
    out = subprocess.run(
        [
            "psql",
            "-XAtq",
            "-d",
            database_url(rows),
            "-c",
            "SELECT pg_database_size(current_database())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


# --- running one variant ------------------------------------------------------------------------


def whole(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall time and stdout of one command from exec to exit."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed: {done.stderr[-3000:]}")
    return seconds, done.stdout


def run_pg_dump(
    rows: int, folder: Path, env: dict[str, str], variant: str = "pg_dump"
) -> dict[str, float]:
    target = folder / "bare.dump"
    peak = folder / "pg_dump.peak"
    if variant == "pg_dump":
        command = ["pg_dump", "--format=custom", "-Z1", "-f", str(target), database_url(rows)]
    else:
        pipeline = f"pg_dump -Fc -Z0 '{database_url(rows)}' | zstd -1 -T2 -q > '{target}'"
        command = ["bash", "-o", "pipefail", "-c", pipeline]
    # GNU time forks the command itself, so the peak RSS is its own (the largest process of
    # a pipeline: see own_peak_mb).
    seconds, _ = whole(["/usr/bin/time", "-f", "%M", "-o", str(peak), *command], env)
    size = target.stat().st_size
    target.unlink()
    peak_mb = int(peak.read_text().split()[-1]) / 1024
    return {"seconds": seconds, "process": seconds, "peak_mb": peak_mb, "size": size}


def pg_dump_zstd_available(rows: int) -> str:
    """Whether this pg_dump compresses with zstd itself (PostgreSQL 16+)."""
    done = subprocess.run(
        ["pg_dump", "-Fc", "--compress=zstd", "-s", "-f", os.devnull, database_url(rows)],
        capture_output=True,
        text=True,
    )
    version = subprocess.run(["pg_dump", "--version"], capture_output=True, text=True).stdout
    if done.returncode == 0:
        return f"{version.strip()}: --compress=zstd available"
    return f"{version.strip()}: --compress=zstd unavailable ({done.stderr.strip()[:120]})"


def run_flow(config: Path, env: dict[str, str]) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.backup", "--child", str(config)]
    seconds, out = whole(command, env)
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    figures["process"] = seconds
    return figures


def child(config: str) -> None:
    """In the subprocess: run the flow once, print its time and this process's peak RSS."""
    from flows.backup import daily_backup

    if config == "empty":
        print(json.dumps({"seconds": empty_flow(), "peak_mb": own_peak_mb(), "size": 0}))
        return
    started = time.perf_counter()
    state: Any = daily_backup(config_path=config, return_state=True)
    seconds = time.perf_counter() - started
    summary = summary_of(state)
    if not state.is_completed():
        raise SystemExit(f"the backup did not succeed: {state.message}")
    [database] = summary["databases"]
    print(
        json.dumps({"seconds": seconds, "peak_mb": own_peak_mb(), "size": database["size_bytes"]})
    )


def empty_flow() -> float:
    """Prefect's own cost per run here: a flow with one task that does nothing."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    @task(cache_policy=NO_CACHE)
    def nothing() -> None:
        return None

    @flow(name="empty")
    def empty() -> None:
        nothing()

    started = time.perf_counter()
    empty()
    return time.perf_counter() - started


def own_peak_mb() -> float:
    """This process's peak RSS since exec (VmHWM). ru_maxrss would also count the parent's
    pages the child carried until exec, and the parent runs Prefect's test API."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_config(folder: Path, rows: int, variant: str, s3_url: str, recipient: str) -> Path:
    storage = f"storage: '{(folder / 'local').as_uri()}'"
    if variant.startswith("s3"):
        s3 = f"{{endpoint_url: '{s3_url}', region: us-east-1}}"
        storage = f"storage: 's3://vigil-bench/{variant}'\n  s3: {s3}"
    if variant.endswith("-age"):
        storage += f"\n  encrypt: {{recipients: ['{recipient}']}}"
    if variant.endswith("-gzip"):
        storage += "\n  compression: 'gzip:1'"
    path = folder / f"{variant}.yaml"
    path.write_text(
        f"store: {{url: 'sqlite:///{folder / 'vigil.db'}'}}\n"
        f"databases:\n  - {{name: bench, url: '{database_url(rows)}', critical_tables: [events]}}\n"
        f"backup:\n  {storage}\n"
        "  retention: {keep_last: 1, keep_daily: 0, keep_weekly: 0, keep_monthly: 0}\n"
    )
    return path


# --- S3 and Prefect for the flows ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """moto's server in a process of its own, with the bucket the s3 variant uses."""
    import boto3

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket="vigil-bench")
            return process, url
        except Exception:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.2)


def child_env(api_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }


# --- the report -----------------------------------------------------------------------------------


def report(rows: int, runs: dict[str, list[dict[str, float]]], db_size: int) -> None:
    """Medians of the rounds (the machine is shared), with every round shown."""
    middle = {v: {k: statistics.median(r[k] for r in runs[v]) for k in runs[v][0]} for v in runs}
    bare = middle["pg_dump"]["seconds"]
    dump = middle["pg_dump"]["size"]
    print(f"\n{rows:,} rows, database {db_size / MB:,.0f} MB, -Z1 dump {dump / MB:,.0f} MB")
    print(
        f"medians of {len(runs['pg_dump'])} round(s); every round: "
        + "; ".join(f"{v} " + " ".join(f"{r['seconds']:.1f}s" for r in runs[v]) for v in runs)
    )
    heads = ("variant", "time", "ratio", "process", "archive", "DB MB/s", "peak RSS")
    print("{:<13} {:>8} {:>6} {:>8} {:>9} {:>8} {:>9}".format(*heads))
    for variant, figures in middle.items():
        seconds = figures["seconds"]
        size = "" if variant == "empty" else f"{figures['size'] / MB:.0f} MB"
        speed = "" if variant == "empty" else f"{db_size / MB / seconds:.1f}"
        print(
            f"{variant:<13} {seconds:>7.1f}s {seconds / bare:>6.2f} {figures['process']:>7.1f}s "
            f"{size:>9} {speed:>8} {figures['peak_mb']:>6.0f} MB"
        )
    local = middle["local-age"]["seconds"] / bare
    s3 = middle["s3-age"]["seconds"] / bare
    peak = max(middle[v]["peak_mb"] for v in FLOW_VARIANTS)
    smaller = middle["local-age"]["size"] < dump
    print(
        f"targets: sealed zstd to a folder {local:.2f} (<= 0.7: {_met(local <= 0.7)}), to S3 "
        f"{s3:.2f} (<= 0.8: {_met(s3 <= 0.8)}), vigil peak {peak:.0f} MB (< 200 MB: "
        f"{_met(peak < 200)}), archive {middle['local-age']['size'] / MB:.0f} MB vs -Z1 "
        f"{dump / MB:.0f} MB ({_met(smaller)})"
    )
    fixed = middle["empty"]["seconds"]
    print(
        f"Prefect's fixed cost per flow run here is {fixed:.1f}s (the empty flow); without it "
        f"the sealed local backup takes {middle['local-age']['seconds'] - fixed:.1f}s"
    )


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    import pyrage
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from vigil.store import open_store

    ensure_database(args.rows)
    db_size = database_size(args.rows)
    folder = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    moto, s3_url = start_moto()
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    try:
        with prefect_test_harness(server_startup_timeout=120):
            env = child_env(str(PREFECT_API_URL.value()))
            recipient = str(pyrage.x25519.Identity.generate().to_public())
            configs = {
                v: write_config(folder, args.rows, v, s3_url, recipient) for v in FLOW_VARIANTS
            }
            print(pg_dump_zstd_available(args.rows), flush=True)
            open_store(f"sqlite:///{folder / 'vigil.db'}").close()  # migrated before any timing
            run_pg_dump(args.rows, folder, env)  # warm the cache; every variant then reads it warm
            for round_number in range(1, args.rounds + 1):
                for variant in VARIANTS:
                    if variant in BARE_VARIANTS:
                        figures = run_pg_dump(args.rows, folder, env, variant)
                    else:
                        figures = run_flow(configs.get(variant, Path("empty")), env)
                    runs[variant].append(figures)
                    print(f"round {round_number} {variant}: {figures['seconds']:.1f}s", flush=True)
    finally:
        moto.kill()
        shutil.rmtree(folder, ignore_errors=True)
    report(args.rows, runs, db_size)


if __name__ == "__main__":
    main()
