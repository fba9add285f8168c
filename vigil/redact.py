"""Keep secrets out of everything vigil prints, logs, stores or sends.

Two nets catch them. The first is knowledge: every secret the config holds is registered
when it is read (`secrets_in` walks the whole config: passwords and userinfo in any URL,
query parameters and headers with credential-like names, values under credential-like
keys, values filled from `${VAR}` into such places, plus the URLs vigil's own rules call
secret), and so is every secret a command is handed (`vigil restore --to URL`); each is
masked wherever it appears later, also URL-encoded and inside base64 basic auth. The
second net is patterns, for secrets vigil was never told about (a target echoing a token
back): passwords in URLs, Slack tokens and webhook paths, credential-like query parameters
and `key=value`/JSON pairs, Authorization/Cookie/API-key headers.

`redact` is the primitive; `vigil.boundary` applies it per medium, `vigil.logs` to every
log record.
"""

from __future__ import annotations

import base64
import functools
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

MASK = "***"

# Words that make a key, query parameter or header name a credential's (`access_token`,
# `clientSecret`, `X-Api-Key`), as whole words of the name; the first group also at the end
# of a word (`sslpassword`, `csrftoken`).
_ENDINGS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey")
_WORDS = frozenset(
    {"pass", "pwd", "key", "auth", "authorization", "credential", "credentials", "signature"}
    | {"sig", "session", "cookie", "dsn", "jwt", "bearer", "privatekey", *_ENDINGS}
)
_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# A cheap first look for a credential-like name: any name holding one of the words.
_CANDIDATE = r"pass|pwd|secret|token|key|auth|credential|sig|session|cookie|dsn|jwt|bearer"

# Every pattern below is linear in the text's length: a match may only start where a run of
# name characters starts (the lookbehinds), and runs are taken possessively (`*+`, `++`), so
# a hostile 1 MB body of letters or digits costs one pass, not one pass per character.
_URL_PASSWORD = re.compile(
    r"(?<![a-zA-Z0-9+.\-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*+://)"
    r"(?P<user>[^:/@\s]*+):(?P<pw>[^@\s/]++)@"
)
_SLACK_WEBHOOK = re.compile(
    r"(hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_\-]+"
)
_SLACK_TOKEN = re.compile(r"\b(xox[abposr]|xapp)-[A-Za-z0-9\-]+")
# `access_token=...`, `client_secret: ...`, `"id_token": "..."`: a name, `=` or `:`, the value
# (quoted or bare); masked when the name is a credential's (`is_credential_name`).
_SECRET_PAIR = re.compile(
    rf"""(?ix)
    (?P<name>["']?(?<![\w.\-])(?=[\w.\-]*?(?:{_CANDIDATE}))(?P<bare>[\w.\-]++)["']?\s*(?:=|:)\s*)
    (?P<quote>["'])?
    (?!(?:[a-z]+\s+)?\*\*\*)
    (?P<value>(?(quote)[^"'\r\n]+|[^&\s'",;}}\]]+))
    """
)
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token|digest|negotiate)\s+)"
    r"[^\s\"',}]+"
)

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember a literal secret value so it is masked wherever it appears later."""
    register_secrets([value])


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values (each also percent-encoded, as it appears inside a URL); the
    pattern is rebuilt once per call. Values under 4 characters are too likely to be
    ordinary text to mask everywhere."""
    global _secret_re
    forms = {f for v in values if v and len(v) >= 4 for f in (v, quote(v, safe=""))}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
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
    out = _AUTH_HEADER.sub(rf"\g<1>{MASK}", out)
    return _SECRET_PAIR.sub(_mask_pair, out)


def _mask_pair(match: re.Match[str]) -> str:
    if not is_credential_name(match["bare"]):
        return match.group(0)
    return f"{match['name']}{match['quote'] or ''}{MASK}"


@functools.lru_cache(maxsize=4096)
def is_credential_name(name: str) -> bool:
    """Whether a key, query parameter or header name says it holds a credential: one of
    its words (split at `_ - .` and camelCase) is a credential word, or ends like one."""
    words = [w.lower() for w in _NAME_WORDS.findall(name)]
    return any(w in _WORDS or w.endswith(_ENDINGS) for w in words)


def secrets_in(value: Any, key: str = "") -> Iterator[str]:
    """Every secret inside a config-like structure: values under credential-like keys,
    URL passwords (and userinfo), credential-like query values, Authorization-style
    header values and what their base64 basic auth holds.

    Depth first, in the order written, into one list: a generator per level and per
    string was ~0.6 s of a 100,000-monitor config's load."""
    found: list[str] = []
    _gather(value, key, found)
    return iter(found)


def _gather(value: Any, key: str, found: list[str]) -> None:
    if isinstance(value, str):
        if value:
            _gather_string(value, key, found)
        return
    if isinstance(value, dict):
        pairs: Any = ((str(name), item) for name, item in value.items())
    elif isinstance(value, list | tuple):
        pairs = ((key, item) for item in value)
    else:
        return
    for name, item in pairs:
        if isinstance(item, str):
            if item:
                _gather_string(item, name, found)
        elif isinstance(item, dict | list | tuple):
            _gather(item, name, found)


def _gather_string(value: str, key: str, found: list[str]) -> None:
    if is_credential_name(key):
        found.append(value)
        found += _header_secrets(value)
    if "@" in value or "?" in value:  # url_secrets' own first test, without the call
        found += url_secrets(value)


def url_secrets(text: str) -> Iterator[str]:
    """The password (and user:password) of a URL and its credential-like query values."""
    if "@" not in text and "?" not in text:  # no userinfo, no query: most URLs, cheaply
        return
    try:
        parts = urlsplit(text.strip())
        password = parts.password
    except ValueError:
        return
    if password:
        yield password
        yield unquote(password)
        # An unencoded '@' in the password: libpq and others read the rest as the host and
        # echo it back in their errors, so each piece is a secret of its own.
        yield from unquote(password).split("@")
        user = unquote(parts.username or "")
        yield base64.b64encode(f"{user}:{unquote(password)}".encode()).decode()
    for name, item in parse_qsl(parts.query, keep_blank_values=False):
        if is_credential_name(name):
            yield item
            yield quote(item, safe="")


def _header_secrets(value: str) -> Iterator[str]:
    """`Bearer X` gives X; `Basic B64` gives B64 and the password inside it."""
    scheme, _, credential = value.strip().partition(" ")
    if not credential:
        return
    yield credential.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credential.strip(), validate=True).decode()
        except ValueError:
            return
        yield decoded
        yield decoded.partition(":")[2]


def redact_data(value: Any) -> Any:
    """Redact every string inside a JSON-like structure (dicts, lists, scalars)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value


def error_line(exc: BaseException) -> str:
    """The first line of an error's message, redacted: what a finding, a record or an alert
    quotes of a library's exception (psycopg, boto3, OSError), without its traceback or the
    server's multi-line detail. An exception without a message reads as its type."""
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)
