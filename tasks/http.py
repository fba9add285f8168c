"""The probe engine, the sweep's hot path: HTTP, TCP and PostgreSQL probes run concurrently.

Sweep HTTP probes go straight to one aiohttp session per `probe_all` call, the engine under
httpx-aiohttp. With benchmarks/sweep.py (10,000 local GETs at concurrency 100, 2 cores) an
httpx AsyncClient over httpx-aiohttp's transport takes 2.6x the wall time and 2.9x the CPU
of a bare aiohttp loop: past the 2x budget before vigil does any work of its own. aiohttp
directly, probes and condition evaluation included, takes 1.35x. `probe_http` keeps the
httpx API for the few one-off checks (deploys) that bring their own client; both paths
share the timeout, the body cap and the failure wording, so they fail alike.

Every probe is bounded as a whole (connect, headers and body) by its monitor's timeout, so a
slow-loris target cannot stretch a sweep; bodies are read only when a condition needs them,
and never beyond `max_body`. A failure is an observation with a short, redacted reason,
never an exception.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import NamedTuple
from urllib.parse import urlsplit

import aiohttp
import httpx

from vigil import __version__
from vigil.conditions import Observation, conditions_for, placeholders_of
from vigil.config import Monitor
from vigil.durations import format_duration
from vigil.redact import redact

MAX_REDIRECTS = 10
CHUNK = 64 * 1024
# Health documents are small; a JSON body up to this size is read for its `status` word.
HEALTH_BODY = 4096
USER_AGENT = f"vigil-uptime/{__version__}"


def probe_batch(
    monitors: Sequence[Monitor], concurrency: int = 100, per_host: int = 0
) -> list[Observation]:
    """Probe `monitors` concurrently from synchronous code (a Prefect task's thread)."""
    return asyncio.run(probe_all(monitors, concurrency=concurrency, per_host=per_host))


async def probe_all(
    monitors: Sequence[Monitor], *, concurrency: int = 100, per_host: int = 0
) -> list[Observation]:
    """Probe every monitor once; observations come back in the order of `monitors`."""
    async with _Sweep(concurrency, per_host) as sweep:
        return list(await asyncio.gather(*(sweep.probe(m) for m in monitors)))


async def probe_each(monitors: Sequence[Monitor], read_body: Sequence[bool]) -> list[Observation]:
    """One-off probes (deploy verification): every monitor once, all at once, in one session
    of this engine; `read_body[i]` reads the i-th body (up to `max_body`) whatever its
    conditions need, e.g. a health document whose own `status` word matters."""
    async with _Sweep(max(len(monitors), 1), 0) as sweep:
        jobs = (sweep.probe(m, read_body=r) for m, r in zip(monitors, read_body, strict=True))
        return list(await asyncio.gather(*jobs))


class _Sweep:
    """What the probes of one `probe_all` call share: limits, one HTTP session (a pool sized
    to the concurrency), and per-host certificate and address lookups done once each."""

    def __init__(self, concurrency: int, per_host: int) -> None:
        self.concurrency = concurrency
        self.limit = asyncio.Semaphore(concurrency)
        self.per_host = per_host
        self.host_limits: dict[str, asyncio.Semaphore] = {}
        self.certs: dict[tuple[str, int], asyncio.Task[timedelta | str]] = {}
        self.addresses: dict[str, asyncio.Task[str | None]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> _Sweep:
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def probe(self, monitor: Monitor, *, read_body: bool = False) -> Observation:
        # The host's slot first: waiting for a busy host must not hold a global slot.
        if self.per_host:
            host = _host_of(monitor)
            host_limit = self.host_limits.setdefault(host, asyncio.Semaphore(self.per_host))
            async with host_limit, self.limit:
                return await self._dispatch(monitor, read_body)
        async with self.limit:
            return await self._dispatch(monitor, read_body)

    async def _dispatch(self, monitor: Monitor, read_body: bool = False) -> Observation:
        if monitor.type == "tcp":
            return await probe_tcp(monitor)
        if monitor.type == "postgres":
            # Imported on first use: HTTP-only sweeps never pay for psycopg.
            from tasks.postgres import probe_postgres

            return await probe_postgres(monitor)
        return await self._http(monitor, read_body)

    async def _http(self, monitor: Monitor, read_body: bool = False) -> Observation:
        needs = needed_placeholders(monitor)
        request = _request(self.session(), monitor, read_body=read_body or "BODY" in needs)
        if not needs & {"CERTIFICATE_EXPIRATION", "IP"}:
            return await request
        # The lookups run as tasks alongside the request, each within the timeout.
        url = urlsplit(monitor.url or "")
        host = url.hostname or ""
        cert = None
        if "CERTIFICATE_EXPIRATION" in needs and url.scheme == "https":
            cert = self._cert(host, url.port or 443, monitor.timeout)
        address = self._address(host, monitor.timeout) if "IP" in needs else None
        obs = await request
        if cert is not None:
            _add_certificate(obs, await cert)
        if address is not None:
            obs.ip = await address
        return obs

    def session(self) -> aiohttp.ClientSession:
        """Created on first use, inside the running loop aiohttp insists on."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency),
                # asyncio.timeout bounds each probe as a whole; no timers of aiohttp's own.
                timeout=aiohttp.ClientTimeout(total=None),
                # Monitors are independent: one must never send another's cookies.
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    def _cert(self, host: str, port: int, timeout: timedelta) -> asyncio.Task[timedelta | str]:
        key = (host, port)
        if key not in self.certs:
            self.certs[key] = asyncio.create_task(certificate_left(host, port, timeout))
        return self.certs[key]

    def _address(self, host: str, timeout: timedelta) -> asyncio.Task[str | None]:
        if host not in self.addresses:
            self.addresses[host] = asyncio.create_task(resolve_address(host, timeout))
        return self.addresses[host]


def needed_placeholders(monitor: Monitor) -> frozenset[str]:
    """What this monitor's conditions read, so a probe fetches nothing else."""
    return _placeholders(monitor.type, tuple(monitor.conditions))


@cache
def _placeholders(kind: str, conditions: tuple[str, ...]) -> frozenset[str]:
    """Per distinct condition list: thousands of monitors share a handful."""
    parsed = conditions_for(_Conditions(kind, list(conditions)))
    return frozenset().union(*(placeholders_of(c) for c in parsed))


class _Conditions(NamedTuple):
    """What `conditions_for` reads from a monitor."""

    type: str
    conditions: list[str]


async def _request(
    session: aiohttp.ClientSession, monitor: Monitor, *, read_body: bool
) -> Observation:
    """One sweep request through aiohttp."""

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

    return await _bounded(monitor, attempt)


async def probe_http(
    monitor: Monitor, client: httpx.AsyncClient, *, read_body: bool
) -> Observation:
    """One request through the caller's httpx client, bounded and worded like a sweep's.

    TLS verification is the client's; the body is read raw (as sent), so give the client
    `Accept-Encoding: identity` when a condition reads it."""

    async def attempt(obs: Observation) -> None:
        request = client.build_request(
            monitor.method, monitor.url or "", headers=monitor.headers, content=monitor.body
        )
        response = await client.send(
            request, stream=True, follow_redirects=monitor.follow_redirects
        )
        try:
            kind = response.headers.get("content-type", "").split(";")[0].strip()
            length = response.headers.get("content-length")
            declared = int(length) if length and length.isdigit() else None
            if read_body or _health_answer(kind, declared):
                obs.body = await _read_capped(response.aiter_raw(CHUNK), monitor.max_body)
            obs.status = response.status_code
        finally:
            await response.aclose()

    return await _bounded(monitor, attempt)


def _health_answer(content_type: str, length: int | None) -> bool:
    """A small JSON answer is read even when no condition needs the body: it may be a
    health document saying `{"status": "degraded"}`, which makes the monitor DEGRADED."""
    return content_type == "application/json" and length is not None and length <= HEALTH_BODY


async def _bounded(
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
        return Observation(error=_failure_reason(exc, _host_of(monitor)))
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


async def probe_tcp(monitor: Monitor) -> Observation:
    """Can we open a TCP connection to host:port within the timeout?"""
    started = time.perf_counter()
    host = monitor.host or ""
    try:
        async with asyncio.timeout(monitor.timeout.total_seconds()):
            _, writer = await asyncio.open_connection(host, monitor.port)
    except TimeoutError:
        return Observation(error=f"timed out after {format_duration(monitor.timeout)}")
    except OSError as exc:
        return Observation(error=_failure_reason(exc, host))
    elapsed = time.perf_counter() - started
    peer = writer.get_extra_info("peername")
    writer.close()
    return Observation(connected=True, response_time=elapsed, ip=str(peer[0]) if peer else None)


async def certificate_left(host: str, port: int, timeout: timedelta) -> timedelta | str:
    """Time left on the certificate `host:port` presents, read even when it is untrusted
    (a separate handshake: aiohttp does not expose the peer certificate)."""
    from cryptography import x509

    try:
        async with asyncio.timeout(timeout.total_seconds()):
            _, writer = await asyncio.open_connection(
                host, port, ssl=_unverified_context(), server_hostname=host
            )
    except TimeoutError:
        return f"could not read the certificate of {host}:{port}: timed out"
    except OSError as exc:  # ssl.SSLError is an OSError
        return f"could not read the certificate of {host}:{port}: {_failure_reason(exc, host)}"
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    if not der:
        return f"{host}:{port} presented no certificate"
    expires = x509.load_der_x509_certificate(der).not_valid_after_utc
    return expires - datetime.now(UTC)


@cache
def _unverified_context() -> ssl.SSLContext:
    """No CA bundle to load: the certificate is only read, never trusted."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _add_certificate(obs: Observation, left: timedelta | str) -> None:
    if isinstance(left, timedelta):
        obs.certificate_expiration = left
    elif obs.error is None:
        obs.error = left


async def resolve_address(host: str, timeout: timedelta) -> str | None:
    """The first address `host` resolves to, for `[IP]`; None when it does not resolve."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout.total_seconds()):
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return None
    return str(infos[0][4][0]) if infos else None


def _host_of(monitor: Monitor) -> str:
    if monitor.type == "tcp":
        return monitor.host or ""
    return urlsplit(monitor.url or "").hostname or ""


def _failure_reason(exc: BaseException, host: str) -> str:
    """A short human reason for a failed probe, whichever client raised it; the URL's
    secrets never appear. The root cause (an OSError, an SSL error) is found by walking
    the exception chain, since aiohttp, httpx and httpcore each wrap it."""
    while isinstance(exc, BaseExceptionGroup):  # anyio's task groups, under httpcore
        exc = exc.exceptions[0]
    chain = _chain(exc)
    for cause in chain:
        reason = _cause_reason(cause, host)
        if reason:
            return reason
    if isinstance(exc, aiohttp.TooManyRedirects | httpx.TooManyRedirects):
        return f"too many redirects (more than {MAX_REDIRECTS})"
    if isinstance(exc, aiohttp.InvalidURL | httpx.InvalidURL | httpx.UnsupportedProtocol):
        return redact(f"invalid URL: {exc}")
    if isinstance(exc, aiohttp.ServerDisconnectedError | httpx.RemoteProtocolError):
        return f"connection closed by {host} before a complete answer"
    if isinstance(exc, aiohttp.ClientPayloadError | httpx.ReadError):
        return f"body from {host} cut short"
    if isinstance(exc, aiohttp.ClientResponseError):  # a malformed status line or headers
        return f"not an HTTP answer from {host}"
    root = chain[-1]
    if isinstance(root, OSError) and root.strerror:  # unreachable network, no route, ...
        return f"connection to {host} failed: {root.strerror}"
    return redact(f"{exc.__class__.__name__}: {exc}")[:300]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _cause_reason(cause: BaseException, host: str) -> str | None:
    if isinstance(cause, aiohttp.ClientConnectorCertificateError):
        cause = cause.certificate_error
    if isinstance(cause, ssl.SSLCertVerificationError):
        detail = cause.verify_message or cause.reason
        return redact(f"TLS error: certificate verify failed ({detail})")
    if isinstance(cause, ssl.SSLError):
        detail = cause.reason.replace("_", " ").lower() if cause.reason else str(cause)
        return redact(f"TLS error: {detail}")
    if isinstance(cause, socket.gaierror | aiohttp.ClientConnectorDNSError):
        return f"DNS lookup failed for {host}"
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused by {host}"
    if isinstance(cause, ConnectionResetError) or getattr(cause, "errno", None) == errno.ECONNRESET:
        return f"connection reset by {host}"
    return None
