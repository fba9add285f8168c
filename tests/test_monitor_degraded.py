"""DEGRADED: a service that answers but says it is not well, and how it meets the thresholds."""

from __future__ import annotations

from datetime import timedelta

from tests.monitor_helpers import BODY_DEGRADED, MINUTE, T0, Sweeps, monitor
from vigil.monitoring import DEGRADED, DOWN, UP


def test_a_degraded_health_body_makes_the_monitor_degraded_at_once() -> None:
    run = Sweeps.of(monitor(failure_threshold=3))
    run.feed("O")
    [alert] = run.feed("D")
    assert alert.title == "api-health is DEGRADED"
    assert alert.details == [BODY_DEGRADED]
    assert alert.kind == "problem"
    assert run.state().state == DEGRADED
    assert run.state().since == T0 + MINUTE


def test_an_unknown_monitor_can_start_degraded() -> None:
    run = Sweeps.of(monitor())
    assert [a.title for a in run.feed("D")] == ["api-health is DEGRADED"]


def test_degraded_pages_at_medium_even_for_a_critical_monitor() -> None:
    run = Sweeps.of(monitor(severity="critical"))
    [alert] = run.feed("OD")
    assert alert.severity == "medium"


def test_degraded_never_pages_louder_than_the_monitor_itself() -> None:
    run = Sweeps.of(monitor(severity="low"))
    [alert] = run.feed("OD")
    assert alert.severity == "low"


def test_degraded_resets_the_failure_count() -> None:
    run = Sweeps.of(monitor(failure_threshold=2))
    run.feed("OFD")
    assert run.state().consecutive_failures == 0
    run.feed("F")
    assert run.state().state == DEGRADED


def test_still_degraded_does_not_alert_again() -> None:
    run = Sweeps.of(monitor())
    run.feed("O" + "D" * 20)
    assert run.titles() == ["api-health is DEGRADED"]


def test_degraded_back_to_up_is_quiet() -> None:
    run = Sweeps.of(monitor())
    run.feed("ODDO")
    assert run.state().state == UP
    assert run.titles() == ["api-health is DEGRADED"]


def test_degraded_to_up_waits_for_success_threshold_ok_sweeps() -> None:
    run = Sweeps.of(monitor(success_threshold=2))
    run.feed("ODO")
    assert run.state().state == DEGRADED
    run.feed("O")
    assert run.state().state == UP


def test_flapping_between_ok_and_degraded_gives_one_alert_with_a_success_threshold() -> None:
    run = Sweeps.of(monitor(success_threshold=2))
    run.feed("O" + "DO" * 10)
    assert run.state().state == DEGRADED
    assert run.titles() == ["api-health is DEGRADED"]


def test_degraded_goes_down_after_failure_threshold_failures() -> None:
    run = Sweeps.of(monitor(failure_threshold=2))
    run.feed("ODF")
    assert run.state().state == DEGRADED
    run.feed("F")
    assert run.state().state == DOWN
    assert run.titles() == ["api-health is DEGRADED", "api-health is DOWN"]


def test_down_to_degraded_is_alerted_as_degraded_with_the_down_duration() -> None:
    run = Sweeps.of(monitor(failure_threshold=1))
    run.feed("OF" + "F" * 4)  # DOWN from T0+1m
    [alert] = run.feed("D")  # at T0+6m
    assert alert.title == "api-health is DEGRADED"
    assert alert.fields["down for"] == "5m"
    assert "after being DOWN for 5m" in alert.summary
    transition = run.transitions[-1]
    assert (transition.kind, transition.previous, transition.state) == ("degraded", DOWN, DEGRADED)
    assert transition.down_for == timedelta(minutes=5)


def test_leaving_down_waits_for_success_threshold_answers_ok_or_degraded() -> None:
    """A warming-up service answering "degraded" once must not flap DOWN -> DEGRADED -> DOWN."""
    run = Sweeps.of(monitor(failure_threshold=1, success_threshold=2))
    run.feed("OFDF")
    assert run.state().state == DOWN
    assert run.titles() == ["api-health is DOWN"]


def test_down_leaves_for_the_state_of_the_sweep_that_completes_the_streak() -> None:
    to_degraded = Sweeps.of(monitor(failure_threshold=1, success_threshold=2))
    to_degraded.feed("OFOD")
    assert to_degraded.state().state == DEGRADED
    to_up = Sweeps.of(monitor(failure_threshold=1, success_threshold=2))
    to_up.feed("OFDO")
    assert to_up.state().state == UP
    assert to_up.titles() == ["api-health is DOWN", "api-health RECOVERED after 2m"]


def test_after_down_to_degraded_up_needs_fresh_ok_sweeps() -> None:
    run = Sweeps.of(monitor(failure_threshold=1, success_threshold=2))
    run.feed("OFDD")  # DEGRADED, with two answers counted while DOWN
    assert run.state().state == DEGRADED
    run.feed("O")
    assert run.state().state == DEGRADED
    run.feed("O")
    assert run.state().state == UP
