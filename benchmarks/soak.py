"""Soak: `vigil serve` against its own Prefect server for an hour, with 100 and 1,000
monitors on a fast local target, sweeping every 10 s (serve's floor), on vigil's accelerated
clock (vigil/clock.py, VIGIL_CLOCK): at the default rate of 1440 a real minute is a vigil day,
so the daily housekeeping runs every real minute and the default 30-day check retention is
crossed after 30 minutes (rollups are kept 45 days here, so that horizon is crossed too).
Prefect runs on the real clock: the server gets vigil's vacuum settings with the shortest
flow-run retention Prefect allows (just over an hour) and a vacuum pass every minute.

Recorded every few seconds: the records store's size (SQLite file + WAL), Prefect's
database size, the RSS of every process of the server and of `vigil serve` (with the flow
runs it starts), CPU (the serve tree's, children included), and at the end the sweep runs by
state, late starts, and ERROR/Traceback lines in both logs. Prints a table, writes a PNG per
size and a JSON, and extrapolates to a year at one sweep a minute at the default retention.

    .venv/bin/python -m benchmarks.soak --minutes 5 --sizes 100,1000 --out /tmp/vigil-soak

Run it on an otherwise idle machine; it starts and stops only its own processes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.targets import ROOT, free_port, running_target

TICK = os.sysconf("SC_CLK_TCK")
SWEEP_EVERY_S = 10
DAY_SWEEPS = 1440  # one sweep a minute
PREFECT_RUNS = 3660  # seconds: Prefect's minimum flow-run retention is more than one hour
VACUUM_EVERY_S = 60
ROLLUPS_DAYS = 45


def config_text(n: int, base: str, store: Path) -> str:
    monitors = "\n".join(f"  - {{name: m{i}, url: '{base}/ok/{i}'}}" for i in range(n))
    return (
        f"store: {{url: 'sqlite:///{store}'}}\n"
        f"sweep: {{every: {SWEEP_EVERY_S}s}}\n"
        f"retention: {{checks: 30d, rollups: {ROLLUPS_DAYS}d, schedule: '* * * * *', "
        f"prefect_runs: {PREFECT_RUNS}s}}\n"
        f"monitors:\n{monitors}\n"
    )


# --- processes ------------------------------------------------------------------------------


def tree(root: int) -> list[int]:
    """`root` and every descendant, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += parents.get(pid, [])
    return found


def rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """utime + stime + waited-for children's, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def wait_healthy(url: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no Prefect server at {url}")


# --- one soak -------------------------------------------------------------------------------


def soak(n: int, minutes: float, base: str, work: Path, rate: float) -> dict[str, Any]:
    from vigil import clock
    from vigil.prefect_db import server_settings

    home = work / f"n{n}"
    home.mkdir(parents=True)
    store, prefect_db = home / "vigil.db", home / "prefect" / "prefect.db"
    config = home / "vigil.yaml"
    config.write_text(config_text(n, base, store))
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    from datetime import timedelta

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_HOME": str(home / "prefect"),
        "VIGIL_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    server_env = env | server_settings(timedelta(seconds=PREFECT_RUNS))
    server_env["PREFECT_SERVER_SERVICES_DB_VACUUM_LOOP_SECONDS"] = str(VACUUM_EVERY_S)
    server = start(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        server_env,
        home / "server.log",
    )
    vigil_clock = clock.accelerated(rate)
    serve = None
    samples: list[dict[str, Any]] = []
    try:
        wait_healthy(api)
        serve_env = env | {"PREFECT_API_URL": api, clock.ENV: vigil_clock}
        serve = start(
            [sys.executable, "-m", "vigil", "serve", "-c", str(config)],
            serve_env,
            home / "serve.log",
        )
        began = time.monotonic()
        while time.monotonic() - began < minutes * 60:
            time.sleep(5)
            if serve.poll() is not None:
                raise RuntimeError(f"vigil serve exited {serve.returncode}")
            samples.append(sample(began, store, prefect_db, server.pid, serve.pid))
            samples[-1]["vigil_days"] = round((time.monotonic() - began) * rate / 86400, 2)
        runs = sweep_runs(api, datetime.now(UTC))
    finally:
        if serve is not None:
            stop(serve)
        stop(server)
    return {
        "n": n,
        "minutes": minutes,
        "rate": rate,
        "clock": vigil_clock,
        "samples": samples,
        "runs": runs,
        "tables": table_bytes(store),
        "rollups": rows(store, "hourly_rollups"),
        "errors": errors(home),
    }


def sample(began: float, store: Path, prefect_db: Path, server: int, serve: int) -> dict[str, Any]:
    serve_tree = tree(serve)
    return {
        "t": round(time.monotonic() - began, 1),
        "store_bytes": size(store),
        "prefect_bytes": size(prefect_db),
        "server_rss": sum(rss(p) for p in tree(server)),
        "serve_rss": rss(serve),
        "runs_rss": sum(rss(p) for p in serve_tree if p != serve),
        "serve_cpu_s": cpu_s(serve) + sum(cpu_s(p) for p in serve_tree if p != serve),
        "server_cpu_s": sum(cpu_s(p) for p in tree(server)),
        "checks": rows(store, "check_results"),
        "rollups": rows(store, "hourly_rollups"),
        "prefect_runs": rows(prefect_db, "flow_run"),
        "load1": os.getloadavg()[0],
    }


def rows(store: Path, table: str) -> int | None:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as c:
            return int(c.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return None


def table_bytes(store: Path) -> dict[str, int]:
    """Bytes per table and its indexes (SQLite's dbstat)."""
    with sqlite3.connect(store) as c:
        found: dict[str, int] = {}
        for _name, tbl, pgsize in c.execute(
            "SELECT d.name, m.tbl_name, sum(d.pgsize) FROM dbstat d "
            "JOIN sqlite_master m ON m.name = d.name GROUP BY d.name"
        ):
            found[tbl] = found.get(tbl, 0) + int(pgsize)
        return found


def sweep_runs(api: str, end: datetime) -> dict[str, Any]:
    """Every flow run due before `end` by flow and state, and how late the sweeps started."""
    from prefect.client.orchestration import SyncPrefectClient

    states: dict[str, int] = {}
    late = 0
    lateness: list[float] = []
    with SyncPrefectClient(api) as client:
        offset = 0
        while True:
            batch = client.read_flow_runs(limit=200, offset=offset)
            if not batch:
                break
            offset += len(batch)
            for run in batch:
                due = run.expected_start_time
                if due is None or due > end:
                    continue  # scheduled ahead, not due during the soak
                key = f"{run.name.split(' ')[0]}:{run.state_name}"
                states[key] = states.get(key, 0) + 1
                if run.start_time and run.expected_start_time and run.name.startswith("sweep"):
                    delay = (run.start_time - run.expected_start_time).total_seconds()
                    lateness.append(delay)
                    late += delay > SWEEP_EVERY_S
    lateness.sort()
    return {
        "states": states,
        "late": late,
        "start_delay_p50_s": lateness[len(lateness) // 2] if lateness else None,
        "start_delay_max_s": lateness[-1] if lateness else None,
    }


def errors(home: Path) -> list[str]:
    found = []
    for log in ("serve.log", "server.log"):
        for line in (home / log).read_text(errors="replace").splitlines():
            if "Traceback" in line or " ERROR " in line or "| ERROR" in line:
                found.append(f"{log}: {line[:200]}")
    return found


# --- the figures ----------------------------------------------------------------------------


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    s, n = result["samples"], result["n"]
    states = result["runs"]["states"]
    sweeps = sum(v for k, v in states.items() if k.startswith("sweep:"))
    done = states.get("sweep:Completed", 0)
    half = s[len(s) // 2]
    check_bytes = result["tables"].get("check_results", 0) / max(s[-1]["checks"] or 1, 1)
    rollup_rows = n * 400 * 24
    rollup_bytes = result["tables"].get("hourly_rollups", 0) / max(result["rollups"] or 1, 1)
    # Steady state: the second half of the run, past warm-up, at one sweep per interval
    # (the housekeeping runs of that half included in the Prefect growth).
    half_sweeps = max((s[-1]["t"] - half["t"]) / SWEEP_EVERY_S, 1)
    prefect_per_run = (s[-1]["prefect_bytes"] - half["prefect_bytes"]) / half_sweeps
    year_records = check_bytes * n * DAY_SWEEPS * 30 + rollup_bytes * rollup_rows
    return {
        "monitors": n,
        "minutes": result["minutes"],
        "sweeps": sweeps,
        "completed": done,
        "not_completed": {
            k: v for k, v in states.items() if k.startswith("sweep:") and k != "sweep:Completed"
        },
        "housekeeping_runs": {k: v for k, v in states.items() if k.startswith("housekeeping")},
        "late": result["runs"]["late"],
        "start_delay_max_s": result["runs"]["start_delay_max_s"],
        "states": states,
        "store_mb_mid_end": (half["store_bytes"] / 1e6, s[-1]["store_bytes"] / 1e6),
        "store_mb_max": max(x["store_bytes"] for x in s) / 1e6,
        "prefect_mb_start_end": (s[0]["prefect_bytes"] / 1e6, s[-1]["prefect_bytes"] / 1e6),
        "server_rss_mb_mid_end": (half["server_rss"] / 1e6, s[-1]["server_rss"] / 1e6),
        "serve_rss_mb_mid_end": (half["serve_rss"] / 1e6, s[-1]["serve_rss"] / 1e6),
        "runs_rss_mb_max": max(x["runs_rss"] for x in s) / 1e6,
        "cpu_s_per_sweep": (s[-1]["serve_cpu_s"] - half["serve_cpu_s"]) / half_sweeps,
        "server_cpu_s_per_sweep": (s[-1]["server_cpu_s"] - half["server_cpu_s"]) / half_sweeps,
        "bytes_per_check_row": check_bytes,
        "bytes_per_rollup_row": rollup_bytes,
        "prefect_kb_per_run": prefect_per_run / 1e3,
        "year_records_gb_default_retention": year_records / 1e9,
        "year_records_mb_per_monitor": year_records / n / 1e6,
        "prefect_gb_at_7d_runs": prefect_per_run * DAY_SWEEPS * 7 / 1e9,
        "after_horizon": after_horizon(result),
        "prefect_vacuum": prefect_vacuum(s),
        "prefect_runs_max_end": (max(x["prefect_runs"] or 0 for x in s), s[-1]["prefect_runs"]),
        "load1_mean_max": (
            round(sum(x["load1"] for x in s) / len(s), 2),
            round(max(x["load1"] for x in s), 2),
        ),
        "errors": result["errors"][:10],
        "error_count": len(result["errors"]),
    }


def after_horizon(result: dict[str, Any]) -> dict[str, Any]:
    """Each series at the first sample past both retention horizons (vigil time) and at the
    end: flat disk and memory means these pairs are close."""
    s = result["samples"]
    past = [x for x in s if x["vigil_days"] >= ROLLUPS_DAYS] or s[-1:]
    first, last = past[0], s[-1]
    keys = ("store_bytes", "checks", "rollups", "server_rss", "serve_rss", "prefect_bytes")
    return {"real_minute": round(first["t"] / 60, 1)} | {k: (first[k], last[k]) for k in keys}


def prefect_vacuum(s: list[dict[str, Any]]) -> dict[str, Any]:
    """Prefect's database once its vacuum can delete (runs ended more than PREFECT_RUNS
    seconds ago, real time, plus two vacuum passes): growth per real minute before and after
    that point. A bounded database grows much less after it (free pages are reused), and
    its flow-run count stops rising."""
    horizon = PREFECT_RUNS + 2 * VACUUM_EVERY_S
    before = [x for x in s if x["t"] < horizon]
    after = [x for x in s if x["t"] >= horizon]
    if len(before) < 2 or len(after) < 2:
        return {"reached": False, "horizon_real_minute": horizon / 60}

    def per_minute(part: list[dict[str, Any]], key: str) -> float:
        span = (part[-1]["t"] - part[0]["t"]) / 60
        return ((part[-1][key] or 0) - (part[0][key] or 0)) / max(span, 1e-9)

    return {
        "reached": True,
        "horizon_real_minute": round(horizon / 60, 1),
        "mb_at_horizon_end": (after[0]["prefect_bytes"] / 1e6, after[-1]["prefect_bytes"] / 1e6),
        "mb_per_minute_before_after": (
            round(per_minute(before, "prefect_bytes") / 1e6, 3),
            round(per_minute(after, "prefect_bytes") / 1e6, 3),
        ),
        "flow_runs_at_horizon_end": (after[0]["prefect_runs"], after[-1]["prefect_runs"]),
        "flow_runs_per_minute_before_after": (
            round(per_minute(before, "prefect_runs"), 1),
            round(per_minute(after, "prefect_runs"), 1),
        ),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["samples"]
    t = [x["t"] / 60 for x in s]
    fig, (disk, count, mem) = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    disk.plot(t, [x["store_bytes"] / 1e6 for x in s], label="records store (SQLite+WAL)")
    disk.plot(t, [x["prefect_bytes"] / 1e6 for x in s], label="Prefect DB (SQLite+WAL)")
    disk.set_ylabel("MB")
    disk.set_title(
        f"vigil serve soak, {result['n']} monitors, sweep every {SWEEP_EVERY_S}s, "
        f"vigil clock {result['rate']:g}x (checks kept 30d, rollups {ROLLUPS_DAYS}d)",
        fontsize=9,
    )
    disk.legend(fontsize=8)
    count.plot(t, [(x["checks"] or 0) / 1e3 for x in s], label="check rows")
    count.plot(t, [(x["rollups"] or 0) / 1e3 for x in s], label="rollup rows")
    count.plot(t, [(x["prefect_runs"] or 0) / 1e3 for x in s], label="Prefect flow runs")
    count.set_ylabel("thousand rows")
    count.legend(fontsize=8)
    days = count.secondary_xaxis(
        "top",
        functions=(lambda m: m * result["rate"] / 1440, lambda d: d * 1440 / result["rate"]),
    )
    days.set_xlabel("vigil days", fontsize=8)
    mem.plot(t, [x["server_rss"] / 1e6 for x in s], label="Prefect server RSS")
    mem.plot(t, [x["serve_rss"] / 1e6 for x in s], label="vigil serve RSS")
    mem.plot(t, [x["runs_rss"] / 1e6 for x in s], label="flow-run subprocesses RSS")
    mem.set_ylabel("MB")
    mem.set_xlabel("real minutes")
    mem.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "vigil-soak")
    parser.add_argument(
        "--rate", type=float, default=1440, help="vigil's clock speed (1440: a day a minute)"
    )
    parser.add_argument(
        "--parallel", action="store_true", help="soak the sizes at once (each its own server)"
    )
    parser.add_argument("--every", type=int, default=10, help="seconds between sweeps")
    args = parser.parse_args()
    globals()["SWEEP_EVERY_S"] = max(args.every, 10)
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in args.sizes.split(",")]
    with running_target() as base, tempfile.TemporaryDirectory(prefix="vigil-soak-") as work:

        def one(n: int) -> None:
            print(f"soak: {n} monitors for {args.minutes} min at {args.rate:g}x", flush=True)
            result = soak(n, args.minutes, base, Path(work), args.rate)
            plot(result, args.out / f"soak-{n}.png")
            summary = summarize(result)
            (args.out / f"soak-{n}.json").write_text(
                json.dumps({"summary": summary, "samples": result["samples"]}, indent=1)
            )
            lines = [f"  {key:<36} {value}" for key, value in summary.items()]
            print(f"soak: {n} monitors\n" + "\n".join(lines), flush=True)

        if args.parallel:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(sizes)) as pool:
                list(pool.map(one, sizes))
        else:
            for n in sizes:
                one(n)
    print(f"\nsoak finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; plots in {args.out}")


if __name__ == "__main__":
    main()
