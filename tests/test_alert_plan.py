"""The alert plan: one notification per problem, dependents folded in, digests for storms."""

from __future__ import annotations

from datetime import timedelta

from tests.monitor_helpers import STATUS_503, T0, Sweeps, monitor
from vigil.monitoring import (
    DOWN,
    UP,
    MonitorState,
    Transition,
    mark_alerted,
    plan_alerts,
)


def fleet(count: int, **settings: object) -> Sweeps:
    names = [f"svc-{i:02}" for i in range(count)]
    run = Sweeps.of(*(monitor(n, failure_threshold=1, **settings) for n in names))
    run.sweep(dict.fromkeys(names, "ok"))
    return run


def stack(**settings: object) -> Sweeps:
    """db <- api <- web, and worker <- db: one root, three dependents."""
    run = Sweeps.of(
        monitor("db", failure_threshold=1, **settings),
        monitor("api", failure_threshold=1, depends_on=["db"], **settings),
        monitor("web", failure_threshold=1, depends_on=["api"], **settings),
        monitor("worker", failure_threshold=1, depends_on=["db"], **settings),
    )
    run.sweep(dict.fromkeys(run.monitors, "ok"))
    return run


# texts ---------------------------------------------------------------------------------------


def test_a_down_alert_says_what_failed_and_where() -> None:
    run = Sweeps.of(monitor(failure_threshold=2, fallback="https://static.example.com"))
    [alert] = run.feed("OFF", fallback={"api-health": "serving"})
    assert alert.title == "api-health is DOWN"
    assert alert.subject == "api-health"
    assert alert.duty == "uptime-sweep"
    assert alert.summary == "api-health failed 2 consecutive checks"
    assert alert.details == [STATUS_503]
    assert alert.fields == {"fallback": "serving"}
    assert alert.since == run.state().since


def test_the_fallback_field_says_also_down_or_not_configured() -> None:
    with_fallback = Sweeps.of(monitor(failure_threshold=1, fallback="https://static.example.com"))
    [down] = with_fallback.feed("OF", fallback={"api-health": "down: connection refused"})
    assert down.fields["fallback"] == "also down"
    assert down.details == [STATUS_503, "fallback down: connection refused"]
    without = Sweeps.of(monitor(failure_threshold=1))
    [alert] = without.feed("OF")
    assert alert.fields["fallback"] == "not configured"


def test_a_recovery_alert_has_no_fallback_but_the_down_duration() -> None:
    run = Sweeps.of(monitor(failure_threshold=1, fallback="https://static.example.com"))
    run.feed("OFFFF")
    [alert] = run.feed("O")
    assert alert.fields == {"down for": "4m"}
    assert alert.summary == "api-health is UP again after 4m DOWN"


def test_duty_and_flow_run_url_are_passed_through() -> None:
    down = Transition("a", "down", UP, DOWN, T0, None, [STATUS_503], "high", False)
    [alert] = plan_alerts(
        [down],
        {"a": monitor("a")},
        {"a": MonitorState("a", DOWN, since=T0)},
        {},
        digest_after=3,
        duty="uptime-sweep-eu",
        flow_run_url="https://prefect.example.com/runs/1",
    )
    assert alert.duty == "uptime-sweep-eu"
    assert alert.flow_run_url == "https://prefect.example.com/runs/1"


def test_an_error_without_failed_conditions_becomes_the_detail() -> None:
    down = Transition("a", "down", UP, DOWN, T0, None, [], "high", False)
    state = MonitorState("a", DOWN, since=T0, last_error="connection refused")
    [alert] = plan_alerts([down], {"a": monitor("a")}, {"a": state}, {}, digest_after=3)
    assert alert.details == ["error: connection refused"]


# depends_on ----------------------------------------------------------------------------------


