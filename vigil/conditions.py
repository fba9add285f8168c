"""Gatus-style conditions (`[STATUS] == 200`, `len([BODY].items) > 0`) that monitors check.

Conditions are parsed once when the config loads, so every mistake an operator can make
in one (typo in a placeholder, missing operator, bad duration) surfaces there, and the
sweep only runs cheap comparisons. Evaluation never raises: a probe can return anything,
and one odd value must not take the whole sweep down.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import json
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from vigil.durations import format_duration, parse_duration

__all__ = [
    "Condition",
    "ConditionError",
    "ConditionResult",
    "Observation",
    "bind_release",
    "body_status",
    "evaluate",
    "evaluate_all",
    "parse_condition",
    "placeholders_of",
]

# Two-character operators first, so `<=` is never read as `<` followed by `=`.
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
_EQUALITY = frozenset({"==", "!="})
_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# What a placeholder's value is, which decides what it may be compared with at parse time.
_KINDS = {
    "STATUS": "number",
    "BODY": "any",
    "RESPONSE_TIME": "duration",
    "CERTIFICATE_EXPIRATION": "duration",
    "CONNECTED": "bool",
    "RESULT": "any",
    "IP": "any",
}
_FUNCTIONS = ("any", "has", "len", "pat")
_BOOLS = {
    "true": True,
    "t": True,
    "yes": True,
    "1": True,
    "false": False,
    "f": False,
    "no": False,
    "0": False,
}
_NULLS = frozenset({"null", "none"})
# A quote opens a quoted value only at the start of a token, so `it's` stays a bare word.
_QUOTE_OPENERS = " \t\r\n(,=<>!"
_QUOTES = "'\""

_PLACEHOLDER = re.compile(r"\[([A-Za-z_]\w*)\](.*)", re.DOTALL)
_PATH = re.compile(r"(?:\.[^.\[\]]+|\[\d+\])+")
_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
_CALL = re.compile(r"([A-Za-z_]\w*)\(")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# Integers written in hex, octal or binary ("0x1F", "0o17", "0b1111"), as Gatus reads them.
_RADIX_NUMBER = re.compile(r"[+-]?0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")

_SHOWN = 80
_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})

_UNPARSED: Any = object()
_NOT_JSON: Any = object()


class ConditionError(ValueError):
    """A condition string that cannot mean anything; raised at config load, never later."""


@dataclass(frozen=True)
class _Subject:
    """The placeholder side: what the probe observed, possibly through len() or has()."""

    placeholder: str
    path: tuple[str | int, ...]
    function: str | None
    label: str

    @property
    def kind(self) -> str:
        if self.function == "len":
            return "number"
        if self.function == "has":
            return "bool"
        return _KINDS[self.placeholder]


@dataclass(frozen=True)
class _Literal:
    """One expected value, read every way it could be compared so evaluation only picks."""

    text: str
    number: int | Decimal | None
    boolean: bool | None
    duration: timedelta | None


@dataclass(frozen=True)
class _Expected:
    """The value side: literals (one, or several for any()) or a compiled pat() glob."""

    values: tuple[_Literal, ...]
    pattern: re.Pattern[str] | None
    text: str


@dataclass(frozen=True)
class _RawValue:
    """A value side before the placeholder it is compared with is known."""

    function: str
    items: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Condition:
    """A parsed condition; `text` is what the operator wrote, kept for tables and alerts.

    `other` is the second placeholder of a condition that compares two observed values
    (`[BODY].used < [BODY].limit`, `[STATUS] == [BODY].status`); `expected` is then unused."""

    text: str
    subject: _Subject
    operator: str
    expected: _Expected
    other: _Subject | None = None

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)  # slots: a sweep of 100,000 monitors keeps 200,000
class ConditionResult:
    condition: str
    ok: bool
    detail: str


@dataclass(slots=True)
class Observation:
    """What a probe saw; the body's JSON is parsed on first need and then reused.

    Slotted: a sweep keeps one per monitor until it ends (~200 bytes less each)."""

    status: int | None = None
    body: bytes | None = None
    response_time: float | None = None
    certificate_expiration: timedelta | None = None
    connected: bool = False
    result: Any = None
    ip: str | None = None
    error: str | None = None
    _json: Any = field(default=_UNPARSED, init=False, repr=False, compare=False)
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def _parsed_body(self) -> Any:
        """The body as JSON, or `_NOT_JSON`; several conditions share one parse."""
        if self._json is _UNPARSED:
            self._json = _load_json(self.body)
        return self._json

    def _body_text(self) -> str:
        """The body as text without surrounding whitespace (a trailing newline is not
        part of what `[BODY] == ok` means; Gatus trims it too)."""
        if self._text is None:
            self._text = (self.body or b"").decode("utf-8", errors="replace").strip()
        return self._text


@dataclass(frozen=True)
class _Unavailable:
    """Why a placeholder has no value; `answered` is False when the probe got no answer."""

    reason: str
    answered: bool


def _load_json(body: bytes | None) -> Any:
    if body is None:
        return _NOT_JSON
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return _NOT_JSON


# `[RELEASE]` in a deploy check's condition: the release under verification (then the
# rollback's target while the restored release is verified), bound before parsing.
RELEASE_PLACEHOLDER = "[RELEASE]"


def bind_release(text: str, release: str | None) -> str:
    """`text` with `[RELEASE]` replaced by `release` as a quoted value (a release id may hold
    characters a bare value cannot)."""
    if RELEASE_PLACEHOLDER not in text:
        return text
    value = release or ""
    quote = next((q for q in _QUOTES if q not in value), None)
    if quote is None:
        raise ConditionError(f"release {value!r} holds both quote characters; rename it")
    return text.replace(RELEASE_PLACEHOLDER, f"{quote}{value}{quote}")


# Parsing -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=16384)
def parse_condition(text: str) -> Condition:
    """Parse once at config load so typos fail loudly there instead of failing checks.

    Cached by text: thousands of monitors share a handful of conditions, and a Condition
    is immutable."""
    if not isinstance(text, str):
        raise ConditionError(f"a condition must be text, not {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise ConditionError("empty condition")
    index, op = _the_operator(stripped)
    left, right = stripped[:index].strip(), stripped[index + len(op) :].strip()
    if not left:
        raise ConditionError(f"empty left side of {op}")
    if not right:
        raise ConditionError(f"empty right side of {op}")
    lhs, rhs = _parse_side(left), _parse_side(right)
    if isinstance(lhs, _Subject) and isinstance(rhs, _Subject):
        return _two_placeholders(text, lhs, op, rhs)
    if isinstance(rhs, _Subject):
        lhs, rhs, op = rhs, lhs, _FLIPPED[op]
    if not isinstance(lhs, _Subject) or isinstance(rhs, _Subject):
        raise ConditionError("no placeholder on either side (write e.g. [STATUS] == 200)")
    return Condition(text, lhs, op, _expectation(lhs, op, rhs))


def _two_placeholders(text: str, lhs: _Subject, op: str, rhs: _Subject) -> Condition:
    """Two observed values compared with each other, refused only when they never can be."""
    kinds = {lhs.kind, rhs.kind}
    if "bool" in kinds and op not in _EQUALITY:
        raise ConditionError(f"{lhs.label} {op} {rhs.label}: true/false only compare with == or !=")
    if "bool" in kinds and kinds & {"number", "duration"}:
        raise ConditionError(
            f"{lhs.label} and {rhs.label} can never be equal (true/false vs a number)"
        )
    return Condition(text, lhs, op, _Expected((), None, rhs.label), rhs)


def _depths(text: str) -> list[int | None]:
    """Parenthesis depth of each character (None inside quotes), checking they balance."""
    depths: list[int | None] = []
    depth = 0
    quote = ""
    for i, char in enumerate(text):
        if quote:
            depths.append(None)
            quote = "" if char == quote else quote
            continue
        if char in _QUOTES and (i == 0 or text[i - 1] in _QUOTE_OPENERS):
            quote = char
            depths.append(None)
            continue
        if char == ")":
            depth -= 1
            if depth < 0:
                raise ConditionError("unbalanced parentheses: ')' without '('")
        depths.append(depth)
        if char == "(":
            depth += 1
    if quote:
        raise ConditionError(f"unterminated quote {quote}")
    if depth:
        raise ConditionError("unbalanced parentheses: '(' without ')'")
    return depths


def _the_operator(text: str) -> tuple[int, str]:
    depths = _depths(text)
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(text):
        op = _operator_at(text, i) if depths[i] == 0 else None
        if op is None:
            i += 1
            continue
        found.append((i, op))
        i += len(op)
    if len(found) > 1:
        ops = ", ".join(op for _, op in found)
        raise ConditionError(
            f"more than one operator ({ops}); quote values that contain <, >, == or !="
        )
    if found:
        return found[0]
    if any(char == "=" and depth == 0 for char, depth in zip(text, depths, strict=True)):
        raise ConditionError("missing operator: use == instead of =")
    raise ConditionError("missing operator (one of ==, !=, <, <=, >, >=)")


def _operator_at(text: str, index: int) -> str | None:
    return next((op for op in _OPERATORS if text.startswith(op, index)), None)


def _parse_side(text: str) -> _Subject | _RawValue:
    call = _split_call(text)
    if call is None:
        subject = _parse_placeholder(text)
        return subject if subject is not None else _RawValue("", (_unquote(text),), text)
    name, inner = call
    if name in ("len", "has"):
        subject = _parse_placeholder(inner.strip())
        if subject is None:
            raise ConditionError(
                f"{name}() takes a placeholder such as [BODY].items, not {inner!r}"
            )
        return replace(subject, function=name, label=f"{name}({subject.label})")
    if name == "any":
        return _RawValue("any", _split_items(inner), text)
    if name == "pat":
        if not inner.strip():
            raise ConditionError("pat() needs a pattern, e.g. pat(*ok*)")
        return _RawValue("pat", (_unquote(inner.strip()),), text)
    raise ConditionError(
        f"unknown function {name}() (known: {', '.join(_FUNCTIONS)}; quote text values)"
    )


def _split_call(text: str) -> tuple[str, str] | None:
    """`name(inner)` when the whole side is one call; quoted or bare text otherwise."""
    match = _CALL.match(text)
    if match is None:
        return None
    depths = _depths(text)
    start = match.end()
    # _depths has checked that the opening parenthesis is closed somewhere.
    close = next(i for i in range(start, len(text)) if text[i] == ")" and depths[i] == 0)
    if close != len(text) - 1:
        raise ConditionError(f"unexpected text after {match.group(1)}(...): {text[close + 1 :]!r}")
    return match.group(1), text[start:close]


def _parse_placeholder(text: str) -> _Subject | None:
    match = _PLACEHOLDER.fullmatch(text)
    if match is None:
        return None
    name, rest = match.groups()
    if name not in _KINDS:
        raise ConditionError(_unknown_placeholder(name))
    if rest and rest[0] not in ".[":
        raise ConditionError(f"unexpected text after [{name}]: {rest!r}")
    if rest and name != "BODY":
        raise ConditionError(f"a JSON path only applies to [BODY], not [{name}]")
    if rest and not _PATH.fullmatch(rest):
        raise ConditionError(f"bad JSON path {rest!r} (write e.g. [BODY].data.items[0].name)")
    path = tuple(int(index) if index else key for key, index in _PATH_STEP.findall(rest))
    return _Subject(name, path, None, f"[{name}]{rest}")


def _unknown_placeholder(name: str) -> str:
    close = difflib.get_close_matches(name.upper(), _KINDS, n=1)
    if close:
        return f"unknown placeholder [{name}] (did you mean [{close[0]}]?)"
    known = ", ".join(f"[{known}]" for known in _KINDS)
    return f"unknown placeholder [{name}] (known: {known})"


def _split_items(inner: str) -> tuple[str, ...]:
    depths = _depths(inner)
    cuts = [i for i, char in enumerate(inner) if char == "," and depths[i] == 0]
    bounds = zip([-1, *cuts], [*cuts, len(inner)], strict=True)
    items = [inner[start + 1 : end].strip() for start, end in bounds]
    if not all(items):
        raise ConditionError("empty value in any()")
    return tuple(_unquote(item) for item in items)


def _unquote(text: str) -> str:
    if not text or text[0] not in _QUOTES:
        return text
    if text.find(text[0], 1) != len(text) - 1:
        raise ConditionError(f"unexpected text after a quoted value: {text!r}")
    return text[1:-1]


def _expectation(subject: _Subject, op: str, raw: _RawValue) -> _Expected:
    kind = subject.kind
    if op not in _EQUALITY and raw.function:
        raise ConditionError(f"{raw.function}() only works with == or !=")
    if op not in _EQUALITY and kind == "bool":
        raise ConditionError(f"{subject.label} can only be compared with == or !=")
    if raw.function == "pat":
        if kind in ("bool", "duration"):
            raise ConditionError(f"pat() does not apply to {subject.label}")
        return _Expected((), re.compile(fnmatch.translate(raw.items[0])), raw.text)
    return _Expected(tuple(_literal(item, subject) for item in raw.items), None, raw.text)


def _literal(text: str, subject: _Subject) -> _Literal:
    kind = subject.kind
    number = _parse_number(text)
    boolean = _BOOLS.get(text.lower())
    if kind == "number" and number is None:
        raise ConditionError(f"{subject.label} compares with numbers, not {text!r}")
    if kind == "bool" and boolean is None:
        raise ConditionError(f"{subject.label} compares with true or false, not {text!r}")
    duration: timedelta | None = None
    if kind == "duration":
        duration = _expected_duration(text, number)
    elif kind == "any":
        duration = _maybe_duration(text)
    return _Literal(text, number, boolean, duration)


def _expected_duration(text: str, number: int | Decimal | None) -> timedelta:
    """Bare numbers are milliseconds, as in Gatus, unlike durations elsewhere in vigil."""
    if number is not None and number >= 0:
        return timedelta(milliseconds=float(number))
    try:
        return parse_duration(text)
    except ValueError:
        raise ConditionError(
            f"bad duration {text!r} (write e.g. 300ms, 2s, 7d; a bare number means milliseconds)"
        ) from None


def _maybe_duration(text: str) -> timedelta | None:
    """Lets `[RESULT] < 5m` work when the query returns an interval."""
    try:
        return parse_duration(text)
    except ValueError:
        return None


def _parse_number(text: str) -> int | Decimal | None:
    """Exact numbers (int or Decimal) so huge integers and SQL numerics compare exactly;
    hex, octal and binary integers too, as Gatus reads `"0x1"` in a body."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        if _RADIX_NUMBER.fullmatch(text):
            return int(text, 0)
        return None
    try:
        return int(text)
    except ValueError:  # a fraction or exponent, or more digits than int() accepts
        return Decimal(text)


