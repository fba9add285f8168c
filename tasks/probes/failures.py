"""How a failed probe reads: one short, redacted reason whichever client raised, so an
uptime monitor, a deploy check and a drill's fallback check say the same thing about the
same fault."""

from __future__ import annotations

import errno
import socket
import ssl
from urllib.parse import urlsplit

import aiohttp
import httpx

from vigil.config import Monitor
from vigil.redact import redact

MAX_REDIRECTS = 10


def host_of(monitor: Monitor) -> str:
    if monitor.type == "tcp":
        return monitor.host or ""
    return urlsplit(monitor.url or "").hostname or ""


def failure_reason(exc: BaseException, host: str) -> str:
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
