"""Checks from several locations, the judgement: a monitor is DOWN only when its quorum of
locations saw it fail; fewer is a regional warning (or DEGRADED when asked); a location that
did not report is named and counted neither way. What each saw reaches the alert, the table,
the run's message and the records.

These drive the core with real evaluations of observations each location could have made;
tests/test_sweep_locations.py runs the same with real workers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil.conditions import Observation
from vigil.config import Config, ConfigError, parse_config
from vigil.monitoring import DEGRADED, DOWN, UP, MonitorState, plan_alerts
from vigil.report import build_report
from vigil.report_render import to_markdown
from vigil.store import Store
from vigil.sweep import presentation
from vigil.sweep.checks import MonitorCheck, evaluate
from vigil.sweep.decision import decide
from vigil.sweep.quorum import LocationView, by_quorum, seen_from
from vigil.sweep.records import check_rows, record_sweep

AT = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
CONFIG = """
locations:
  eu-west: {pool: vigil-eu}
  us-east: {pool: vigil-us}
  ap-south: {pool: vigil, queue: ap-south}
monitors:
  - {name: api, url: "http://127.0.0.1:9/api", failure_threshold: 1}
  - {name: eu-only, url: "http://127.0.0.1:9/eu", locations: [eu-west], failure_threshold: 1}
  - {name: strict, url: "http://127.0.0.1:9/s", quorum: 1, failure_threshold: 1}
"""


def seen(
    config: Config, views: dict[str, dict[str, int | None]]
) -> dict[str, dict[str, MonitorCheck]]:
    """Each location's checks from the HTTP status it got per monitor (None: refused)."""
    found: dict[str, dict[str, MonitorCheck]] = {}
    for location, statuses in views.items():
        monitors = [config.monitor(name) for name in statuses]
        observations = [
            Observation(status=s, connected=True)
            if s is not None
            else Observation(error="connection refused")
            for s in statuses.values()
        ]
        checks = evaluate([m for m in monitors if m], observations)
        found[location] = {c.monitor.name: c for c in checks}
    return found


def judge(config: Config, views: dict[str, dict[str, int | None]]):
    return by_quorum(config, config.monitors, seen(config, views))


def test_down_only_when_the_quorum_of_locations_saw_it_fail() -> None:
    config = parse_config(CONFIG)
    checks, missing, views = judge(
        config,
        {
            "eu-west": {"api": 503, "eu-only": 200, "strict": 200},
            "us-east": {"api": None, "strict": 200},
            "ap-south": {"api": 200, "strict": 200},
        },
    )
    by_name = {c.monitor.name: c for c in checks}
    assert missing == []
    assert by_name["api"].verdict == "failed"
    assert by_name["api"].failed[0] == "DOWN from eu-west and us-east, up from ap-south"
    assert by_name["api"].failed[1] == "[STATUS] 503, expected < 400"
    assert views["api"].quorum == 2 and views["api"].confirmed
    assert by_name["eu-only"].verdict == "ok" and views["eu-only"].saw == {"eu-west": "ok"}
    assert views["strict"].words() == "up from eu-west, us-east and ap-south"


def test_a_failure_below_the_quorum_is_a_regional_warning_or_degraded() -> None:
    views_in = {
        "eu-west": {"api": 503, "strict": 503},
        "us-east": {"api": 200, "strict": 200},
        "ap-south": {"api": 200, "strict": 200},
    }
    config = parse_config(CONFIG)
    checks, missing, views = judge(config, views_in)
    by_name = {c.monitor.name: c for c in checks}
    assert missing == [c for c in config.monitors if c.name == "eu-only"], "not probed: no view"
    assert by_name["api"].verdict == "ok" and views["api"].regional
    assert by_name["api"].failed == [
        "failing from eu-west only; up from us-east and ap-south",
        "eu-west: [STATUS] 503, expected < 400",
    ]
    assert by_name["strict"].verdict == "failed", "quorum: 1 means any location"

    degraded = parse_config(
        CONFIG.replace("monitors:", "sweep: {below_quorum: degraded}\nmonitors:")
    )
    checks, _, _ = judge(degraded, views_in)
    assert {c.monitor.name: c.verdict for c in checks}["api"] == "degraded"

    decision = decide(config, checks, {}, AT, views)
    assert decision.after["api"].state == DEGRADED
    ok_decision = decide(config, judge(config, views_in)[0], {}, AT, views)
    assert ok_decision.after["api"].state == UP
    assert ok_decision.after["api"].locations == {
        **views["api"].record(),
        "regional": {
            "since": AT.isoformat(),
            "count": 1,
            "alerted_at": AT.isoformat(),
            "failing": ["eu-west"],
        },
    }
    message = presentation.run_state(ok_decision, 0, []).message
    assert message.startswith("1 up, 1 down (strict down); failing from some locations: api")