def placeholders_of(cond: Condition) -> frozenset[str]:
    """Tell probes what they must collect (the body, TLS details) for this condition."""
    if cond.other is not None:
        return frozenset({cond.subject.placeholder, cond.other.placeholder})
    return frozenset({cond.subject.placeholder})


# Evaluation --------------------------------------------------------------------------


def evaluate(cond: Condition, obs: Observation) -> ConditionResult:
    """Check one condition; any surprise becomes a failed result, never an exception."""
    try:
        ok, detail = _evaluate(cond, obs)
    except Exception as exc:  # one odd probe value must not stop a sweep
        ok, detail = False, f"{cond.subject.label} could not be evaluated: {exc!r}"
    return ConditionResult(cond.text, ok, detail)


def evaluate_all(conds: Sequence[Condition], obs: Observation) -> list[ConditionResult]:
    return [evaluate(cond, obs) for cond in conds]


def body_status(obs: Observation) -> str | None:
    """The body's own health word (`{"status": "degraded"}`), which some monitors report."""
    data = obs._parsed_body()
    status = data.get("status") if isinstance(data, dict) else None
    return status.lower() if isinstance(status, str) else None


# Where health endpoints put their own words about what is wrong, most specific first:
# `{"message": ...}`, `{"error": ...}` (a string, or an object with a message), the IETF
# health draft's `output`, `detail`/`reason`/`description`.
_MESSAGE_KEYS = ("message", "error", "output", "detail", "details", "reason", "description")


