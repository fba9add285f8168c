"""HTTP probes: one request, bounded as a whole by the monitor's timeout, read no further
than its conditions need.

Batch probes go straight to aiohttp (`request`), the engine under httpx-aiohttp: measured
with benchmarks/sweep.py (10,000 local GETs at concurrency 100, 2 cores), an httpx
AsyncClient over httpx-aiohttp's transport takes 2.6x the wall time and 2.9x the CPU of a
bare aiohttp loop, aiohttp directly with conditions 1.35x. `probe_http` keeps the httpx API
for a caller that brings its own client; both share the timeout, the body cap, the
enrichment and the failure wording, so they fail alike.

Every probe is bounded as a whole (connect, headers and body), so a slow-loris target
cannot stretch a sweep; bodies are read only when a condition needs them (or the answer
may be a small health document), and never beyond `max_body`. A failure is an observation
with a short, redacted reason, never an exception.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import httpx

from tasks.probes.enrichment import Lookups, enriched, needed_placeholders
from tasks.probes.failures import MAX_REDIRECTS, failure_reason, host_of
from vigil import __version__
from vigil.conditions import Observation
from vigil.config import Monitor
from vigil.durations import format_duration

CHUNK = 64 * 1024
# Health documents are small; a JSON body up to this size is read for its `status` word.
HEALTH_BODY = 4096
USER_AGENT = f"vigil-uptime/{__version__}"


def new_session(concurrency: int) -> aiohttp.ClientSession:
    """The one session of a batch: a pool sized to the concurrency, no timers of aiohttp's
    own (each probe is bounded as a whole), no cookies shared between monitors."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT},
    )


async def request(
    session: aiohttp.ClientSession, monitor: Monitor, *, read_body: bool
) -> Observation:
    """One request through aiohttp."""

    async def attempt(obs: Observation) -> None:
        async with session.request(
            monitor.method,
            monitor.url or "",
            headers=monitor.headers or None,
            data=monitor.body,
            allow_redirects=monitor.follow_redirects,
            max_redirects=MAX_REDIRECTS,
            ssl=monitor.verify_tls,
        ) as response:
            if read_body or _health_answer(response.content_type, response.content_length):
                length = response.content_length
                if length is not None and length <= monitor.max_body:
                    obs.body = await response.read()  # the common case, in one call
                else:
                    obs.body = await _read_capped(
                        response.content.iter_chunked(CHUNK), monitor.max_body
                    )
            obs.status = response.status

    return await bounded(monitor, attempt)


async def probe_http(
    monitor: Monitor, client: httpx.AsyncClient, *, read_body: bool
) -> Observation:
    """One request through the caller's httpx client, bounded, enriched and worded like a
    sweep's.

    TLS verification is the client's; the body is read raw (as sent), so give the client
    `Accept-Encoding: identity` when a condition reads it."""

    async def attempt(obs: Observation) -> None:
        built = client.build_request(
            monitor.method, monitor.url or "", headers=monitor.headers, content=monitor.body
        )
        response = await client.send(built, stream=True, follow_redirects=monitor.follow_redirects)
        try:
            kind = response.headers.get("content-type", "").split(";")[0].strip()
            length = response.headers.get("content-length")
            declared = int(length) if length and length.isdigit() else None
            if read_body or _health_answer(kind, declared):
                obs.body = await _read_capped(response.aiter_raw(CHUNK), monitor.max_body)
            obs.status = response.status_code
        finally:
            await response.aclose()

    needs = needed_placeholders(monitor)
    return await enriched(monitor, bounded(monitor, attempt), needs, Lookups())


def _health_answer(content_type: str, length: int | None) -> bool:
    """A small JSON answer is read even when no condition needs the body: it may be a
    health document saying `{"status": "degraded"}`, which makes the monitor DEGRADED."""
    return content_type == "application/json" and length is not None and length <= HEALTH_BODY


async def bounded(
    monitor: Monitor, attempt: Callable[[Observation], Awaitable[None]]
) -> Observation:
    """Run `attempt` within the monitor's timeout; turn every failure into an observation.

    A probe cut short has no status: half an answer is no answer."""
    obs = Observation()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(monitor.timeout.total_seconds()):
            await attempt(obs)
    except TimeoutError:
        return Observation(error=f"timed out after {format_duration(monitor.timeout)}")
    except Exception as exc:  # whatever a target does, the sweep goes on
        return Observation(error=failure_reason(exc, host_of(monitor)))
    obs.response_time = time.perf_counter() - started
    obs.connected = True
    return obs


async def _read_capped(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The first `limit` bytes of a body: a huge body costs at most that much memory."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) >= limit:
            del body[limit:]
            break
    return bytes(body)