def test_dependents_fold_into_the_root_cause_alert() -> None:
    run = stack()
    alerts = run.sweep(dict.fromkeys(run.monitors, "failed"))
    [alert] = alerts
    assert alert.title == "db is DOWN"
    assert alert.fields["also affected"] == "api, web, worker"


def test_a_dependent_going_down_while_its_root_is_already_down_is_quiet() -> None:
    run = stack()
    run.sweep({"db": "failed", "api": "ok", "web": "ok", "worker": "ok"})
    assert run.sweep({"db": "failed", "api": "failed", "web": "ok", "worker": "ok"}) == []
    assert run.states["api"].state == DOWN


def test_a_dependent_is_listed_in_the_roots_next_reminder() -> None:
    run = stack(remind_every="2m")
    run.sweep({"db": "failed", "api": "ok", "web": "ok", "worker": "ok"})
    run.sweep({"db": "failed", "api": "failed", "web": "ok", "worker": "ok"})
    [reminder] = run.sweep({"db": "failed", "api": "failed", "web": "ok", "worker": "ok"})
    assert reminder.title == "db is still DOWN (for 2m)"
    assert reminder.fields["also affected"] == "api"


def test_a_dependent_recovering_with_its_root_is_quiet() -> None:
    run = stack()
    run.sweep(dict.fromkeys(run.monitors, "failed"))
    [alert] = run.sweep(dict.fromkeys(run.monitors, "ok"))
    assert alert.title == "db RECOVERED after 1m"
    assert "also recovered" not in alert.fields  # they were never announced on their own


def test_an_announced_dependent_recovering_with_its_root_is_listed_in_its_recovery() -> None:
    run = stack()
    run.sweep({"db": "ok", "api": "failed", "web": "ok", "worker": "ok"})  # api alone: pages
    run.sweep({"db": "failed", "api": "failed", "web": "ok", "worker": "ok"})
    [alert] = run.sweep(dict.fromkeys(run.monitors, "ok"))
    assert alert.title == "db RECOVERED after 1m"
    assert alert.fields["also recovered"] == "api"


def test_a_dependent_that_outlasts_its_root_gets_its_own_alert() -> None:
    run = stack()
    run.sweep({"db": "failed", "api": "failed", "web": "ok", "worker": "ok"})
    alerts = run.sweep({"db": "ok", "api": "failed", "web": "ok", "worker": "ok"})
    assert sorted(a.title for a in alerts) == ["api is DOWN", "db RECOVERED after 1m"]


def test_monitors_down_in_a_dependency_cycle_each_page() -> None:
    run = Sweeps.of(
        monitor("a", failure_threshold=1, depends_on=["b"]),
        monitor("b", failure_threshold=1, depends_on=["a"]),
    )
    run.sweep({"a": "ok", "b": "ok"})
    alerts = run.sweep({"a": "failed", "b": "failed"})
    assert sorted(a.title for a in alerts) == ["a is DOWN", "b is DOWN"]


def test_a_dependency_that_is_up_does_not_hide_anything() -> None:
    run = stack()
    alerts = run.sweep({"db": "ok", "api": "failed", "web": "failed", "worker": "ok"})
    [alert] = alerts
    assert alert.title == "api is DOWN"
    assert alert.fields["also affected"] == "web"


# digests -------------------------------------------------------------------------------------


def test_twenty_monitors_going_down_in_one_sweep_send_one_digest() -> None:
    run = fleet(20)
    alerts = run.sweep(dict.fromkeys(run.monitors, "failed"))
    [digest] = alerts
    assert digest.title == "20 monitors are DOWN"
    assert digest.kind == "problem"
    assert len(digest.details) == 20
    for name in run.monitors:
        assert any(line.startswith(f"{name}: {STATUS_503}") for line in digest.details)


def test_a_digest_line_mentions_a_configured_fallback() -> None:
    run = fleet(4, fallback="https://static.example.com")
    [digest] = run.sweep(dict.fromkeys(run.monitors, "failed"), fallback={"svc-00": "serving"})
    assert digest.details[0] == f"svc-00: {STATUS_503} (fallback: serving)"
    assert digest.details[1] == f"svc-01: {STATUS_503} (fallback: not checked)"


