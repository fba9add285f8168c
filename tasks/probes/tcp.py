"""TCP probes: can a connection to host:port be opened within the monitor's timeout?"""

from __future__ import annotations

import asyncio
import time

from tasks.probes.failures import failure_reason
from vigil.conditions import Observation
from vigil.config import Monitor
from vigil.durations import format_duration


async def probe_tcp(monitor: Monitor) -> Observation:
    """Open and close one connection; `[CONNECTED]`, `[RESPONSE_TIME]` and `[IP]` (the peer
    actually reached) come from it."""
    started = time.perf_counter()
    host = monitor.host or ""
    try:
        async with asyncio.timeout(monitor.timeout.total_seconds()):
            _, writer = await asyncio.open_connection(host, monitor.port)
    except TimeoutError:
        return Observation(error=f"timed out after {format_duration(monitor.timeout)}")
    except OSError as exc:
        return Observation(error=failure_reason(exc, host))
    elapsed = time.perf_counter() - started
    peer = writer.get_extra_info("peername")
    writer.close()
    return Observation(connected=True, response_time=elapsed, ip=str(peer[0]) if peer else None)
