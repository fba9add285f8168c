"""remind_every: a problem nobody fixed is mentioned again, on its own schedule only."""

from __future__ import annotations

from tests.monitor_helpers import MINUTE, T0, Sweeps, monitor


def test_without_remind_every_there_is_no_reminder() -> None:
    run = Sweeps.of(monitor(failure_threshold=1))
    run.feed("OF" + "F" * 120)
    assert run.titles() == ["api-health is DOWN"]


def test_a_reminder_comes_every_remind_every_while_down() -> None:
    run = Sweeps.of(monitor(failure_threshold=1, remind_every="10m"))
    run.feed("OF" + "F" * 25)  # DOWN at T0+1m, last sweep at T0+26m
    assert run.titles() == [
        "api-health is DOWN",
        "api-health is still DOWN (for 10m)",
        "api-health is still DOWN (for 20m)",
    ]
    reminders = [t for t in run.transitions if t.kind == "reminder"]
    assert [t.at for t in reminders] == [T0 + 11 * MINUTE, T0 + 21 * MINUTE]


def test_a_reminder_keeps_the_monitor_severity_and_since() -> None:
    run = Sweeps.of(monitor(failure_threshold=1, remind_every="2m", severity="critical"))
    run.feed("OFFF")
    reminder = run.alerts[-1]
    assert reminder.title == "api-health is still DOWN (for 2m)"
    assert reminder.severity == "critical"
    assert reminder.since == T0 + MINUTE
    assert reminder.kind == "problem"


def test_degraded_is_reminded_too_at_its_own_severity() -> None:
    run = Sweeps.of(monitor(remind_every="5m", severity="critical"))
    run.feed("O" + "D" * 6)
    assert run.titles() == ["api-health is DEGRADED", "api-health is still DEGRADED (for 5m)"]
    assert run.alerts[-1].severity == "medium"


def test_no_reminder_on_a_sweep_that_does_not_confirm_the_problem() -> None:
    """A monitor on its way back up (ok, below success_threshold) is not nagged."""
    run = Sweeps.of(monitor(failure_threshold=1, success_threshold=5, remind_every="2m"))
    run.feed("OF")
    run.feed("OOOO")
    assert run.titles() == ["api-health is DOWN"]


def test_reminders_stop_after_recovery() -> None:
    run = Sweeps.of(monitor(failure_threshold=1, remind_every="2m"))
    run.feed("OFFFO" + "O" * 10)
    assert run.titles() == [
        "api-health is DOWN",
        "api-health is still DOWN (for 2m)",
        "api-health RECOVERED after 3m",
    ]


def test_no_reminders_during_maintenance() -> None:
    run = Sweeps.of(monitor(failure_threshold=1, remind_every="2m"))
    run.feed("OF")
    run.feed("F" * 10, maintenance={"api-health"})
    assert run.titles() == ["api-health is DOWN"]
    [overdue] = run.feed("F")
    assert overdue.title == "api-health is still DOWN (for 11m)"
