"""Uptime sweep benchmark: vigil's sweep against a bare aiohttp loop over the same URLs.

    .venv/bin/python -m benchmarks.sweep                        # 1,000 and 10,000 monitors
    .venv/bin/python -m benchmarks.sweep --n 10000 --repeat 5
    .venv/bin/python -m benchmarks.sweep --n 10000 --whole-process   # `vigil sweep -c {config}`
    .venv/bin/python -m benchmarks.sweep --whole-process "vigil sweep -c {config} --json"
    .venv/bin/python -m benchmarks.sweep --n 100000 --repeat 3 --whole-process   # issue 19

Every monitor has its own URL path and the conditions `[STATUS] == 200` and
`[BODY].status == ok`; the target (benchmarks/targets.py) runs in a process of its own.
Each variant runs in a fresh subprocess, so its wall time, CPU time and peak RSS are its
own; timing starts after imports and after the monitors are built. Runs are interleaved
and repeated, and medians reported, because the machine may be busy with other work.

  aiohttp        the reference: one ClientSession (connector limit 100), a semaphore of
                 100, every body read
  httpx-aiohttp  an httpx AsyncClient over httpx-aiohttp's transport, the same loop
  httpx          a bare httpx AsyncClient (its own transport), the same loop
  vigil          `run_vigil`: probe_all and condition evaluation
  flow           the whole `uptime-sweep` flow run for real (the issue's comparison):
                 probes, conditions, states, records (SQLite), alerts, artifact; the
                 first sweep of a new config on a new store
  flow-again     the same flow's second sweep (not in the default set): the steady state
                 of a schedule, states in the store and the config's parse cached

With --whole-process, whole commands are timed from exec to exit: the given command (its
`{config}`, `{base}` and `{n}` are filled in; the config is generated), and the bare
aiohttp loop (with `httpx` in --variants, the bare httpx loop too: ~28 s at 10,000) as
processes of their own, interleaved and repeated `--repeat` times. Peak RSS is the
command's own process, not its children. Each line shows wall, CPU and peak memory with
their ratios to the bare aiohttp loop's. `vigil sweep` uses the Prefect API it finds, or
starts a local server on 127.0.0.1:4200 and leaves it running: time a second run for the
steady state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.targets import ROOT, running_target
from vigil.runtime import summary_of

CONCURRENCY = 100
CONDITIONS = ["[STATUS] == 200", "[BODY].status == ok"]
VARIANTS = ("aiohttp", "httpx-aiohttp", "httpx", "vigil", "flow", "flow-again")
DEFAULT_VARIANTS = "aiohttp,vigil,flow"
DEFAULT_COMMAND = "vigil sweep -c {config}"

_cpu: list[float] = []


def timed(work: Callable[[], object]) -> float:
    """Wall seconds of `work`; its CPU seconds are kept for the child's report."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    _cpu.append(time.process_time() - cpu)
    return time.perf_counter() - wall


def run_aiohttp(n: int, url_base: str) -> float:
    import aiohttp

    async def sweep() -> None:
        limit = asyncio.Semaphore(CONCURRENCY)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> int:
                async with limit, session.get(f"{url_base}/ok/{i}") as response:
                    await response.read()
                    return response.status

            _require_ok(await asyncio.gather(*(one(i) for i in range(n))))

    return timed(lambda: asyncio.run(sweep()))


def run_httpx(n: int, url_base: str, *, over_aiohttp: bool = False) -> float:
    import httpx

    async def sweep() -> None:
        limit = asyncio.Semaphore(CONCURRENCY)
        limits = httpx.Limits(max_connections=CONCURRENCY)
        transport: httpx.AsyncBaseTransport | None = None
        if over_aiohttp:
            from httpx_aiohttp import AiohttpTransport

            transport = AiohttpTransport(limits=limits)
        async with httpx.AsyncClient(limits=limits, transport=transport) as client:

            async def one(i: int) -> int:
                async with limit:
                    response = await client.get(f"{url_base}/ok/{i}")
                    return response.status_code

            _require_ok(await asyncio.gather(*(one(i) for i in range(n))))

    return timed(lambda: asyncio.run(sweep()))


