"""One retry loop for every channel type, so they all give up (or persist) the same way.

A channel module makes exactly one attempt and, when it fails, says whether trying again can
help: `TransportError(permanent=True)` for a wrong token or a refused recipient, a transient
one (optionally with the server's `Retry-After`) for 429s, 5xx, timeouts and dropped
connections. This module owns the waiting, the counting and the redacted log lines.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from vigil.redact import redact

log = logging.getLogger("vigil.notify")

_DETAIL_MAX = 300


class TransportError(Exception):
    """A failed attempt; `permanent` means retrying cannot help, `retry_after` is the
    server's requested wait in seconds."""

    def __init__(
        self, message: str, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; tests shrink `base` and `max_wait` to milliseconds."""

    attempts: int = 4
    base: float = 0.5
    factor: float = 2.0
    max_wait: float = 30.0
    jitter: float = 0.2

    def wait(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to sleep after the `failures`-th failed attempt.

        The server's Retry-After wins over our own backoff (it knows its load), but no single
        wait exceeds `max_wait`: an alert an hour late is worse than one more refusal.
        """
        if retry_after is not None:
            wanted = retry_after
        else:
            spread = random.uniform(1 - self.jitter, 1 + self.jitter)
            wanted = self.base * self.factor ** (failures - 1) * spread
        return max(0.0, min(wanted, self.max_wait))


@dataclass(frozen=True)
class Attempts:
    """How the attempts ended: `error` is None on success, else redacted text."""

    attempts: int
    error: str | None


def with_retries(attempt: Callable[[], None], policy: RetryPolicy, label: str) -> Attempts:
    """Run `attempt` until it succeeds, fails permanently or runs out of attempts.

    Never raises: an exception that is not a TransportError is a bug or a case nobody
    classified, and it is reported as a permanent failure rather than retried blindly.
    """
    number = 0
    while True:
        number += 1
        try:
            attempt()
            return Attempts(number, None)
        except TransportError as exc:
            failure = exc
        except Exception as exc:
            failure = TransportError(f"{type(exc).__name__}: {exc}", permanent=True)
        message = redact(failure.message)
        if failure.permanent or number >= policy.attempts:
            return Attempts(number, message)
        delay = policy.wait(number, failure.retry_after)
        log.warning(
            "%s: attempt %d of %d failed (%s); retrying in %.2fs",
            label,
            number,
            policy.attempts,
            message,
            delay,
        )
        time.sleep(delay)


def http_failure(status: int, detail: str, retry_after: str | None = None) -> TransportError:
    """Classify an HTTP answer: 408, 429 and 5xx are worth retrying, other codes are not."""
    permanent = status < 500 and status not in (408, 429)
    text = " ".join(detail.split())[:_DETAIL_MAX]
    message = f"HTTP {status}: {text}" if text else f"HTTP {status}"
    return TransportError(message, permanent=permanent, retry_after=parse_retry_after(retry_after))


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date; anything else is ignored."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def certificate_rejected(exc: BaseException) -> bool:
    """Whether a TLS verification failure sits anywhere under the library's wrappers
    (urllib's URLError, httpx's ConnectError): a certificate that is wrong now stays wrong."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def redacting_logger(name: str) -> logging.Logger:
    """A library logger that masks secrets itself, not only at handlers vigil installed.

    slack-sdk and httpx log request URLs (which hold the webhook secret); a handler added
    later, such as pytest's caplog or a user's own, would otherwise see them in clear.
    """
    from vigil.logs import install

    install()  # the log boundary masks every record, whatever handler sees it
    return logging.getLogger(name)