def body_message(obs: Observation) -> str | None:
    """What a health body says about itself in words (`{"status": "error", "message":
    "database migrations missing"}`), or a short text body; raw outside text, to be made
    inert by whoever shows it."""
    data = obs._parsed_body()
    if isinstance(data, dict):
        for key in _MESSAGE_KEYS:
            value = data.get(key)
            if isinstance(value, dict):
                value = next(
                    (value[k] for k in _MESSAGE_KEYS if isinstance(value.get(k), str)), None
                )
            if isinstance(value, str) and value.strip():
                return value
        return None
    if data is not _NOT_JSON:
        return None
    text = obs._body_text()
    return text if text and not text.startswith("<") else None


def _evaluate(cond: Condition, obs: Observation) -> tuple[bool, str]:
    if cond.other is not None:
        return _evaluate_pair(cond, cond.other, obs)
    subject = cond.subject
    value = _observe(subject, obs)
    if isinstance(value, _Unavailable):
        return False, f"{subject.label} {value.reason}"
    ok, note = _compare(value, cond.operator, cond.expected)
    if not ok and obs.error:
        note += f" ({_short(obs.error)})"
    return (
        ok,
        f"{subject.label} {_render(value)}, expected {cond.operator} {cond.expected.text}{note}",
    )


def _evaluate_pair(cond: Condition, other: _Subject, obs: Observation) -> tuple[bool, str]:
    """`[BODY].a == [BODY].b`: the right side's value becomes the expected literal."""
    first, second, op = cond.subject, other, cond.operator
    left, right = _observe(first, obs), _observe(second, obs)
    for side, value in ((first, left), (second, right)):
        if isinstance(value, _Unavailable):
            return False, f"{side.label} {value.reason}"
    if isinstance(right, timedelta) and not isinstance(left, timedelta):
        # the duration's side leads, so the other side is read as milliseconds
        first, second, left, right, op = second, first, right, left, _FLIPPED[op]
    expected = _Expected((_literal_of(right, left),), None, second.label)
    ok, note = _compare(left, op, expected)
    return ok, (
        f"{first.label} {_render(left)}, expected {op} {second.label} {_render(right)}{note}"
    )


