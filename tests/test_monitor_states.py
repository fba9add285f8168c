"""The monitor state machine: verdicts, going DOWN, blips, recovering, no alert storms."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.monitor_helpers import MINUTE, STATUS_503, T0, Sweeps, monitor
from vigil.conditions import ConditionResult, Observation
from vigil.monitoring import DOWN, UNKNOWN, UP, MonitorState, advance, verdict


def health(status: str) -> Observation:
    return Observation(status=200, body=json.dumps({"status": status}).encode())


def passed(condition: str) -> ConditionResult:
    return ConditionResult(condition, True, f"{condition} passed")


def failed(condition: str) -> ConditionResult:
    return ConditionResult(condition, False, f"{condition} failed")


# verdict ---------------------------------------------------------------------------------


def test_all_conditions_passing_is_ok() -> None:
    assert verdict([passed("[STATUS] == 200")], health("ok")) == "ok"


def test_a_failing_condition_is_failed() -> None:
    results = [passed("[BODY].status == ok"), failed("[STATUS] == 200")]
    assert verdict(results, health("ok")) == "failed"


def test_a_body_saying_degraded_makes_a_passing_check_degraded() -> None:
    assert verdict([passed("[STATUS] == 200")], health("degraded")) == "degraded"


def test_body_conditions_failing_because_the_body_says_degraded_is_degraded() -> None:
    results = [passed("[STATUS] == 200"), failed("[BODY].status == ok")]
    assert verdict(results, health("Degraded")) == "degraded"


def test_a_non_body_failure_wins_over_a_degraded_body() -> None:
    results = [failed("[STATUS] == 200"), failed("[BODY].status == ok")]
    assert verdict(results, health("degraded")) == "failed"


def test_a_failing_body_condition_without_a_degraded_body_is_failed() -> None:
    assert verdict([failed("[BODY].status == ok")], health("down")) == "failed"


# going DOWN -------------------------------------------------------------------------------


def test_a_new_monitor_starts_unknown() -> None:
    assert MonitorState("api-health").state == UNKNOWN


def test_goes_down_only_after_failure_threshold_consecutive_failures() -> None:
    run = Sweeps.of(monitor(failure_threshold=3))
    run.feed("O")
    assert run.feed("FF") == []
    assert run.state().state == UP
    assert run.state().consecutive_failures == 2
    [alert] = run.feed("F")
    assert alert.title == "api-health is DOWN"
    assert run.state().state == DOWN
    assert run.state().since == T0 + 3 * MINUTE


def test_a_single_blip_does_not_alert() -> None:
    run = Sweeps.of(monitor(failure_threshold=2))
    assert run.feed("OFOFOFO") == []
    assert run.state().state == UP
    assert run.transitions == []


def test_a_blip_is_still_recorded_on_the_state() -> None:
    run = Sweeps.of(monitor(failure_threshold=2))
    run.feed("OF")
    state = run.state()
    assert (state.consecutive_failures, state.failed_conditions) == (1, [STATUS_503])
    assert state.last_checked_at == T0 + MINUTE


def test_an_ok_sweep_resets_the_failure_count() -> None:
    run = Sweeps.of(monitor(failure_threshold=3))
    run.feed("OFFOFF")
    assert run.state().state == UP
    assert run.state().consecutive_failures == 2


def test_a_failure_threshold_of_one_goes_down_on_the_first_failure() -> None:
    run = Sweeps.of(monitor(failure_threshold=1))
    run.feed("O")
    assert [a.title for a in run.feed("F")] == ["api-health is DOWN"]


def test_an_unknown_monitor_goes_down_when_the_threshold_is_reached() -> None:
    run = Sweeps.of(monitor(failure_threshold=2))
    assert run.feed("F") == []
    assert run.state().state == UNKNOWN
    [alert] = run.feed("F")
    assert alert.title == "api-health is DOWN"
    assert run.transitions[0].previous == UNKNOWN


def test_the_down_transition_carries_the_failed_conditions_and_severity() -> None:
    run = Sweeps.of(monitor(failure_threshold=1, severity="critical"))
    run.feed("OF")
    [transition] = run.transitions
    assert transition.kind == "down"
    assert transition.failed == [STATUS_503]
    assert transition.severity == "critical"
    assert transition.down_for is None
    assert run.alerts[0].details == [STATUS_503]
    assert run.alerts[0].severity == "critical"


def test_no_repeat_alerts_while_down() -> None:
    run = Sweeps.of(monitor(failure_threshold=1))
    run.feed("OF")
    assert run.feed("F" * 30) == []
    assert run.titles() == ["api-health is DOWN"]
    assert run.state().consecutive_failures == 31


def test_advance_does_not_modify_the_state_it_is_given() -> None:
    before = MonitorState("api-health")
    after, _ = advance(monitor(), before, "failed", [STATUS_503], "boom", T0, False)
    assert before == MonitorState("api-health")
    assert after.last_error == "boom"


# recovering ------------------------------------------------------------------------------


def test_unknown_to_up_is_immediate_and_quiet() -> None:
    run = Sweeps.of(monitor(success_threshold=3))
    assert run.feed("O") == []
    assert run.state().state == UP
    assert run.state().since == T0
    assert run.transitions == []


def test_recovers_after_success_threshold_with_the_down_duration() -> None:
    run = Sweeps.of(monitor(failure_threshold=1, success_threshold=2))
    run.feed("OF" + "F" * 10)  # DOWN at T0+1m
    assert run.feed("O") == []
    assert run.state().state == DOWN
    [alert] = run.feed("O")  # the second success, at T0+13m
    assert alert.title == "api-health RECOVERED after 12m"
    assert alert.kind == "recovered"
    assert alert.fields["down for"] == "12m"
    recovered = run.transitions[-1]
    assert (recovered.kind, recovered.previous, recovered.state) == ("recovered", DOWN, UP)
    assert recovered.down_for == timedelta(minutes=12)
    assert run.state().since == T0 + 13 * MINUTE


def test_a_failure_while_recovering_restarts_the_success_count() -> None:
    run = Sweeps.of(monitor(failure_threshold=1, success_threshold=2))
    run.feed("OFOFO")
    assert run.state().state == DOWN
    run.feed("O")
    assert run.state().state == UP


def test_going_down_again_after_a_recovery_alerts_again() -> None:
    run = Sweeps.of(monitor(failure_threshold=1))
    run.feed("OFOF")
    assert run.titles() == [
        "api-health is DOWN",
        "api-health RECOVERED after 1m",
        "api-health is DOWN",
    ]
