"""Sharded sweep benchmark: the scheduled `uptime-sweep` over N monitors with 1 vs S shards.

    .venv/bin/python -m benchmarks.sweep_shards                   # 10,000 monitors, 1 and 4
    .venv/bin/python -m benchmarks.sweep_shards --n 10000 --shards 1 --shards 4 --repeat 3

What is timed is what a schedule gets: the sweep runs from its deployment, served by a
Prefect runner (`vigil serve` does the same; a worker behaves alike), so every flow run is
a process of its own and the shards really run in parallel. For each shard count a fresh
runner serves `uptime-sweep` and `uptime-sweep-shard` against Prefect's test API (SQLite),
polling every second; each sweep is triggered with run_deployment and timed until its run
is final ("end to end": pick-up delays and process starts included), next to the parent
run's own duration as the API records it. CPU is that of the runner and all its flow-run
processes together; peak RSS is the largest single process. The bare aiohttp loop over
the same URLs is the reference, as in benchmarks/sweep.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from benchmarks.sweep import measure, write_config
from benchmarks.targets import ROOT, running_target

# The test API's telemetry write races its own startup on SQLite and prints a traceback.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
DEPLOYMENT = "uptime-sweep/uptime-sweep-bench"
SERVE = """
from prefect import serve
from flows.sweep import uptime_sweep
from flows.sweep_shards import shard_deployment

serve(
    uptime_sweep.to_deployment(name="uptime-sweep-bench"),
    shard_deployment(None),
    limit=16,
    pause_on_shutdown=False,
    print_starting_message=False,
)
"""


def sweep_once(config: Path, n: int) -> dict[str, float]:
    """Trigger one sweep through its deployment and wait until it is final."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    started = time.perf_counter()
    run = run_deployment(
        DEPLOYMENT,
        parameters={"config_path": str(config)},
        timeout=600,
        poll_interval=0.2,
        as_subflow=False,
    )
    wall = time.perf_counter() - started
    run = cast(FlowRun, run)  # called from sync code: the run itself, not a coroutine
    state = run.state
    if state is None or not state.is_completed() or f"{n} up" not in (state.message or ""):
        raise SystemExit(f"the sweep did not see all {n} monitors up: {state}")
    return {"wall": wall, "run": _run_seconds(run.id)}


def _run_seconds(run_id: Any) -> float:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
    if run.start_time is None or run.end_time is None:
        return float("nan")
    return (run.end_time - run.start_time).total_seconds()


def serve_and_sweep(config: Path, n: int, repeat: int) -> dict[str, Any]:
    """A fresh runner for this config; returns its sweeps' figures and the runner's usage."""
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    with tempfile.TemporaryFile() as log:
        runner = subprocess.Popen(
            [sys.executable, "-c", SERVE], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        try:
            _wait_until_served(runner)
            cpu_before = _cpu_of(runner.pid)
            sweeps = [sweep_once(config, n) for _ in range(repeat)]
            _wait_for_no_children(runner.pid)  # flow-run processes are counted once reaped
            cpu = (_cpu_of(runner.pid) - cpu_before) / repeat
        finally:
            runner.send_signal(signal.SIGINT)
            _, _, usage = os.wait4(runner.pid, 0)
            runner.returncode = 0
    return {"sweeps": sweeps, "cpu": cpu, "peak_mb": usage.ru_maxrss / 1024}


def _wait_for_no_children(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        if not any((task / "children").read_text().strip() for task in tasks):
            return
        time.sleep(0.2)


def _cpu_of(pid: int) -> float:
    """CPU seconds of a process and of the children it has waited for (its flow runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def _wait_until_served(runner: subprocess.Popen[bytes]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from flows.sweep_shards import SHARD_DEPLOYMENT

    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if runner.poll() is not None:
                raise SystemExit("the runner exited before serving")
            try:
                client.read_deployment_by_name(DEPLOYMENT)
                client.read_deployment_by_name(SHARD_DEPLOYMENT)
                time.sleep(2)
                return
            except ObjectNotFound:
                time.sleep(0.5)
    raise SystemExit("the runner did not register its deployments in time")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10000, help="monitors")
    parser.add_argument("--shards", type=int, action="append", help="shard counts to compare")
    parser.add_argument("--repeat", type=int, default=2, help="sweeps per shard count")
    args = parser.parse_args()
    counts = args.shards or [1, 4]

    from prefect.testing.utilities import prefect_test_harness

    with (
        running_target() as base,
        tempfile.TemporaryDirectory() as tmp,
        prefect_test_harness(server_startup_timeout=120),
    ):
        os.environ["VIGIL_HOME"] = tmp
        print(f"target {base}; {args.n:,} monitors; {os.cpu_count()} CPUs")
        reference = [measure("aiohttp", args.n, base) for _ in range(args.repeat)]
        bare = statistics.median(r["seconds"] for r in reference)
        print(f"  bare aiohttp loop   wall {bare:6.2f}s (in-process, after imports)")
        for shards in counts:
            directory = Path(tmp) / f"shards-{shards}"
            directory.mkdir()
            config = write_config(directory, base, args.n, shards=shards)
            figures = serve_and_sweep(config, args.n, args.repeat)
            walls = [s["wall"] for s in figures["sweeps"]]
            runs = [s["run"] for s in figures["sweeps"]]
            wall = statistics.median(walls)
            print(
                f"  {shards} shard{'s' if shards > 1 else ' '}"
                f"            end to end {wall:6.2f}s ({min(walls):.2f}-{max(walls):.2f})"
                f" x{wall / bare:4.2f} | sweep run {statistics.median(runs):6.2f}s"
                f" | cpu {figures['cpu']:6.2f}s per sweep, all processes"
                f" | peak RSS {figures['peak_mb']:4.0f} MB (largest process)"
            )


if __name__ == "__main__":
    main()
