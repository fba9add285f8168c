"""The analysis rules of vigil.deploy, exactly as the README states them: how a check and a
measurement are classified, when the verdict fails early, when it passes, and when the next
measurement starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil.conditions import Observation, evaluate_all, parse_condition
from vigil.deploy.verdict import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    CheckReading,
    Limits,
    Measurement,
    MeasurementClass,
    Tally,
    classify_http,
    classify_process,
    is_last,
    judge,
    next_start,
)

LETTERS: dict[str, MeasurementClass] = {
    "S": SUCCESSFUL,
    "F": FAILED,
    "E": ERROR,
    "I": INCONCLUSIVE,
}
HEALTH = [parse_condition("[STATUS] == 200"), parse_condition("[BODY].status == ok")]


def run(letters: str, limits: Limits) -> tuple[str, int, str]:
    """Feed one measurement per letter, the last being the window's last; return the
    verdict, how many measurements were taken before it was decided, and its reason."""
    tally = Tally()
    for number, letter in enumerate(letters, start=1):
        tally = tally.add(LETTERS[letter])
        verdict = judge(tally, limits, last=number == len(letters))
        if verdict.status != "running":
            return verdict.status, number, verdict.reason
    raise AssertionError("the last measurement must decide")


@pytest.mark.parametrize(
    ("letters", "limits", "expected", "decided_at"),
    [
        ("SSSSS", Limits(), "passed", 5),
        ("SFSSS", Limits(failure_limit=0), "failed", 2),
        ("SFSFS", Limits(failure_limit=2), "passed", 5),
        ("SFFFS", Limits(failure_limit=2), "failed", 4),
        ("SEEES", Limits(consecutive_error_limit=2), "failed", 4),
        ("EESEESEE", Limits(consecutive_error_limit=2), "passed", 8),
        ("SEEEE", Limits(consecutive_error_limit=4), "passed", 5),
        ("IIIII", Limits(), "passed", 5),
        ("SIISI", Limits(inconclusive_limit=2), "failed", 5),
        ("SIISS", Limits(inconclusive_limit=2), "passed", 5),
        ("EEE", Limits(consecutive_error_limit=4), "failed", 3),
        ("FF", Limits(failure_limit=3), "failed", 2),
        ("EI", Limits(), "passed", 2),
    ],
)
def test_verdict_rules(letters: str, limits: Limits, expected: str, decided_at: int) -> None:
    status, number, _ = run(letters, limits)
    assert (status, number) == (expected, decided_at)


def test_failure_reasons_name_the_limit() -> None:
    assert run("SF", Limits())[2] == "1 failed measurements > failure_limit 0"
    assert run("EEE", Limits(consecutive_error_limit=2))[2] == (
        "3 consecutive errors > consecutive_error_limit 2"
    )
    assert run("II", Limits(inconclusive_limit=1))[2] == (
        "2 inconclusive measurements > inconclusive_limit 1"
    )
    assert run("EE", Limits())[2].startswith("no measurement was Successful or Inconclusive")


def test_a_measurement_is_its_worst_check() -> None:
    def measured(*verdicts: MeasurementClass) -> MeasurementClass:
        checks = tuple(CheckReading("page", f"/{i}", v, "seen") for i, v in enumerate(verdicts))
        return Measurement(datetime.now(UTC), checks).verdict

    assert measured(SUCCESSFUL, INCONCLUSIVE, ERROR, FAILED) == FAILED
    assert measured(SUCCESSFUL, ERROR, INCONCLUSIVE) == ERROR
    assert measured(INCONCLUSIVE, SUCCESSFUL) == INCONCLUSIVE
    assert measured(SUCCESSFUL, SUCCESSFUL) == SUCCESSFUL


def test_no_answer_is_an_error_and_a_wrong_answer_a_failure() -> None:
    refused = Observation(error="ConnectError: [Errno 111] Connection refused")
    outcome = classify_http("health", "http://app/health", refused, evaluate_all(HEALTH, refused))
    assert (outcome.verdict, outcome.observed) == (ERROR, refused.error)

    broken = Observation(status=503, body=b'{"status": "error"}', response_time=0.01)
    outcome = classify_http("health", "http://app/health", broken, evaluate_all(HEALTH, broken))
    assert outcome.verdict == FAILED
    assert outcome.problems[0] == "[STATUS] 503, expected == 200"
    assert outcome.observed == "503 in 10ms, status 'error'"


def test_degraded_health_is_inconclusive_but_a_degraded_page_is_not() -> None:
    degraded = Observation(status=200, body=b'{"status": "degraded"}', response_time=0.01)
    results = evaluate_all(HEALTH, degraded)
    assert classify_http("health", "http://app/health", degraded, results).verdict == INCONCLUSIVE
    page = evaluate_all([parse_condition("[STATUS] == 200")], degraded)
    assert classify_http("page", "http://app/", degraded, page).verdict == SUCCESSFUL
    down = Observation(status=503, body=b'{"status": "degraded"}', response_time=0.01)
    assert classify_http("health", "x", down, evaluate_all(HEALTH, down)).verdict == FAILED


@pytest.mark.parametrize(
    ("exit_code", "error", "expected"),
    [
        (0, None, SUCCESSFUL),
        (1, "exited 1", FAILED),
        (3, "exited 3", FAILED),
        (126, "exited 126", ERROR),
        (127, "exited 127", ERROR),
        (None, "timed out after 10s", ERROR),
        (None, "could not start: No such file or directory", ERROR),
    ],
)
def test_process_check_classes(
    exit_code: int | None, error: str | None, expected: MeasurementClass
) -> None:
    assert classify_process("pm2 pid web", exit_code, "", error).verdict == expected


def test_schedule_keeps_the_interval_and_never_bursts() -> None:
    interval = timedelta(milliseconds=200)
    assert next_start(10.0, 10.05, interval) == pytest.approx(10.2)
    # A measurement that overran its interval is followed at once, not by a catch-up burst.
    assert next_start(10.0, 10.9, interval) == 10.9
    window = timedelta(seconds=1)
    assert not is_last(10.0, window, 10.99)
    assert is_last(10.0, window, 11.0)