def test_a_location_that_did_not_report_is_named_and_counted_neither_way() -> None:
    config = parse_config(CONFIG)
    checks, missing, views = judge(
        config,
        {"eu-west": {"api": 503, "eu-only": 503, "strict": 200}, "ap-south": {"api": 503}},
    )
    by_name = {c.monitor.name: c for c in checks}
    assert by_name["api"].verdict == "failed", "2 of 3 saw it fail: the quorum of 2 is met"
    assert by_name["api"].failed[0] == "DOWN from eu-west and ap-south, no report from us-east"
    assert views["strict"].silent == ("us-east", "ap-south")
    assert by_name["strict"].verdict == "ok"

    # Only one of three reported, and it saw a failure: nothing to act on, state kept.
    checks, missing, views = judge(config, {"us-east": {"api": None, "strict": 200}})
    assert [m.name for m in missing] == ["api", "eu-only"]
    assert views["api"].words() == "DOWN from us-east, no report from eu-west and ap-south"
    before = {"api": MonitorState(monitor="api", state=DOWN, since=AT - timedelta(minutes=5))}
    decision = decide(config, checks, before, AT, views)
    assert decision.after["api"].state == DOWN, "no RECOVERED from a location that did not see"
    state = presentation.run_state(decision, 0, missing)
    assert state.problem == "Incomplete"
    assert "2 not checked (a location did not report)" in state.message
    assert "no report from ap-south, eu-west" in state.message