def run_vigil(n: int, url_base: str) -> float:
    """vigil's side of the comparison: for now probe_all plus condition evaluation (the
    hook to point at the whole uptime-sweep flow)."""
    from tasks.probes import probe_all
    from vigil.conditions import conditions_for, evaluate_all
    from vigil.config import Monitor

    monitors = [
        Monitor(name=f"m{i}", url=f"{url_base}/ok/{i}", conditions=CONDITIONS) for i in range(n)
    ]

    def sweep() -> None:
        observations = asyncio.run(probe_all(monitors, concurrency=CONCURRENCY))
        failed = [
            m.name
            for m, obs in zip(monitors, observations, strict=True)
            if not all(r.ok for r in evaluate_all(conditions_for(m), obs))
        ]
        if failed:
            raise SystemExit(f"{len(failed)} of {n} monitors failed, e.g. {failed[0]}")

    return timed(sweep)


def run_flow(n: int, url_base: str, *, again: bool = False) -> float:
    """The whole `uptime-sweep` flow run for real (probes, conditions, states, records in
    SQLite, alerts, artifact), against Prefect's test API started before timing.

    The first sweep of a new config on a new store (`flow`), or with `again` the next one
    (`flow-again`): the steady state of a schedule, with the store holding every monitor's
    state and the config's parse cached (Prefect's client is warm too, which a scheduled
    run in a fresh process is not: ~0.2 s)."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.sweep import uptime_sweep

    with (
        tempfile.TemporaryDirectory() as tmp,
        prefect_test_harness(server_startup_timeout=120),
    ):
        os.environ["VIGIL_HOME"] = tmp  # a cold config cache, thrown away afterwards
        config = write_config(Path(tmp), url_base, n)
        outcome: list = []

        def sweep() -> None:
            outcome.append(uptime_sweep(config_path=str(config), return_state=True))

        if again:
            sweep()
        seconds = timed(sweep)
    summary = summary_of(outcome[-1])
    if not isinstance(summary, dict) or summary.get("up") != n:
        raise SystemExit(f"the sweep flow did not see all {n} monitors up: {outcome[-1].message}")
    return seconds


def _require_ok(statuses: list[int]) -> None:
    if any(status != 200 for status in statuses):
        raise SystemExit(f"the target answered {sorted(set(statuses))}")


RUNNERS: dict[str, Callable[[int, str], float]] = {
    "aiohttp": run_aiohttp,
    "httpx-aiohttp": lambda n, base: run_httpx(n, base, over_aiohttp=True),
    "httpx": run_httpx,
    "vigil": run_vigil,
    "flow": run_flow,
    "flow-again": lambda n, base: run_flow(n, base, again=True),
}


def child(variant: str, n: int, base: str) -> None:
    """Run one variant in this process and print its figures as JSON."""
    seconds = RUNNERS[variant](n, base)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu": _cpu[-1], "peak_mb": peak_mb}))


def measure(variant: str, n: int, base: str) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.sweep", "--child", variant, "--base", base]
    out = subprocess.run(
        [*command, "--n", str(n)], capture_output=True, text=True, env=_child_env(), cwd=ROOT
    )
    if out.returncode != 0:
        raise SystemExit(f"{variant} (n={n}) failed: {out.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def whole(command: list[str]) -> dict[str, float]:
    """Wall time, CPU time and peak RSS of one command, from exec to exit."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=errors, env=_child_env(), cwd=ROOT
        )
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            tail = errors.read()[-2000:].decode(errors="replace")
            raise SystemExit(f"{shlex.join(command)} exited {process.returncode}: {tail}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"seconds": seconds, "cpu": cpu, "peak_mb": usage.ru_maxrss / 1024}


def _child_env() -> dict[str, str]:
    return {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}


def write_config(directory: Path, base: str, n: int, *, shards: int = 1) -> Path:
    """A vigil config with `n` monitors like the in-process ones and a throw-away store."""
    lines = [
        f"store: {{url: 'sqlite:///{directory / 'bench.db'}'}}",
        f"sweep: {{concurrency: {CONCURRENCY}, shards: {shards}}}",
        "monitors:",
    ]
    conditions = ", ".join(f"'{c}'" for c in CONDITIONS)
    lines += [
        f"  - {{name: m{i}, url: '{base}/ok/{i}', conditions: [{conditions}]}}" for i in range(n)
    ]
    path = directory / "generated.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def compare(variants: list[str], n: int, base: str, repeat: int) -> None:
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for _ in range(repeat):
        for variant in variants:
            runs[variant].append(measure(variant, n, base))
    report(f"n={n:,} in-process, median of {repeat}", runs)


def compare_whole(
    template: str,
    n: int,
    base: str,
    directory: Path,
    repeat: int,
    *,
    httpx: bool,
    baseline: str | None = None,
) -> None:
    config = write_config(directory, base, n)
    command = _command(template, config, base, n)
    loop = [sys.executable, "-m", "benchmarks.sweep", "--base", base, "--n", str(n), "--child"]
    commands = {"aiohttp": [*loop, "aiohttp"], "command": command}
    if baseline:  # e.g. the same command from an older checkout, measured in the same hour
        commands["baseline"] = _command(baseline, config, base, n)
    if httpx:
        commands["httpx"] = [*loop, "httpx"]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, argv in commands.items():
            runs[name].append(whole(argv))
    report(f"n={n:,} whole process, median of {repeat} (command: {shlex.join(command)})", runs)


def _command(template: str, config: Path, base: str, n: int) -> list[str]:
    command = shlex.split(template.format(config=config, base=base, n=n))
    if command[0] == "vigil":
        command[0] = str(Path(sys.executable).parent / "vigil")
    return command


def report(title: str, runs: dict[str, list[dict[str, float]]]) -> None:
    reference = statistics.median(r["seconds"] for r in runs["aiohttp"])
    reference_cpu = statistics.median(r["cpu"] for r in runs["aiohttp"])
    reference_peak = statistics.median(r["peak_mb"] for r in runs["aiohttp"])
    print(f"{title}:")
    for variant, figures in runs.items():
        wall = [r["seconds"] for r in figures]
        cpu = statistics.median(r["cpu"] for r in figures)
        peak = statistics.median(r["peak_mb"] for r in figures)
        spread = f" ({min(wall):.2f}-{max(wall):.2f})" if len(wall) > 1 else ""
        print(
            f"  {variant:<16} wall {statistics.median(wall):6.2f}s{spread}"
            f"  x{statistics.median(wall) / reference:4.2f}"
            f" | cpu {cpu:6.2f}s x{cpu / reference_cpu:4.2f}"
            f" | peak RSS {peak:4.0f} MB x{peak / reference_peak:4.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, action="append", help="monitors (repeatable)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (median)")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"from {VARIANTS}")
    parser.add_argument(
        "--whole-process",
        nargs="?",
        const=DEFAULT_COMMAND,
        metavar="COMMAND",
        help=f"also time whole processes (default command: {DEFAULT_COMMAND!r})",
    )
    parser.add_argument(
        "--whole-only", action="store_true", help="only the --whole-process comparison"
    )
    parser.add_argument(
        "--baseline", metavar="COMMAND", help="with --whole-process, a second command to time"
    )
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = args.n or [1000, 10000]
    if args.child:
        child(args.child, sizes[0], args.base)
        return
    variants = ["aiohttp", *(v for v in args.variants.split(",") if v != "aiohttp")]
    with running_target() as base, tempfile.TemporaryDirectory() as tmp:
        print(f"target {base}; concurrency {CONCURRENCY}; {os.cpu_count()} CPUs")
        measure("aiohttp", min(sizes), base)  # warm the target up
        for n in sizes:
            if not args.whole_only:
                compare(variants, n, base, args.repeat)
            if args.whole_process:
                directory = Path(tmp) / str(n)
                directory.mkdir()
                compare_whole(
                    args.whole_process,
                    n,
                    base,
                    directory,
                    args.repeat,
                    httpx="httpx" in variants,
                    baseline=args.baseline,
                )


if __name__ == "__main__":
    main()
