"""The batch engine, the sweep's hot path: HTTP, TCP and PostgreSQL probes of many monitors
run concurrently in one event loop.

One batch shares its limits (a global concurrency and an optional per-host one), one
aiohttp session and the per-host enrichment lookups. Observations come back in the order
of the monitors given. This is the one probe path of vigil: the uptime sweep, deploy
verification and the drill's fallback checks all probe through `probe_all`/`probe_batch`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import cast

import aiohttp

from tasks.probes.enrichment import Lookups, enriched, needed_placeholders
from tasks.probes.failures import host_of
from tasks.probes.http import new_session, request
from tasks.probes.tcp import probe_tcp
from vigil.conditions import Observation
from vigil.config import Monitor


def probe_batch(
    monitors: Sequence[Monitor],
    concurrency: int = 100,
    per_host: int = 0,
    read_bodies: Collection[str] = (),
) -> list[Observation]:
    """Probe `monitors` concurrently from synchronous code (a Prefect task's thread)."""
    return asyncio.run(
        probe_all(monitors, concurrency=concurrency, per_host=per_host, read_bodies=read_bodies)
    )


async def probe_all(
    monitors: Sequence[Monitor],
    *,
    concurrency: int = 100,
    per_host: int = 0,
    read_bodies: Collection[str] = (),
) -> list[Observation]:
    """Probe every monitor once; observations come back in the order of `monitors`.

    `read_bodies` names monitors whose HTTP body is read whatever their conditions need
    (a deploy's health check: a release answering "degraded" is not a pass)."""
    async with _Batch(concurrency, per_host, frozenset(read_bodies)) as batch:
        if per_host:
            return list(await asyncio.gather(*(batch.probe(m) for m in monitors)))
        return await batch.pooled(monitors)


class _Batch:
    """What the probes of one `probe_all` call share: limits, one HTTP session (a pool sized
    to the concurrency), and per-host certificate and address lookups done once each."""

    def __init__(self, concurrency: int, per_host: int, read_bodies: frozenset[str]) -> None:
        self.concurrency = concurrency
        self.limit = asyncio.Semaphore(concurrency)
        self.per_host = per_host
        self.host_limits: dict[str, asyncio.Semaphore] = {}
        self.read_bodies = read_bodies
        self.lookups = Lookups()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> _Batch:
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def pooled(self, monitors: Sequence[Monitor]) -> list[Observation]:
        """Every monitor probed by `concurrency` workers taking the next one in turn: the
        same limit as one task per monitor behind a semaphore, without 100,000 tasks and
        their coroutines alive at once (at 100,000 monitors ~1.5 s of CPU and ~150 MB)."""
        results: list[Observation | None] = [None] * len(monitors)
        turns = iter(range(len(monitors)))

        async def worker() -> None:
            for i in turns:
                results[i] = await self._dispatch(monitors[i])

        workers = min(self.concurrency, len(monitors))
        await asyncio.gather(*(worker() for _ in range(workers)))
        return cast("list[Observation]", results)

    async def probe(self, monitor: Monitor) -> Observation:
        # The host's slot first: waiting for a busy host must not hold a global slot.
        if self.per_host:
            host = host_of(monitor)
            host_limit = self.host_limits.setdefault(host, asyncio.Semaphore(self.per_host))
            async with host_limit, self.limit:
                return await self._dispatch(monitor)
        async with self.limit:
            return await self._dispatch(monitor)

    async def _dispatch(self, monitor: Monitor) -> Observation:
        if monitor.type == "tcp":
            return await probe_tcp(monitor)
        if monitor.type == "postgres":
            # Imported on first use: HTTP-only sweeps never pay for psycopg.
            from tasks.probes.postgres import probe_postgres

            return await probe_postgres(monitor)
        needs = needed_placeholders(monitor)
        read_body = "BODY" in needs or monitor.name in self.read_bodies
        call = request(self.session(), monitor, read_body=read_body)
        return await enriched(monitor, call, needs, self.lookups)

    def session(self) -> aiohttp.ClientSession:
        """Created on first use, inside the running loop aiohttp insists on."""
        if self._session is None:
            self._session = new_session(self.concurrency)
        return self._session