def _literal_of(value: Any, against: Any) -> _Literal:
    """An observed value read every way a literal is, to be compared with `against`."""
    text = _text_of(value)
    number = _number_of(value)
    exact = Decimal(str(number)) if isinstance(number, float) else number
    boolean = value if isinstance(value, bool) else _BOOLS.get(text.lower())
    duration: timedelta | None = value if isinstance(value, timedelta) else None
    if duration is None and isinstance(against, timedelta):
        if exact is not None:
            duration = timedelta(milliseconds=float(exact))
        else:
            duration = _maybe_duration(text)
    return _Literal(text, exact, boolean, duration)


def _observe(subject: _Subject, obs: Observation) -> Any:
    value = _PROBED[subject.placeholder](subject, obs)
    if subject.function == "has":
        if isinstance(value, _Unavailable) and not value.answered:
            return value
        # As in Gatus: a JSON null, or an empty whole body or value, is not there.
        return not (
            isinstance(value, _Unavailable) or value is None or (not subject.path and value == "")
        )
    if subject.function == "len" and not isinstance(value, _Unavailable):
        if subject.placeholder == "BODY" and not subject.path and value[:1] == "[":
            data = obs._parsed_body()
            if isinstance(data, list):  # len([BODY]) of a JSON array counts its items
                return len(data)
        return _length(value)
    return value


