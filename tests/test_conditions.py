"""The condition language monitors use: parsing, every placeholder, operator and function."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from vigil import conditions
from vigil.conditions import (
    Condition,
    ConditionError,
    ConditionResult,
    Observation,
    body_status,
    evaluate,
    evaluate_all,
    parse_condition,
    placeholders_of,
)


def check(text: str, obs: Observation) -> ConditionResult:
    return evaluate(parse_condition(text), obs)


def ok(text: str, obs: Observation) -> bool:
    return check(text, obs).ok


def body(value: Any) -> Observation:
    return Observation(status=200, body=json.dumps(value).encode())


# Parsing ---------------------------------------------------------------------------------


def test_parse_keeps_original_text_and_str() -> None:
    cond = parse_condition("  [STATUS]   == 200 ")
    assert cond.text == "  [STATUS]   == 200 "
    assert str(cond) == cond.text


def test_condition_is_frozen_and_hashable() -> None:
    a = parse_condition("[BODY].status == any(ok, degraded)")
    b = parse_condition("[BODY].status == any(ok, degraded)")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, parse_condition("[BODY] == pat(*ok*)")}) == 2
    with pytest.raises(AttributeError):
        a.text = "x"  # type: ignore[misc]


def test_condition_error_is_a_value_error() -> None:
    assert issubclass(ConditionError, ValueError)


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [
        ("[STATUS] == 200", "STATUS"),
        ("[BODY].a == 1", "BODY"),
        ("len([BODY]) > 1", "BODY"),
        ("has([BODY].x) == true", "BODY"),
        ("[RESPONSE_TIME] < 1s", "RESPONSE_TIME"),
        ("[CERTIFICATE_EXPIRATION] > 7d", "CERTIFICATE_EXPIRATION"),
        ("[CONNECTED] == true", "CONNECTED"),
        ("[RESULT] == 1", "RESULT"),
        ("[IP] == 127.0.0.1", "IP"),
        ("200 == [STATUS]", "STATUS"),
    ],
)
def test_placeholders_of(text: str, placeholder: str) -> None:
    assert placeholders_of(parse_condition(text)) == frozenset({placeholder})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[STATU] == 200", "unknown placeholder [STATU] (did you mean [STATUS]?)"),
        ("[status] == 200", "unknown placeholder [status] (did you mean [STATUS]?)"),
        ("[NOPE] == 1", "unknown placeholder [NOPE] (known: [STATUS], [BODY],"),
        ("[STATUS] 200", "missing operator (one of ==, !=, <, <=, >, >=)"),
        ("[STATUS] = 200", "missing operator: use == instead of ="),
        ("", "empty condition"),
        ("   ", "empty condition"),
        ("== 200", "empty left side of =="),
        ("[STATUS] <=", "empty right side of <="),
        ("[STATUS] < 1 < 2", "more than one operator (<, <)"),
        ("[BODY] == <html>", "more than one operator (==, <, >)"),
        ("foo([BODY]) == 1", "unknown function foo() (known: any, has, len, pat"),
        ("[BODY].v == v1(beta)", "unknown function v1()"),
        ("[RESPONSE_TIME] < 2x", "bad duration '2x' (write e.g. 300ms, 2s, 7d;"),
        ("[CERTIFICATE_EXPIRATION] > soon", "bad duration 'soon'"),
        ("[RESPONSE_TIME] < -5", "bad duration '-5'"),
        ("[STATUS] < any(200, 204)", "any() only works with == or !="),
        ("[BODY] > pat(*a*)", "pat() only works with == or !="),
        ("[RESPONSE_TIME] == pat(1*)", "pat() does not apply to [RESPONSE_TIME]"),
        ("[CONNECTED] == pat(t*)", "pat() does not apply to [CONNECTED]"),
        ("[CONNECTED] < true", "[CONNECTED] can only be compared with == or !="),
        ("has([BODY].x) > false", "has([BODY].x) can only be compared with == or !="),
        ('[BODY].a == "b', 'unterminated quote "'),
        ("[BODY].a == 'b", "unterminated quote '"),
        ("[BODY] == (a", "unbalanced parentheses: '(' without ')'"),
        ("[BODY] == a)", "unbalanced parentheses: ')' without '('"),
        ('[BODY] == "a" b', "unexpected text after a quoted value"),
        ("len(5) > 1", "len() takes a placeholder such as [BODY].items, not '5'"),
        ("len() > 1", "len() takes a placeholder"),
        ("len(len([BODY])) > 1", "len() takes a placeholder"),
        ("has(ok) == true", "has() takes a placeholder"),
        ("len([BODY]) extra > 1", "unexpected text after len(...): ' extra'"),
        ("1 == 2", "no placeholder on either side"),
        ("[CONNECTED] < [STATUS]", "[CONNECTED] < [STATUS]: true/false only compare with =="),
        ("[STATUS] == [CONNECTED]", "[STATUS] and [CONNECTED] can never be equal"),
        ("[STATUS] == ok", "[STATUS] compares with numbers, not 'ok'"),
        ("[STATUS] == any(200, 2OO)", "[STATUS] compares with numbers, not '2OO'"),
        ("len([BODY]) > many", "len([BODY]) compares with numbers, not 'many'"),
        ("[CONNECTED] == maybe", "[CONNECTED] compares with true or false, not 'maybe'"),
        ("has([BODY].x) == 2", "has([BODY].x) compares with true or false, not '2'"),
        ("[BODY]x == 1", "unexpected text after [BODY]: 'x'"),
        ("[IP].a == 1", "a JSON path only applies to [BODY], not [IP]"),
        ("[BODY].a..b == 1", "bad JSON path '.a..b'"),
        ("[BODY].a[x] == 1", "bad JSON path '.a[x]'"),
        ("[BODY] == pat()", "pat() needs a pattern"),
        ("[BODY] == any()", "empty value in any()"),
        ("[BODY] == any(a,,b)", "empty value in any()"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    assert str(info.value).startswith(message)


def test_parse_rejects_non_text() -> None:
    with pytest.raises(ConditionError, match="a condition must be text, not int"):
        parse_condition(200)


# [STATUS] and the operators --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[STATUS] == 200", True),
        ("[STATUS] == 201", False),
        ("[STATUS] != 500", True),
        ("[STATUS] != 200", False),
        ("[STATUS] < 500", True),
        ("[STATUS] < 200", False),
        ("[STATUS] <= 200", True),
        ("[STATUS] <= 199", False),
        ("[STATUS] > 199", True),
        ("[STATUS] > 200", False),
        ("[STATUS] >= 200", True),
        ("[STATUS] >= 201", False),
        ("[STATUS]==200", True),
        ("[STATUS] == 200.0", True),
        ("[STATUS] == any(200, 204)", True),
        ("[STATUS] == any(201,204)", False),
        ("[STATUS] != any(500, 502, 503)", True),
        ("[STATUS] != any(200, 204)", False),
        ("[STATUS] == pat(2*)", True),
        ("[STATUS] == pat(3??)", False),
        ("[STATUS] != pat(5*)", True),
    ],
)
def test_status_operators(text: str, expected: bool) -> None:
    assert ok(text, Observation(status=200)) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("200 == [STATUS]", True),
        ("500 > [STATUS]", True),
        ("500 < [STATUS]", False),
        ("200 <= [STATUS]", True),
        ("201 <= [STATUS]", False),
        ("any(200, 204) == [STATUS]", True),
        ("pat(2*) != [STATUS]", False),
    ],
)
def test_reversed_sides(text: str, expected: bool) -> None:
    assert ok(text, Observation(status=200)) is expected


def test_reversed_sides_detail_reads_placeholder_first() -> None:
    result = check("500 > [STATUS]", Observation(status=503))
    assert not result.ok
    assert result.detail == "[STATUS] 503, expected < 500"


def test_status_details() -> None:
    assert check("[STATUS] == 200", Observation(status=503)).detail == (
        "[STATUS] 503, expected == 200"
    )
    result = check("[STATUS] == 200", Observation(status=200))
    assert result == ConditionResult("[STATUS] == 200", True, "[STATUS] 200, expected == 200")


def test_status_missing() -> None:
    refused = check("[STATUS] == 200", Observation(error="connection refused"))
    assert not refused.ok
    assert refused.detail == "[STATUS] no answer (connection refused)"
    assert check("[STATUS] == 200", Observation()).detail == "[STATUS] missing"
    assert not ok("[STATUS] != 200", Observation(error="timeout"))


# [BODY] ----------------------------------------------------------------------------------


def test_body_json_paths() -> None:
    obs = body({"status": "ok", "data": {"items": [{"name": "foo"}, {"name": "bar"}]}})
    assert ok("[BODY].status == ok", obs)
    assert ok("[BODY].data.items[0].name == foo", obs)
    assert ok("[BODY].data.items[1].name == bar", obs)
    assert not ok("[BODY].data.items[1].name == foo", obs)
    assert ok("[BODY].status != down", obs)


def test_body_top_level_array() -> None:
    assert ok("[BODY][1].id == 7", body([{"id": 1}, {"id": 7}]))


def test_body_any() -> None:
    assert ok("[BODY].status == any(ok, degraded)", body({"status": "degraded"}))
    result = check("[BODY].status == any(ok, degraded)", body({"status": "down"}))
    assert not result.ok
    assert result.detail == "[BODY].status 'down', expected == any(ok, degraded)"


def test_any_with_not_equal_means_equal_to_none() -> None:
    cond = "[BODY].status != any(down, failing)"
    assert ok(cond, body({"status": "ok"}))
    assert not ok(cond, body({"status": "down"}))
    assert not ok(cond, body({"status": "failing"}))


def test_body_pat() -> None:
    obs = Observation(body=b"service is healthy\n")
    assert ok("[BODY] == pat(*healthy*)", obs)
    assert not ok("[BODY] == pat(*Healthy*)", obs)  # case-sensitive
    assert ok("[BODY] == pat(service is ?ealthy*)", obs)
    assert ok("[BODY].msg != pat(*error*)", body({"msg": "all fine"}))
    assert not ok("[BODY].msg != pat(*error*)", body({"msg": "an error occurred"}))


def test_pat_is_compiled_at_parse_time(monkeypatch: pytest.MonkeyPatch) -> None:
    cond = parse_condition("[BODY] == pat(*ok*)")

    def forbidden(*_: Any, **__: Any) -> Any:
        raise AssertionError("compiled during evaluation")

    monkeypatch.setattr(conditions.re, "compile", forbidden)
    monkeypatch.setattr(conditions.fnmatch, "translate", forbidden)
    assert evaluate(cond, Observation(body=b"all ok")).ok


def test_body_whole_text_compare() -> None:
    assert ok("[BODY] == pong", Observation(body=b"pong"))
    assert not ok("[BODY] == pong", Observation(body=b"ping"))


def test_body_not_json() -> None:
    result = check("[BODY].status == ok", Observation(status=200, body=b"<html>down</html>"))
    assert not result.ok
    assert result.detail == "[BODY].status missing (body is not JSON)"


def test_body_path_missing() -> None:
    obs = body({"a": {"c": 1}, "list": [1]})
    assert check("[BODY].a.b == 1", obs).detail == "[BODY].a.b missing"
    assert not ok("[BODY].a.b != 1", obs)
    assert not ok("[BODY].list[5] == 1", obs)
    assert not ok("[BODY].a[0] == 1", obs)  # index into an object
    assert not ok("[BODY].list.x == 1", obs)  # key into a list
    assert not ok("[BODY].a.c.d == 1", obs)  # key into a number


def test_body_absent() -> None:
    assert check("[BODY].status == ok", Observation(status=204)).detail == (
        "[BODY].status missing (no body)"
    )
    assert check("[BODY] == pat(*ok*)", Observation(error="timed out")).detail == (
        "[BODY] no answer (timed out)"
    )


def test_body_empty_and_invalid_utf8() -> None:
    assert ok("len([BODY]) == 0", Observation(body=b""))
    assert not ok("[BODY].a == 1", Observation(body=b""))
    assert ok("[BODY] == pat(*ok*)", Observation(body=b"\xff\xfe ok"))
    assert not ok("[BODY].a == 1", Observation(body=b'{"a": "\xff"}'))


def test_deeply_nested_body_is_not_json_rather_than_an_error() -> None:
    result = check("[BODY].a == 1", Observation(body=b"[" * 100_000 + b"]" * 100_000))
    assert result.detail == "[BODY].a missing (body is not JSON)"


def test_body_detail_is_truncated() -> None:
    result = check("[BODY] == pat(*healthy*)", Observation(body=b"x" * 5000))
    assert not result.ok
    assert result.detail == f"[BODY] '{'x' * 77}...', expected == pat(*healthy*)"


def test_detail_escapes_newlines() -> None:
    result = check("[BODY] == pong", Observation(body=b"line1\nline2\r\nline3"))
    assert result.detail == "[BODY] 'line1\\nline2\\r\\nline3', expected == pong"


def test_whole_body_is_compared_without_surrounding_whitespace() -> None:
    """As in Gatus: a trailing newline is not part of what the body says."""
    assert ok("[BODY] == pong", Observation(body=b"  pong\r\n"))
    assert not ok("[BODY] == pong", Observation(body=b"pong pong\n"))


def test_body_json_values_of_every_type() -> None:
    obs = body({"n": None, "t": True, "f": False, "l": [1, 2], "d": {"a": 1}, "x": 1.5})
    assert ok("[BODY].n == null", obs)
    assert ok("[BODY].n != ok", obs)
    assert ok("[BODY].t == true", obs)
    assert ok("[BODY].t == YES", obs)
    assert ok("[BODY].f == false", obs)
    assert ok("[BODY].f == 0", obs)
    assert ok("[BODY].l == [1,2]", obs)
    assert ok("[BODY].d == '{\"a\":1}'", obs)
    assert ok("[BODY].x == 1.5", obs)
    assert ok("[BODY].x > 1", obs)
    assert check("[BODY].n > 1", obs).detail == "[BODY].n null, expected > 1 (not a number)"
    assert check("[BODY].l == [2]", obs).detail == "[BODY].l [1,2], expected == [2]"


# Numbers ---------------------------------------------------------------------------------


def test_json_string_numbers_compare_as_numbers() -> None:
    obs = body({"count": "12", "padded": " 12 ", "word": "twelve"})
    assert ok("[BODY].count > 10", obs)
    assert ok("[BODY].count == 12.0", obs)
    assert ok("[BODY].padded == 12", obs)
    result = check("[BODY].word > 10", obs)
    assert not result.ok
    assert result.detail == "[BODY].word 'twelve', expected > 10 (not a number)"


def test_ordering_against_text_fails_with_detail() -> None:
    result = check("[BODY].version > abc", body({"version": 3}))
    assert not result.ok
    assert result.detail == "[BODY].version 3, expected > abc (expected value is not a number)"
    assert not ok("[IP] < 10.0.0.1", Observation(ip="10.0.0.0"))


def test_floats_compare_as_the_literal_reads() -> None:
    assert ok("[BODY].v == 0.1", body({"v": 0.1}))
    assert ok("[BODY].v <= 0.3", body({"v": 0.3}))
    assert ok("[BODY].v == 1e3", body({"v": 1000}))
    assert ok("[BODY].v < -2.5", body({"v": -3}))


def test_huge_numbers() -> None:
    huge = 123456789012345678901234567890123456789
    obs = body({"n": huge})
    assert ok(f"[BODY].n == {huge}", obs)
    assert not ok(f"[BODY].n == {huge + 1}", obs)
    assert ok(f"[BODY].n < {huge + 1}", obs)
    assert ok("[BODY].n > 1e38", obs)
    many_digits = "9" * 5000  # beyond int()'s default digit limit
    assert ok(f"[BODY].s == {many_digits}", body({"s": many_digits}))
    assert ok(f"[BODY].s > {many_digits[:-1]}", body({"s": many_digits}))


def test_number_with_more_digits_than_json_accepts_is_not_json() -> None:
    result = check("[BODY].n > 1", Observation(body=b'{"n": ' + b"9" * 5000 + b"}"))
    assert result.detail == "[BODY].n missing (body is not JSON)"


# Durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds", "expected"),
    [
        ("[RESPONSE_TIME] < 2s", 1.5, True),
        ("[RESPONSE_TIME] < 2s", 2.41, False),
        ("[RESPONSE_TIME] < 300", 0.299, True),  # bare number: milliseconds
        ("[RESPONSE_TIME] < 300", 0.301, False),
        ("[RESPONSE_TIME] < 50ms", 0.049, True),
        ("[RESPONSE_TIME] <= 50ms", 0.05, True),
        ("[RESPONSE_TIME] > 1m", 61, True),
        ("[RESPONSE_TIME] >= 1.5s", 1.5, True),
        ("[RESPONSE_TIME] != 1s", 2, True),
        ("[RESPONSE_TIME] == 1000", 1, True),
        ("2s > [RESPONSE_TIME]", 1, True),
    ],
)
def test_response_time(text: str, seconds: float, expected: bool) -> None:
    assert ok(text, Observation(response_time=seconds)) is expected


def test_response_time_detail() -> None:
    result = check("[RESPONSE_TIME] < 2s", Observation(response_time=2.41))
    assert result.detail == "[RESPONSE_TIME] 2.4s, expected < 2s"
    assert check("[RESPONSE_TIME] < 2s", Observation(response_time=0.25)).detail == (
        "[RESPONSE_TIME] 250ms, expected < 2s"
    )
    assert check("[RESPONSE_TIME] < 2s", Observation(error="dns")).detail == (
        "[RESPONSE_TIME] no answer (dns)"
    )


@pytest.mark.parametrize(
    ("text", "left", "expected"),
    [
        ("[CERTIFICATE_EXPIRATION] > 7d", timedelta(days=30), True),
        ("[CERTIFICATE_EXPIRATION] > 7d", timedelta(days=3), False),
        ("[CERTIFICATE_EXPIRATION] > 48h", timedelta(days=2, seconds=1), True),
        ("[CERTIFICATE_EXPIRATION] > 48h", timedelta(days=2), False),
        ("[CERTIFICATE_EXPIRATION] > 86400000", timedelta(days=2), True),  # ms
        ("[CERTIFICATE_EXPIRATION] > 1w", timedelta(days=6), False),
        ("[CERTIFICATE_EXPIRATION] > 7d", timedelta(days=-1), False),
    ],
)
def test_certificate_expiration(text: str, left: timedelta, expected: bool) -> None:
    assert ok(text, Observation(certificate_expiration=left)) is expected


def test_certificate_expiration_details() -> None:
    short = Observation(certificate_expiration=timedelta(days=3, hours=4))
    assert check("[CERTIFICATE_EXPIRATION] > 7d", short).detail == (
        "[CERTIFICATE_EXPIRATION] 3d4h, expected > 7d"
    )
    expired = Observation(certificate_expiration=-timedelta(days=2))
    assert check("[CERTIFICATE_EXPIRATION] > 7d", expired).detail == (
        "[CERTIFICATE_EXPIRATION] -2d, expected > 7d"
    )
    assert check("[CERTIFICATE_EXPIRATION] > 7d", Observation(status=200)).detail == (
        "[CERTIFICATE_EXPIRATION] missing (no certificate)"
    )


# [CONNECTED], booleans -------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["true", "TRUE", "t", "T", "yes", "Yes", "1"])
def test_true_spellings(spelling: str) -> None:
    assert ok(f"[CONNECTED] == {spelling}", Observation(connected=True))
    assert not ok(f"[CONNECTED] == {spelling}", Observation(connected=False))
    assert ok(f"[RESULT] == {spelling}", Observation(result=True))


@pytest.mark.parametrize("spelling", ["false", "False", "f", "F", "no", "NO", "0"])
def test_false_spellings(spelling: str) -> None:
    assert ok(f"[CONNECTED] == {spelling}", Observation(connected=False))
    assert ok(f"[CONNECTED] != {spelling}", Observation(connected=True))
    assert ok(f"[RESULT] == {spelling}", Observation(result=False))


def test_connected_failure_carries_the_error() -> None:
    result = check("[CONNECTED] == true", Observation(error="connection refused"))
    assert not result.ok
    assert result.detail == "[CONNECTED] false, expected == true (connection refused)"


# [RESULT] --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("[RESULT] <= 10", 10, True),
        ("[RESULT] <= 10", 11, False),
        ("[RESULT] <= 10", 9.5, True),
        ("[RESULT] <= 10", Decimal("10.000"), True),
        ("[RESULT] < 0.3", Decimal("0.3"), False),
        ("[RESULT] == 0.1", Decimal("0.1"), True),
        ("[RESULT] == 5", Decimal("5.00"), True),
        ("[RESULT] > 1", Decimal("NaN"), False),
        ("[RESULT] == t", True, True),
        ("[RESULT] == t", False, False),
        ("[RESULT] == true", 1, True),  # MySQL-style booleans
        ("[RESULT] == false", 0, True),
        ("[RESULT] == true", 2, False),
        ("[RESULT] == active", "active", True),
        ("[RESULT] == active", "Active", False),
        ("[RESULT] == 12", "12", True),
        ("[RESULT] == null", None, True),
        ("[RESULT] != null", None, False),
        ("[RESULT] == 2024-01-02", date(2024, 1, 2), True),
        ("[RESULT] == '2024-01-02 03:04:05'", datetime(2024, 1, 2, 3, 4, 5), True),
        ("[RESULT] < 5m", timedelta(minutes=3), True),  # a SQL interval
        ("[RESULT] < 5m", timedelta(minutes=6), False),
        ("len([RESULT]) == 3", [1, 2, 3], True),
        ("[RESULT] == pat(act*)", "active", True),
    ],
)
def test_result(text: str, value: Any, expected: bool) -> None:
    assert ok(text, Observation(connected=True, result=value)) is expected


def test_result_datetime_ordering_is_a_clear_failure() -> None:
    when = datetime(2024, 1, 2, tzinfo=UTC)
    result = check("[RESULT] > 2024-01-01", Observation(result=when))
    assert not result.ok
    assert result.detail.endswith("expected > 2024-01-01 (not a number)")


def test_result_details() -> None:
    assert check("[RESULT] <= 10", Observation(result=Decimal("12.50"))).detail == (
        "[RESULT] 12.50, expected <= 10"
    )
    assert check("[RESULT] == active", Observation(result="idle")).detail == (
        "[RESULT] 'idle', expected == active"
    )
    assert check("[RESULT] == 1", Observation(error="relation does not exist")).detail == (
        "[RESULT] no answer (relation does not exist)"
    )
    assert check("[RESULT] == 1", Observation(result=None)).detail == (
        "[RESULT] null, expected == 1"
    )


# [IP] ------------------------------------------------------------------------------------


def test_ip() -> None:
    obs = Observation(ip="127.0.0.1")
    assert ok("[IP] == 127.0.0.1", obs)
    assert not ok("[IP] == 127.0.0.10", obs)
    assert ok("[IP] == pat(127.*)", obs)
    assert not ok("[IP] == pat(10.*)", obs)
    assert ok("[IP] == any(10.0.0.1, 127.0.0.1)", obs)
    assert check("[IP] == 127.0.0.1", Observation()).detail == "[IP] missing"


# Functions -------------------------------------------------------------------------------


def test_len() -> None:
    obs = body({"items": [1, 2, 3], "name": "abcd", "map": {"a": 1}, "none": [], "n": 5})
    assert ok("len([BODY].items) > 0", obs)
    assert ok("len([BODY].items) == 3", obs)
    assert ok("len([BODY].name) == 4", obs)
    assert ok("len([BODY].map) == 7", obs)  # as in Gatus: its compact JSON, {"a":1}
    assert ok("len([BODY]) < 100", obs)
    assert ok("3 == len([BODY].items)", obs)
    result = check("len([BODY].none) > 0", obs)
    assert not result.ok
    assert result.detail == "len([BODY].none) 0, expected > 0"
    assert ok("len([BODY].n) == 1", obs)  # as in Gatus: the digits of 5
    assert check("len([BODY].gone) > 0", obs).detail == "len([BODY].gone) missing"


def test_len_of_body_counts_text_characters() -> None:
    assert ok("len([BODY]) == 5", Observation(body="héllo".encode()))
    assert ok("len([BODY]) > 10", Observation(body=b"not json at all"))


def test_len_follows_gatus_for_arrays_numbers_booleans_and_null() -> None:
    assert ok("len([BODY]) == 3", Observation(body=b"[1, 2, 3]"))  # items, not characters
    assert ok("len([BODY]) == 8", Observation(body=b"[1, 2, 3"))  # not JSON: characters
    obs = body({"n": 1234, "f": 1.5, "t": True, "no": False, "null": None})
    assert ok("len([BODY].n) == 4", obs)
    assert ok("len([BODY].f) == 3", obs)
    assert ok("len([BODY].t) == 4", obs)
    assert ok("len([BODY].no) == 5", obs)
    result = check("len([BODY].null) == 0", obs)
    assert not result.ok
    assert result.detail == "len([BODY].null) has no length (null)"


def test_has_of_an_empty_body_is_false() -> None:
    assert ok("has([BODY]) == false", Observation(status=200, body=b""))
    assert ok("has([BODY]) == true", Observation(status=200, body=b"x"))


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("[BODY].v == 1", "0x1", True),
        ("[BODY].v == 255", "0xff", True),
        ("[BODY].v == 8", "0o10", True),
        ("[BODY].v == 2", "0b0010", True),
        ("[BODY].v == 0b10", "0x2", True),
        ("[BODY].v > 0", "0x1", True),
        ("[BODY].v < 0", "-0x1", True),
        ("[BODY].v == 3", "0x2", False),
        ("[BODY].v > 0", "0x", False),  # not a number at all
        ("[BODY].v == 0x1g", "0x1g", True),  # text, compared as text
        ("[STATUS] == 0xC8", None, True),
    ],
)
def test_hex_octal_and_binary_numbers(text: str, value: str | None, expected: bool) -> None:
    obs = body({"v": value}) if value is not None else Observation(status=200)
    assert ok(text, obs) is expected


def test_two_placeholders_compare_observed_values() -> None:
    obs = body({"a": "john", "b": "doe", "c": "john", "used": 3, "limit": "0x5", "status": 200})
    assert ok("[BODY].a != [BODY].b", obs)
    assert ok("[BODY].a == [BODY].c", obs)
    assert ok("[BODY].used < [BODY].limit", obs)
    assert ok("[STATUS] == [BODY].status", obs)
    result = check("[BODY].a == [BODY].b", obs)
    assert not result.ok
    assert result.detail == "[BODY].a 'john', expected == [BODY].b 'doe'"
    missing = check("[BODY].a == [BODY].gone", obs)
    assert not missing.ok and missing.detail == "[BODY].gone missing"
    assert placeholders_of(parse_condition("[STATUS] == [BODY].status")) == {"STATUS", "BODY"}


def test_two_placeholders_read_a_number_beside_a_duration_as_milliseconds() -> None:
    obs = Observation(status=200, body=b'{"max": 500, "text": "2s"}', response_time=0.25)
    assert ok("[RESPONSE_TIME] < [BODY].max", obs)
    assert ok("[BODY].max > [RESPONSE_TIME]", obs)
    assert ok("[RESPONSE_TIME] < [BODY].text", obs)
    assert not ok("[RESPONSE_TIME] > [BODY].max", obs)
    slow = Observation(status=200, body=b'{"max": 100}', response_time=0.25)
    assert check("[BODY].max > [RESPONSE_TIME]", slow).detail == (
        "[RESPONSE_TIME] 250ms, expected < [BODY].max 100"
    )


def test_has() -> None:
    obs = body({"errors": None, "data": {"x": 1}})
    assert ok("has([BODY].errors) == false", obs)  # null is not there, as in Gatus
    assert ok("has([BODY].data.x) == true", obs)
    assert ok("has([BODY].warnings) == false", obs)
    assert ok("has([BODY].data.y) == f", obs)
    assert ok("has([BODY].warnings) != true", obs)
    result = check("has([BODY].data) == false", obs)
    assert not result.ok
    assert result.detail == "has([BODY].data) true, expected == false"


def test_has_on_non_json_or_missing_body_is_false() -> None:
    assert ok("has([BODY].errors) == false", Observation(body=b"<html>"))
    assert ok("has([BODY].errors) == false", Observation(status=204))


def test_has_without_an_answer_fails() -> None:
    result = check("has([BODY].errors) == false", Observation(error="connection refused"))
    assert not result.ok
    assert result.detail == "has([BODY].errors) no answer (connection refused)"


# Quoting ---------------------------------------------------------------------------------


def test_quoted_values() -> None:
    obs = body({"msg": "all good", "csv": "a, b", "op": "x >= y", "apos": "it's"})
    assert ok('[BODY].msg == "all good"', obs)
    assert ok("[BODY].msg == 'all good'", obs)
    assert ok('[BODY].csv == any("a, b", c)', obs)
    assert ok("[BODY].csv == any('x', 'a, b')", obs)
    assert ok('[BODY].op == "x >= y"', obs)
    assert ok('[BODY].op == pat("* >= *")', obs)
    assert ok("[BODY].apos == it's", obs)
    assert ok('[BODY].apos == "it\'s"', obs)
    assert ok('"all good" == [BODY].msg', obs)
    assert ok('[BODY].missing != ""', body({"missing": "x"}))
    assert ok('[BODY].empty == ""', body({"empty": ""}))


def test_quoted_function_names_are_plain_text() -> None:
    assert ok('[BODY].v == "v1(beta)"', body({"v": "v1(beta)"}))
    assert ok("[BODY].v == 'any(x)'", body({"v": "any(x)"}))


def test_quoted_detail_shows_what_was_written() -> None:
    result = check('[BODY].msg == "all good"', body({"msg": "bad"}))
    assert result.detail == "[BODY].msg 'bad', expected == \"all good\""


# body_status, evaluate_all, caching, robustness -----------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"status": "Degraded"}', "degraded"),
        (b'{"status": "ok", "x": 1}', "ok"),
        (b'{"status": 1}', None),
        (b'{"state": "ok"}', None),
        (b'["status"]', None),
        (b"status: ok", None),
        (None, None),
    ],
)
def test_body_status(raw: bytes | None, expected: str | None) -> None:
    assert body_status(Observation(body=raw)) == expected


def test_evaluate_all_keeps_order() -> None:
    conds = [parse_condition(t) for t in ("[STATUS] == 200", "[BODY].ok == true")]
    results = evaluate_all(conds, body({"ok": False}))
    assert [r.condition for r in results] == ["[STATUS] == 200", "[BODY].ok == true"]
    assert [r.ok for r in results] == [True, False]
    assert evaluate_all([], Observation()) == []


def test_body_json_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real_loads = json.loads

    def counting_loads(raw: Any, **kwargs: Any) -> Any:
        calls.append(raw)
        return real_loads(raw, **kwargs)

    monkeypatch.setattr(conditions.json, "loads", counting_loads)
    conds = [
        parse_condition(t)
        for t in ("[BODY].status == ok", "len([BODY].items) > 0", "has([BODY].errors) == false")
    ]
    obs = Observation(body=b'{"status": "ok", "items": [1]}')
    assert obs._json is conditions._UNPARSED
    assert all(r.ok for r in evaluate_all(conds, obs))
    assert body_status(obs) == "ok"
    assert len(calls) == 1
    assert obs._json == {"status": "ok", "items": [1]}


def test_non_json_body_is_also_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real_loads = json.loads

    def counting_loads(raw: Any, **kwargs: Any) -> Any:
        calls.append(raw)
        return real_loads(raw, **kwargs)

    monkeypatch.setattr(conditions.json, "loads", counting_loads)
    obs = Observation(body=b"<html>")
    conds = [parse_condition(t) for t in ("[BODY].a == 1", "[BODY].b == 2", "[BODY] == '<x>'")]
    assert [r.ok for r in evaluate_all(conds, obs)] == [False, False, False]
    assert body_status(obs) is None
    assert len(calls) == 1


def test_observation_equality_ignores_the_cache() -> None:
    a, b = Observation(body=b"{}"), Observation(body=b"{}")
    body_status(a)
    assert a == b
    assert "_json" not in repr(a)


def test_evaluate_never_raises_on_odd_values() -> None:
    class Weird:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    result = check("[RESULT] == 1", Observation(result=Weird()))
    assert not result.ok
    assert result.detail.startswith("[RESULT] could not be evaluated: RuntimeError('boom')")
    assert not ok("[BODY] == x", Observation(body="not bytes"))  # type: ignore[arg-type]


def test_many_observations_share_parsed_conditions() -> None:
    conds = [
        parse_condition(t)
        for t in ("[STATUS] == any(200, 204)", "[BODY].status == ok", "[RESPONSE_TIME] < 2s")
    ]
    raw = json.dumps({"status": "ok", "data": list(range(20))}).encode()
    observations = [
        Observation(status=200, body=raw, response_time=i / 10_000) for i in range(10_000)
    ]
    results = [evaluate_all(conds, obs) for obs in observations]
    assert all(r.ok for batch in results for r in batch)


def test_condition_type_is_exported() -> None:
    assert isinstance(parse_condition("[STATUS] == 200"), Condition)
