"""The probe engine: HTTP, TCP and PostgreSQL probes, the one probe path of vigil.

`probe_all` (async) and `probe_batch` (from synchronous code) probe many monitors at once
in one event loop; `probe_http` is one request through a caller's own httpx client. All of
them bound each probe by its monitor's timeout, fill `[CERTIFICATE_EXPIRATION]` and `[IP]`
the same way, and word failures alike. `tasks.probes.postgres.probe_postgres` is imported
on first use (an HTTP-only sweep never loads psycopg).
"""

from tasks.probes.engine import probe_all, probe_batch
from tasks.probes.enrichment import certificate_left, needed_placeholders, resolve_address
from tasks.probes.http import HEALTH_BODY, USER_AGENT, probe_http
from tasks.probes.tcp import probe_tcp

__all__ = [
    "HEALTH_BODY",
    "USER_AGENT",
    "certificate_left",
    "needed_placeholders",
    "probe_all",
    "probe_batch",
    "probe_http",
    "probe_tcp",
    "resolve_address",
]