def _length(value: Any) -> int | _Unavailable:
    """Gatus's len(): items of an array, characters of text, and of anything else its
    text (an object's compact JSON, a number's digits, true/false)."""
    if isinstance(value, (str, bytes, list)):
        return len(value)
    if value is None:
        return _Unavailable("has no length (null)", answered=True)
    if isinstance(value, timedelta):
        return _Unavailable(f"has no length ({_render(value)})", answered=True)
    return len(_text_of(value))


def _unavailable(obs: Observation, why: str = "") -> _Unavailable:
    if obs.error:
        return _Unavailable(f"no answer ({_short(obs.error)})", answered=False)
    return _Unavailable(f"missing ({why})" if why else "missing", answered=True)


def _status(_: _Subject, obs: Observation) -> Any:
    return _unavailable(obs) if obs.status is None else obs.status


def _response_time(_: _Subject, obs: Observation) -> Any:
    if obs.response_time is None:
        return _unavailable(obs)
    return timedelta(seconds=obs.response_time)


def _certificate_expiration(_: _Subject, obs: Observation) -> Any:
    if obs.certificate_expiration is None:
        return _unavailable(obs, "no certificate")
    return obs.certificate_expiration


def _connected(_: _Subject, obs: Observation) -> Any:
    return bool(obs.connected)