def test_the_alert_and_the_records_say_which_locations_saw_what() -> None:
    config = parse_config(CONFIG)
    checks, _, views = judge(
        config,
        {
            "eu-west": {"api": 503, "strict": 200},
            "us-east": {"api": 503, "strict": 200},
            "ap-south": {"api": 200, "strict": 200},
        },
    )
    decision = decide(config, checks, {}, AT, views)
    [alert] = plan_alerts(
        decision.transitions, config.monitors_by_name, decision.after, {}, digest_after=3
    )
    assert alert.title == "api is DOWN"
    assert alert.details[0] == "DOWN from eu-west and us-east, up from ap-south"
    rows, _ = presentation.table(decision)
    assert rows[0]["monitor"] == "api"
    assert rows[0]["locations"] == "DOWN from eu-west and us-east, up from ap-south"
    [api_row] = [r for r in check_rows(decision, None) if r["monitor"] == "api"]
    assert api_row["locations"]["saw"] == {
        "eu-west": "failed",
        "us-east": "failed",
        "ap-south": "ok",
    }
    assert api_row["locations"]["why"]["eu-west"] == "[STATUS] 503, expected < 400"
    assert LocationView.from_record(api_row["locations"]) == views["api"]
    summary = presentation.sweep_summary(decision, 1)
    assert summary["locations"] == {
        "api": "DOWN from eu-west and us-east, up from ap-south",
        "eu-only": "no report from eu-west",
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "monitors: [{name: a, url: 'http://x/', locations: [eu]}]",
            "monitors[0]: locations and quorum need `locations:` in the config",
        ),
        (
            "locations: {eu: {pool: p}}\nmonitors: [{name: a, url: 'http://x/', locations: [us]}]",
            "monitors[0].locations[0]: no location named 'us'",
        ),
        (
            "locations: {eu: {pool: p}, us: {pool: q}}\n"
            "monitors: [{name: a, url: 'http://x/', quorum: 3}]",
            "monitors[0].quorum: 3 is more than its 2 locations",
        ),
        ("locations: {eu: {}}", "locations.eu.pool: required (the work pool its workers poll)"),
        (
            "locations: {local: {pool: p}}",
            "locations.local: is the machine running the sweep; it has no pool",
        ),
        ("locations: {'../x': {pool: p}}", "locations.../x: a location name must be letters"),
    ],
)
def test_bad_locations_are_refused(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert len(caught.value.errors) == 1 and caught.value.errors[0].startswith(error)


def test_the_default_quorum_is_a_majority_of_the_monitors_own_locations() -> None:
    config = parse_config(
        "locations: {a: {pool: p}, b: {pool: p}, c: {pool: p}, d: {pool: p}}\n"
        "monitors:\n  - {name: all, url: 'http://x/'}\n"
        "  - {name: two, url: 'http://x/', locations: [d, a]}\n"
    )
    first, second = config.monitors
    assert config.locations_of(first) == ["a", "b", "c", "d"] and config.quorum_of(first) == 3
    assert config.locations_of(second) == ["a", "d"] and config.quorum_of(second) == 2


def test_incidents_and_the_report_say_where_an_outage_was_seen_from(store: Store) -> None:
    config = parse_config(CONFIG)
    statuses = {
        "eu-west": {"api": 503, "eu-only": 200, "strict": 200},
        "us-east": {"api": 503, "strict": 200},
        "ap-south": {"api": 200, "strict": 200},
    }
    checks, _, views = judge(config, statuses)
    decision = decide(config, checks, {}, AT, views)
    record_sweep(store, decision, decision.after, None)
    report = build_report(config, store, AT + timedelta(hours=1), days=1)
    [incident] = report.incidents
    assert seen_from(incident["cause"]) == "DOWN from eu-west and us-east, up from ap-south"
    text = to_markdown(report)
    assert "| monitor | state | started | lasted | seen from |" in text
    assert "| DOWN from eu-west and us-east, up from ap-south |" in text
    assert seen_from("[STATUS] 503, expected < 400") is None
    assert seen_from(None) is None


def test_degraded_below_the_quorum_says_failing_from_where_never_down() -> None:
    """The DEGRADED alert, the incident and the report say what `vigil status` says: the
    failure was seen from too few locations to be DOWN."""
    config = parse_config(CONFIG.replace("monitors:", "sweep: {below_quorum: degraded}\nmonitors:"))
    statuses = {
        "eu-west": {"api": 503, "eu-only": 200, "strict": 200},
        "us-east": {"api": 200, "strict": 200},
    }
    checks, _, views = judge(config, statuses)
    decision = decide(config, checks, {}, AT, views)
    assert decision.after["api"].state == DEGRADED
    where = "failing from eu-west only; up from us-east; no report from ap-south"
    alerts = plan_alerts(
        decision.transitions, config.monitors_by_name, decision.after, {}, digest_after=3
    )
    [alert] = [a for a in alerts if a.title.startswith("api ")]
    assert alert.details[0] == where, alert.details
    assert not any("DOWN" in line for line in alert.details)
    cause = "; ".join(decision.after["api"].failed_conditions)
    assert seen_from(cause) == where
    assert cause == f"{where}; eu-west: [STATUS] 503, expected < 400"
    assert alert.details == [where, "eu-west: [STATUS] 503, expected < 400"]


def test_silent_runs_name_the_runs_not_the_locations() -> None:
    config = parse_config(CONFIG)
    checks, missing, views = judge(config, {"us-east": {"api": 200, "strict": 200}})
    decision = decide(config, checks, {}, AT, views)
    state = presentation.run_state(decision, 0, missing, silent=["eu-west shard 2/2"])
    assert state.summary["silent_runs"] == ["eu-west shard 2/2"]
    assert state.summary["silent_locations"] == ["ap-south", "eu-west"]
