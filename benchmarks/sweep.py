"""Uptime sweep benchmark: vigil's sweep flow against a bare aiohttp loop over the same URLs.

    .venv/bin/python -m benchmarks.sweep              # 1,000 and 10,000 monitors
    .venv/bin/python -m benchmarks.sweep --n 10000 --whole-process

Each variant runs in a subprocess of its own, so its wall time and peak RSS are its own.
In-process variants are timed after imports (and, for vigil, after the Prefect API is up):
  aiohttp   a bare aiohttp loop: one ClientSession, semaphore of 100, body read
  vigil     the `uptime-sweep` flow run for real: probes, condition evaluation, states,
            records (SQLite), artifact
With --whole-process, whole commands are timed from exec to exit:
  vigil sweep   `vigil sweep -c generated.yaml` against a running local Prefect server
  httpx loop    a bare httpx AsyncClient loop in `python -c`
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.targets import running_target

CONCURRENCY = 100


def write_config(directory: Path, base: str, n: int) -> Path:
    lines = [
        f"store: {{url: 'sqlite:///{directory / 'bench.db'}'}}",
        "sweep: {concurrency: 100}",
        "monitors:",
    ]
    for i in range(n):
        lines.append(
            f"  - {{name: m{i}, url: '{base}/ok/{i}', "
            "conditions: ['[STATUS] == 200', '[BODY].status == ok']}"
        )
    path = directory / "vigil.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_aiohttp(base: str, n: int) -> float:
    import asyncio

    import aiohttp

    async def main() -> None:
        limit = asyncio.Semaphore(CONCURRENCY)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> None:
                async with limit, session.get(f"{base}/ok/{i}") as response:
                    await response.read()

            await asyncio.gather(*(one(i) for i in range(n)))

    started = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - started


def run_vigil(config: Path) -> float:
    """The whole sweep flow, for real, against a throw-away Prefect test API."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.sweep import uptime_sweep

    with prefect_test_harness(server_startup_timeout=120):
        started = time.perf_counter()
        state = uptime_sweep(config_path=str(config), return_state=True)
        elapsed = time.perf_counter() - started
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, dict) or summary.get("up") != summary.get("monitors"):
        raise SystemExit(f"vigil's sweep did not see every monitor up: {state.message}")
    return elapsed


HTTPX_LOOP = """
import asyncio, httpx, sys
base, n = sys.argv[1], int(sys.argv[2])
async def main():
    limit = asyncio.Semaphore(100)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as client:
        async def one(i):
            async with limit:
                (await client.get(f"{base}/ok/{i}")).json()
        await asyncio.gather(*(one(i) for i in range(n)))
asyncio.run(main())
"""


def child(variant: str, base: str, n: int, config: str) -> None:
    """Run one variant in this (sub)process and print its time and peak RSS as JSON."""
    seconds = run_aiohttp(base, n) if variant == "aiohttp" else run_vigil(Path(config))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb}))


def measure(variant: str, base: str, n: int, config: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.sweep",
            "--child",
            variant,
            "--base",
            base,
            "--n",
            str(n),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def whole(command: list[str]) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of a whole command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode not in (0,):
        raise SystemExit(f"{command[:3]} failed ({result.returncode}): {result.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, action="append", help="monitors (repeatable)")
    parser.add_argument("--whole-process", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--base")
    parser.add_argument("--config")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.base, args.n[0], args.config)
        return
    sizes = args.n or [1000, 10000]
    with running_target() as base, tempfile.TemporaryDirectory() as tmp:
        print(f"target {base}; concurrency {CONCURRENCY}; 2-core machine")
        for n in sizes:
            directory = Path(tmp) / str(n)
            directory.mkdir()
            config = write_config(directory, base, n)
            bare = measure("aiohttp", base, n, config)
            mine = measure("vigil", base, n, config)
            print(
                f"n={n:>6}: bare aiohttp {bare['seconds']:6.2f}s ({bare['peak_mb']:.0f} MB) | "
                f"vigil sweep flow {mine['seconds']:6.2f}s ({mine['peak_mb']:.0f} MB) | "
                f"ratio {mine['seconds'] / bare['seconds']:.2f}"
            )
            if args.whole_process:
                vigil_bin = str(Path(sys.executable).parent / "vigil")
                t_vigil, m_vigil = whole([vigil_bin, "sweep", "-c", str(config)])
                t_httpx, m_httpx = whole([sys.executable, "-c", HTTPX_LOOP, base, str(n)])
                print(
                    f"          whole process: vigil sweep {t_vigil:6.2f}s ({m_vigil:.0f} MB) | "
                    f"bare httpx loop {t_httpx:6.2f}s ({m_httpx:.0f} MB) | "
                    f"ratio {t_vigil / t_httpx:.2f}"
                )


if __name__ == "__main__":
    main()
