"""Maintenance holds alerts back but keeps the state true, and owes an alert when it ends."""

from __future__ import annotations

from tests.monitor_helpers import MINUTE, T0, Sweeps, monitor
from vigil.monitoring import DEGRADED, DOWN, UP

IN_MAINTENANCE = {"api-health"}


def test_maintenance_suppresses_the_down_alert_but_records_the_state() -> None:
    run = Sweeps.of(monitor(failure_threshold=2))
    run.feed("O")
    assert run.feed("FF", maintenance=IN_MAINTENANCE) == []
    assert run.state().state == DOWN
    assert run.state().since == T0 + 2 * MINUTE
    [transition] = run.transitions
    assert transition.kind == "down"
    assert transition.in_maintenance
    assert run.state().last_alert_at is None


def test_a_monitor_still_down_after_maintenance_is_alerted_once() -> None:
    run = Sweeps.of(monitor(failure_threshold=1))
    run.feed("OFFF", maintenance=IN_MAINTENANCE)
    [alert] = run.feed("F")
    assert alert.title == "api-health is DOWN"
    assert alert.since == T0 + MINUTE  # the outage began in maintenance
    assert run.feed("FFFF") == []
    assert run.titles() == ["api-health is DOWN"]


def test_the_after_maintenance_alert_waits_for_a_failing_sweep() -> None:
    run = Sweeps.of(monitor(failure_threshold=1, success_threshold=2))
    run.feed("OF", maintenance=IN_MAINTENANCE)
    assert run.feed("O") == []  # recovering: not the moment to announce an outage
    assert run.state().state == DOWN


def test_an_outage_that_began_and_ended_in_maintenance_stays_quiet() -> None:
    run = Sweeps.of(monitor(failure_threshold=1))
    run.feed("OFFO", maintenance=IN_MAINTENANCE)
    assert run.state().state == UP
    assert run.alerts == []


def test_the_recovery_of_an_outage_nobody_heard_of_is_quiet_after_maintenance() -> None:
    run = Sweeps.of(monitor(failure_threshold=1))
    run.feed("OFF", maintenance=IN_MAINTENANCE)
    assert run.feed("O") == []
    assert run.transitions[-1].kind == "recovered"  # still recorded, for the history


def test_the_recovery_of_an_announced_outage_is_sent_even_in_maintenance() -> None:
    """Someone was paged for it; the window opened to fix it must not swallow the all-clear."""
    run = Sweeps.of(monitor(failure_threshold=1))
    run.feed("OFF")
    [alert] = run.feed("O", maintenance=IN_MAINTENANCE)
    assert alert.title == "api-health RECOVERED after 2m"


def test_degraded_in_maintenance_is_alerted_after_it_if_still_degraded() -> None:
    run = Sweeps.of(monitor())
    run.feed("ODD", maintenance=IN_MAINTENANCE)
    assert run.state().state == DEGRADED
    assert [a.title for a in run.feed("D")] == ["api-health is DEGRADED"]


def test_maintenance_does_not_hide_other_monitors() -> None:
    run = Sweeps.of(monitor("a", failure_threshold=1), monitor("b", failure_threshold=1))
    run.sweep({"a": "ok", "b": "ok"})
    alerts = run.sweep({"a": "failed", "b": "failed"}, maintenance={"a"})
    assert [a.title for a in alerts] == ["b is DOWN"]
