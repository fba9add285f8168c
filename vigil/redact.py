"""Keep secrets out of everything vigil prints, logs, stores or sends.

Two nets catch them: patterns (passwords in URLs, Slack tokens and webhook paths, secret
query parameters) and the literal values the config marks as secret (channel tokens,
webhook URLs, values interpolated from variables named like PASSWORD/TOKEN/SECRET/KEY).
Every writer in vigil (logs, store, artifacts, notifications, CLI output) calls
`redact` on free text; the logging filter covers what libraries log.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MASK = "***"

_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s/]+)@"
)
_SLACK_WEBHOOK = re.compile(
    r"(hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_\-]+"
)
_SLACK_TOKEN = re.compile(r"\b(xox[abposr]|xapp)-[A-Za-z0-9\-]+")
_SECRET_PARAM = re.compile(
    r"(?i)\b((?:password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key|signature|sig|auth)=)[^&\s'\"]+"
)
_AUTH_HEADER = re.compile(r"(?i)\b(authorization:\s*(?:bearer|basic|token)\s+)\S+")

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember a literal secret value so it is masked wherever it appears later."""
    global _secret_re
    if not value or len(value) < 4:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_re = re.compile("|".join(re.escape(s) for s in ordered))


def forget_secrets() -> None:
    """Drop registered values (a new config replaces the old one)."""
    global _secret_re
    with _lock:
        _secrets.clear()
        _secret_re = None


def redact(text: Any) -> str:
    """Return `text` as a string with every secret vigil knows of masked."""
    out = str(text)
    pattern = _secret_re
    if pattern is not None:
        out = pattern.sub(MASK, out)
    out = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", out)
    out = _SLACK_WEBHOOK.sub(rf"\g<1>{MASK}", out)
    out = _SLACK_TOKEN.sub(rf"\g<1>-{MASK}", out)
    out = _SECRET_PARAM.sub(rf"\g<1>{MASK}", out)
    return _AUTH_HEADER.sub(rf"\g<1>{MASK}", out)


def redact_data(value: Any) -> Any:
    """Redact every string inside a JSON-like structure (dicts, lists, scalars)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record's message with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the caller's bug, not ours to hide
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def error_line(exc: BaseException) -> str:
    """The first line of an error's message, redacted: what a finding, a record or an alert
    quotes of a library's exception (psycopg, boto3, OSError), without its traceback or the
    server's multi-line detail. An exception without a message reads as its type."""
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)
