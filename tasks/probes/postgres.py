"""PostgreSQL probes: connect, then run `SELECT 1` or the monitor's query read-only.

`[RESULT]` is the first value of the first row. The query runs in a READ ONLY transaction
whose statement timeout is what is left of the monitor's timeout; a server that ignores
the statement timeout (or a network that stalls) is cut by an asyncio timeout a moment
later, so the probe is bounded as a whole.
"""

from __future__ import annotations

import asyncio
import math
import time
from urllib.parse import unquote, urlsplit

import psycopg

from vigil.conditions import Observation
from vigil.config import Monitor
from vigil.durations import format_duration
from vigil.redact import MASK, error_line, redact

# Lets the server's own statement timeout, which says "query timed out", fire first.
STATEMENT_GRACE = 0.25
# libpq rounds connect_timeout to whole seconds and treats anything under 2 as 2.
MIN_CONNECT_TIMEOUT = 2


async def probe_postgres(monitor: Monitor) -> Observation:
    """One connection and one read-only query, bounded by the monitor's timeout."""
    seconds = monitor.timeout.total_seconds()
    try:
        async with asyncio.timeout(seconds + STATEMENT_GRACE):
            return await _connect_and_query(monitor, time.perf_counter() + seconds)
    except TimeoutError:
        return Observation(error=f"timed out after {format_duration(monitor.timeout)}")


async def _connect_and_query(monitor: Monitor, deadline: float) -> Observation:
    url = monitor.url or ""
    started = time.perf_counter()
    connect_timeout = max(MIN_CONNECT_TIMEOUT, math.ceil(deadline - started))
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=connect_timeout)
    except psycopg.Error as exc:
        return Observation(error=_scrubbed(_first_line(exc), url))
    try:
        await conn.set_read_only(True)
        left_ms = max(1, int((deadline - time.perf_counter()) * 1000))
        await conn.execute(f"SET LOCAL statement_timeout = {left_ms}")
        cursor = await conn.execute(monitor.query or "SELECT 1")
        row = await cursor.fetchone() if cursor.description else None
    except psycopg.errors.QueryCanceled:
        timeout = format_duration(monitor.timeout)
        return Observation(connected=True, error=f"query timed out after {timeout}")
    except psycopg.Error as exc:
        return Observation(
            connected=True, error=_scrubbed(f"query failed: {_first_line(exc)}", url)
        )
    finally:
        # Closing ends the transaction unfinished: the server rolls it back.
        await conn.close()
    elapsed = time.perf_counter() - started
    return Observation(connected=True, response_time=elapsed, result=row[0] if row else None)


def _first_line(exc: psycopg.Error) -> str:
    """libpq's messages run to several lines (hints, a caret under the SQL); alerts want one,
    without libpq's "connection failed: " prefix."""
    return " ".join(error_line(exc).removeprefix("connection failed: ").split())


def _scrubbed(text: str, url: str) -> str:
    """Redacted, and the URL's own password masked even when no config registered it."""
    for secret in _passwords(url):
        text = text.replace(secret, MASK)
    return redact(text)[:300]


def _passwords(url: str) -> set[str]:
    password = urlsplit(url).password
    return {password, unquote(password)} if password else set()