def test_a_digest_pages_at_the_highest_severity_among_its_monitors() -> None:
    run = Sweeps.of(
        *(monitor(f"low-{i}", failure_threshold=1, severity="low") for i in range(4)),
        monitor("core", failure_threshold=1, severity="critical"),
    )
    run.sweep(dict.fromkeys(run.monitors, "ok"))
    [digest] = run.sweep(dict.fromkeys(run.monitors, "failed"))
    assert digest.severity == "critical"


def test_a_long_digest_is_truncated_with_a_count_of_the_rest() -> None:
    run = fleet(60)
    [digest] = run.sweep(dict.fromkeys(run.monitors, "failed"))
    assert len(digest.details) == 51
    assert digest.details[-1] == "and 10 more"
    assert digest.summary.endswith("and 50 more")


def test_up_to_digest_after_transitions_are_sent_one_by_one() -> None:
    run = fleet(3)
    alerts = run.sweep(dict.fromkeys(run.monitors, "failed"))
    assert [a.title for a in alerts] == ["svc-00 is DOWN", "svc-01 is DOWN", "svc-02 is DOWN"]


def test_a_mixture_below_the_digest_threshold_is_sent_separately() -> None:
    run = fleet(3)
    run.sweep({"svc-00": "failed", "svc-01": "ok", "svc-02": "ok"})
    alerts = run.sweep({"svc-00": "ok", "svc-01": "failed", "svc-02": "failed"})
    assert sorted(a.title for a in alerts) == [
        "svc-00 RECOVERED after 1m",
        "svc-01 is DOWN",
        "svc-02 is DOWN",
    ]


def test_digests_are_per_kind() -> None:
    run = fleet(8)
    first, second = list(run.monitors)[:4], list(run.monitors)[4:]
    run.sweep({**dict.fromkeys(first, "failed"), **dict.fromkeys(second, "ok")})
    alerts = run.sweep({**dict.fromkeys(first, "ok"), **dict.fromkeys(second, "failed")})
    assert [a.title for a in alerts] == ["4 monitors are DOWN", "4 monitors RECOVERED"]
    recovered = alerts[1]
    assert recovered.kind == "recovered"
    assert recovered.details[0] == "svc-00: was DOWN for 1m"


def test_folded_dependents_do_not_count_toward_a_digest() -> None:
    run = Sweeps.of(
        monitor("db", failure_threshold=1),
        *(monitor(f"app-{i}", failure_threshold=1, depends_on=["db"]) for i in range(10)),
        digest_after=3,
    )
    run.sweep(dict.fromkeys(run.monitors, "ok"))
    [alert] = run.sweep(dict.fromkeys(run.monitors, "failed"))
    assert alert.title == "db is DOWN"
    assert alert.fields["also affected"].count("app-") == 10


# mark_alerted --------------------------------------------------------------------------------


def test_mark_alerted_marks_what_was_announced_only() -> None:
    monitors = {"a": monitor("a"), "b": monitor("b"), "c": monitor("c", depends_on=["b"])}
    states = {n: MonitorState(n, DOWN, since=T0) for n in monitors}
    at = T0 + timedelta(minutes=5)
    transitions = [
        Transition("a", "down", UP, DOWN, at, None, [STATUS_503], "high", True),
        Transition("b", "down", UP, DOWN, at, None, [STATUS_503], "high", False),
        Transition("c", "down", UP, DOWN, at, None, [STATUS_503], "high", False),
    ]
    marked = mark_alerted(states, transitions, monitors, at)
    assert {n: s.last_alert_at for n, s in marked.items()} == {"a": None, "b": at, "c": None}
    assert states["b"].last_alert_at is None  # the input is left alone
