"""What a probe adds to an HTTP answer when a condition reads it: `[CERTIFICATE_EXPIRATION]`
(the time left on the certificate the host presents) and `[IP]` (the address its name
resolves to). One implementation for every HTTP path (the batch engine and `probe_http`),
so the sweep and deploy verification can never fill them differently.

The lookups run as tasks alongside the request, each within the monitor's timeout, and a
batch does each one once per host: a thousand monitors on one host make one handshake.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import NamedTuple
from urllib.parse import urlsplit

from tasks.probes.failures import failure_reason
from vigil.conditions import Observation, conditions_for, placeholders_of
from vigil.config import Monitor

ENRICHED = frozenset({"CERTIFICATE_EXPIRATION", "IP"})


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


class Lookups:
    """The certificate and address lookups of one batch, each started once per host."""

    def __init__(self) -> None:
        self.certs: dict[tuple[str, int], asyncio.Task[timedelta | str]] = {}
        self.addresses: dict[str, asyncio.Task[str | None]] = {}

    def certificate(
        self, host: str, port: int, timeout: timedelta
    ) -> asyncio.Task[timedelta | str]:
        key = (host, port)
        if key not in self.certs:
            self.certs[key] = asyncio.create_task(certificate_left(host, port, timeout))
        return self.certs[key]

    def address(self, host: str, timeout: timedelta) -> asyncio.Task[str | None]:
        if host not in self.addresses:
            self.addresses[host] = asyncio.create_task(resolve_address(host, timeout))
        return self.addresses[host]


async def enriched(
    monitor: Monitor, request: Awaitable[Observation], needs: frozenset[str], lookups: Lookups
) -> Observation:
    """`request`'s observation with the lookups its conditions need filled in."""
    if not needs & ENRICHED:
        return await request
    url = urlsplit(monitor.url or "")
    host = url.hostname or ""
    cert = None
    if "CERTIFICATE_EXPIRATION" in needs and url.scheme == "https":
        cert = lookups.certificate(host, url.port or 443, monitor.timeout)
    address = lookups.address(host, monitor.timeout) if "IP" in needs else None
    obs = await request
    if cert is not None:
        _add_certificate(obs, await cert)
    if address is not None:
        obs.ip = await address
    return obs


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
        return f"could not read the certificate of {host}:{port}: {failure_reason(exc, host)}"
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
