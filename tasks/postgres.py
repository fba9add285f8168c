"""PostgreSQL as a monitored system: connect, answer `SELECT 1`, or run a read-only query
whose first value the monitor's conditions judge as `[RESULT]`."""

from __future__ import annotations

import time

import psycopg

from vigil.conditions import Observation
from vigil.config import Monitor
from vigil.durations import format_duration
from vigil.redact import redact


async def probe_postgres(monitor: Monitor) -> Observation:
    """Connect within the timeout; run the query READ ONLY with a statement timeout."""
    timeout = monitor.timeout.total_seconds()
    started = time.perf_counter()
    try:
        conn = await psycopg.AsyncConnection.connect(
            monitor.url or "", connect_timeout=max(1, round(timeout)), autocommit=False
        )
    except psycopg.Error as exc:
        return Observation(error=_reason(exc))
    try:
        async with conn:
            await conn.execute("SET TRANSACTION READ ONLY")
            await conn.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
            cursor = await conn.execute(monitor.query or "SELECT 1")
            row = await cursor.fetchone() if cursor.description else None
            await conn.rollback()
    except psycopg.errors.QueryCanceled:
        return Observation(
            connected=True, error=f"query timed out after {format_duration(monitor.timeout)}"
        )
    except psycopg.Error as exc:
        return Observation(connected=True, error=_reason(exc))
    elapsed = time.perf_counter() - started
    return Observation(connected=True, response_time=elapsed, result=row[0] if row else None)


def _reason(exc: psycopg.Error) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return redact(text)[:300]