def _result(_: _Subject, obs: Observation) -> Any:
    """None is SQL NULL unless the query failed, in which case there is no answer at all."""
    return _unavailable(obs) if obs.result is None and obs.error else obs.result


def _ip(_: _Subject, obs: Observation) -> Any:
    return _unavailable(obs) if obs.ip is None else obs.ip


def _body(subject: _Subject, obs: Observation) -> Any:
    if obs.body is None:
        return _unavailable(obs, "no body")
    if not subject.path:
        return obs._body_text()
    data = obs._parsed_body()
    if data is _NOT_JSON:
        return _Unavailable("missing (body is not JSON)", answered=True)
    for step in subject.path:
        if isinstance(step, int):
            found = isinstance(data, list) and step < len(data)
        else:
            found = isinstance(data, dict) and step in data
        if not found:
            return _Unavailable("missing", answered=True)
        data = data[step]
    return data


_PROBED: dict[str, Callable[[_Subject, Observation], Any]] = {
    "STATUS": _status,
    "BODY": _body,
    "RESPONSE_TIME": _response_time,
    "CERTIFICATE_EXPIRATION": _certificate_expiration,
    "CONNECTED": _connected,
    "RESULT": _result,
    "IP": _ip,
}


def _compare(value: Any, op: str, expected: _Expected) -> tuple[bool, str]:
    """Whether the value meets the expectation, plus a note when it cannot be compared."""
    if expected.pattern is not None:
        matched = expected.pattern.match(_text_of(value)) is not None
        return matched == (op == "=="), ""
    if op in _EQUALITY:
        equal = any(_equal(value, literal) for literal in expected.values)
        return equal == (op == "=="), ""
    return _order(value, op, expected.values[0])


def _equal(value: Any, literal: _Literal) -> bool:
    if isinstance(value, bool):
        return value == literal.boolean
    if value is None:
        return literal.text.lower() in _NULLS
    if isinstance(value, timedelta):
        return value == literal.duration
    number = _number_of(value)
    if number is not None and literal.number is not None:
        return bool(number == _alike(number, literal.number))
    if number is not None and literal.boolean is not None and not isinstance(value, str):
        return bool(number == literal.boolean)
    return _text_of(value) == literal.text


def _order(value: Any, op: str, literal: _Literal) -> tuple[bool, str]:
    if isinstance(value, timedelta):
        if literal.duration is None:
            return False, " (expected value is not a duration)"
        return _ORDERINGS[op](value, literal.duration), ""
    number = _number_of(value)
    if number is None:
        return False, " (not a number)"
    if literal.number is None:
        return False, " (expected value is not a number)"
    return _ORDERINGS[op](number, _alike(number, literal.number)), ""


def _number_of(value: Any) -> int | float | Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return None if value.is_nan() else value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        return _parse_number(value)
    return None


def _alike(observed: int | float | Decimal, expected: int | Decimal) -> int | float | Decimal:
    """Compare floats with floats: Decimal('0.1') is not the float 0.1 a JSON body holds."""
    if isinstance(observed, float) and isinstance(expected, Decimal):
        return float(expected)
    return expected


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(value)


def _render(value: Any) -> str:
    if isinstance(value, str):
        return f"'{_short(value)}'"
    if isinstance(value, timedelta):
        return format_duration(value) if value >= timedelta(0) else f"-{format_duration(-value)}"
    return _short(_text_of(value))


def _short(text: str) -> str:
    """Details go into alerts and tables, where a whole body would drown the point."""
    if len(text) > _SHOWN:
        text = text[: _SHOWN - 3] + "..."
    return text.translate(_ESCAPES)


DEFAULT_CONDITIONS = {
    "http": ("[STATUS] >= 200", "[STATUS] < 400"),
    "tcp": ("[CONNECTED] == true",),
    "postgres": ("[CONNECTED] == true",),
}


def conditions_for(monitor: Any) -> list[Condition]:
    """A monitor's conditions, or its type's defaults (HTTP 2xx/3xx; connected)."""
    texts = monitor.conditions or DEFAULT_CONDITIONS[monitor.type]
    return [parse_condition(t) for t in texts]
