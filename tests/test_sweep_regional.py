"""Regional notices: a monitor failing from fewer locations than its quorum is told once, at
low severity, reminded like any alert and closed when every location sees it up again; it
never pages as DOWN. Driven through the one decision point and the alert plan over several
sweeps, with each location's check evaluated from a real observation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.test_sweep_quorum import judge
from vigil.config import Config, parse_config
from vigil.monitoring import DOWN, UP, MonitorState, mark_alerted, plan_alerts
from vigil.sweep.decision import SweepDecision, decide
from vigil.sweep.regional import REGIONAL

AT = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
CONFIG = """
locations:
  eu-west: {{pool: vigil-eu}}
  us-east: {{pool: vigil-us}}
  ap-south: {{pool: vigil, queue: ap-south}}
monitors:
  - {{name: api, url: "http://127.0.0.1:9/api", failure_threshold: {threshold},
      remind_every: 30m, severity: critical}}
"""
ALL_UP = {"eu-west": {"api": 200}, "us-east": {"api": 200}, "ap-south": {"api": 200}}
EU_FAILS = {"eu-west": {"api": 503}, "us-east": {"api": 200}, "ap-south": {"api": 200}}


class Sweeps:
    """Sweeps in a row over one config, each seeing what `views` says, states carried on."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.states: dict[str, MonitorState] = {}
        self.at = AT

    def run(self, views: dict[str, dict[str, int | None]], minutes: int = 1) -> SweepDecision:
        self.at += timedelta(minutes=minutes)
        checks, _, located = judge(self.config, views)
        decision = decide(self.config, checks, self.states, self.at, located)
        self.alerts = plan_alerts(
            decision.transitions, self.config.monitors_by_name, decision.after, {}, digest_after=3
        )
        self.states = mark_alerted(
            decision.after, decision.transitions, self.config.monitors_by_name, self.at
        )
        return decision


def sweeps(threshold: int = 1, extra: str = "") -> Sweeps:
    return Sweeps(parse_config(CONFIG.format(threshold=threshold) + extra))


def test_failing_from_one_location_is_told_once_at_low_severity_and_never_as_down() -> None:
    s = sweeps()
    s.run(EU_FAILS)
    [alert] = s.alerts
    assert alert.title == "api is failing from eu-west only"
    assert alert.severity == "low", "a critical monitor's regional failure does not page"
    assert alert.kind == "problem"
    assert alert.summary == (
        "failing from eu-west only; up from us-east and ap-south: below its quorum, so not DOWN"
    )
    assert alert.details == ["eu-west: [STATUS] 503, expected < 400"]
    assert s.states["api"].state == UP and s.states["api"].last_alert_at is None
    assert s.config.route("uptime-sweep", alert.severity) == s.config.route("x", "low")

    s.run(EU_FAILS)
    assert s.alerts == [], "told once, not every sweep"
    s.run(EU_FAILS, minutes=30)
    [reminder] = s.alerts
    assert reminder.title == "api is still failing from eu-west only (for 31m)"
    assert reminder.severity == "low"

    s.run(ALL_UP)
    [back] = s.alerts
    assert back.kind == "recovered"
    assert back.title == "api is up again from every location"
    assert back.summary == "api is up from every location again after 32m failing from eu-west"
    assert REGIONAL not in (s.states["api"].locations or {})
    s.run(ALL_UP)
    assert s.alerts == []


def test_the_threshold_holds_a_regional_notice_back_like_a_down() -> None:
    s = sweeps(threshold=2)
    s.run(EU_FAILS)
    assert s.alerts == []
    s.run(ALL_UP)
    assert s.alerts == [], "a blip that was never told has no recovery either"
    s.run(EU_FAILS)
    assert s.alerts == []
    s.run(EU_FAILS)
    assert [a.title for a in s.alerts] == ["api is failing from eu-west only"]


def test_a_failing_location_gone_silent_is_not_a_recovery() -> None:
    s = sweeps()
    s.run(EU_FAILS)
    assert len(s.alerts) == 1
    s.run({"us-east": {"api": 200}, "ap-south": {"api": 200}})
    assert s.alerts == [], "eu-west did not report: nobody knows it came back"
    assert s.states["api"].locations[REGIONAL]["failing"] == ["eu-west"]
    s.run(ALL_UP)
    assert [a.kind for a in s.alerts] == ["recovered"]


def test_reaching_the_quorum_pages_down_and_ends_the_regional_episode_quietly() -> None:
    s = sweeps()
    s.run(EU_FAILS)
    both = {"eu-west": {"api": 503}, "us-east": {"api": 503}, "ap-south": {"api": 200}}
    s.run(both)
    [down] = s.alerts
    assert down.title == "api is DOWN" and down.severity == "critical"
    assert s.states["api"].state == DOWN
    assert REGIONAL not in (s.states["api"].locations or {})
    s.run(ALL_UP)
    assert [a.title for a in s.alerts] == ["api RECOVERED after 1m"], "one recovery, not two"


def test_no_regional_notice_when_below_quorum_makes_it_degraded_or_in_maintenance() -> None:
    s = sweeps(extra="sweep: {below_quorum: degraded}\n")
    s.run(EU_FAILS)
    assert [a.title for a in s.alerts] == ["api is DEGRADED"], "its own alert says where"
    assert "failing from eu-west only; up from us-east and ap-south" in s.alerts[0].details

    window = "maintenance: [{from: '2026-12-07T10:00:00Z', to: '2026-12-07T10:05:00Z'}]\n"
    s = sweeps(extra=window)
    s.run(EU_FAILS)
    assert s.alerts == [], "held back in maintenance"
    s.run(EU_FAILS, minutes=5)
    assert [a.title for a in s.alerts] == ["api is failing from eu-west only"], "told after"
