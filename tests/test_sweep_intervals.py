"""Per-monitor intervals: each sweep probes the monitors that are due; thresholds,
reminders and uptime count checks, so a 5-minute monitor with failure_threshold 2 goes
DOWN on its second failed check, ten minutes after its last good one.

The timeline tests drive the core (due, evaluate, decide, the alert plan) with a clock of
their own; the flow tests run real sweeps against a real HTTP target and count its hits.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from flows.sweep import uptime_sweep
from tests.helpers import run, write_config
from vigil.conditions import Observation
from vigil.config import Config, ConfigError, parse_config
from vigil.monitoring import DOWN, UP, MonitorState, mark_alerted, plan_alerts
from vigil.store import CheckResult, HourlyRollup, open_store
from vigil.sweep.checks import evaluate
from vigil.sweep.decision import decide
from vigil.sweep.due import due, has_intervals

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)

CONFIG = """
sweep: {every: 1m}
monitors:
  - {name: db, url: "http://127.0.0.1:9/db"}
  - name: marketing
    url: "http://127.0.0.1:9/www"
    interval: 5m
    failure_threshold: 2
    remind_every: 10m
"""


class Timeline:
    """Sweeps of `config` at times the test chooses, the target failing from `outage`."""

    def __init__(self, config: Config, outage: datetime) -> None:
        self.config = config
        self.outage = outage
        self.states: dict[str, MonitorState] = {}
        self.probed: dict[str, list[datetime]] = {}
        self.alerts: list[str] = []

    def sweep(self, at: datetime) -> None:
        monitors = due(self.config, self.config.monitors, self.states, at)
        failing = at >= self.outage
        observations = [
            Observation(status=503 if failing else 200, connected=True) for _ in monitors
        ]
        checks = evaluate(monitors, observations)
        decision = decide(self.config, checks, self.states, at)
        for monitor in monitors:
            self.probed.setdefault(monitor.name, []).append(at)
        alerts = plan_alerts(
            decision.transitions, self.config.monitors_by_name, decision.after, {}, digest_after=5
        )
        self.alerts += [a.title for a in alerts]
        self.states = mark_alerted(
            decision.after, decision.transitions, self.config.monitors_by_name, at
        )


def test_a_five_minute_monitor_is_probed_every_fifth_sweep_and_down_after_two_checks() -> None:
    line = Timeline(parse_config(CONFIG), outage=T0 + timedelta(seconds=30))
    down_at: dict[str, datetime] = {}
    for k in range(0, 31):
        # Sweeps start a little early or late, as scheduled runs do.
        at = T0 + timedelta(minutes=k, milliseconds=(-300 if k % 2 else 250))
        line.sweep(at)
        for name, state in line.states.items():
            if state.state == DOWN:
                down_at.setdefault(name, at)
    marketing = [round((t - T0).total_seconds() / 60) for t in line.probed["marketing"]]
    assert marketing == [0, 5, 10, 15, 20, 25, 30]
    assert len(line.probed["db"]) == 31
    # The second failed check of each: db at 2 minutes, marketing at 10.
    assert round((down_at["db"] - T0).total_seconds() / 60) == 2
    assert round((down_at["marketing"] - T0).total_seconds() / 60) == 10
    assert line.states["marketing"].consecutive_failures == 6
    # remind_every 10m counts time, confirmed by the monitor's own checks: at 20 and 30.
    assert line.alerts.count("marketing is DOWN") == 1
    reminders = [a for a in line.alerts if a.startswith("marketing is still DOWN")]
    assert len(reminders) == 2, line.alerts


def test_a_sweep_a_little_early_still_probes_a_monitor_that_is_due() -> None:
    config = parse_config(CONFIG)
    checked = MonitorState(monitor="marketing", state=UP, last_checked_at=T0)
    states = {"marketing": checked}
    names = lambda at: [m.name for m in due(config, config.monitors, states, at)]  # noqa: E731
    assert names(T0 + timedelta(minutes=4, seconds=59, milliseconds=600)) == ["db", "marketing"]
    assert names(T0 + timedelta(minutes=4, seconds=20)) == ["db"]
    assert names(T0 + timedelta(minutes=1)) == ["db"]
    assert names(T0 + timedelta(hours=3)) == ["db", "marketing"], "a missed check is due"
    assert [m.name for m in due(config, config.monitors, {}, T0)] == ["db", "marketing"]


def test_without_intervals_every_monitor_is_due() -> None:
    config = parse_config("monitors: [{name: a, url: 'http://127.0.0.1/'}]")
    assert not has_intervals(config)
    assert has_intervals(parse_config(CONFIG))
    same = parse_config("sweep: {every: 2m}\nmonitors: [{name: a, url: 'http://x/', interval: 2m}]")
    assert not has_intervals(same), "an interval equal to sweep.every is every sweep"


def test_an_interval_shorter_than_the_sweeps_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("sweep: {every: 1m}\nmonitors: [{name: a, url: 'http://x/', interval: 30s}]")
    assert caught.value.errors == [
        "monitors[0].interval: 30s is shorter than sweep.every (1m), how often sweeps run"
    ]


# real sweeps -------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_api")
def test_a_sweep_probes_only_the_monitors_that_are_due(tmp_path: Path, http_target) -> None:
    fast = http_target.set("/fast")
    slow = http_target.set("/slow")
    path = write_config(
        tmp_path,
        f"""
        sweep: {{every: 1m}}
        monitors:
          - {{name: fast, url: "{fast}"}}
          - {{name: slow, url: "{slow}", interval: 1h}}
        """,
    )
    first_state, first = run(uptime_sweep, config_path=str(path))
    second_state, second = run(uptime_sweep, config_path=str(path))
    assert first_state.is_completed() and second_state.is_completed()
    assert http_target.hits == {"/fast": 2, "/slow": 1}
    assert first["monitors"] == 2 and "not_due" not in first
    assert second["monitors"] == 1 and second["not_due"] == 1
    assert second_state.message == "1 up; 1 not due"
    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as store, store.session() as session:
        counts = dict(
            session.execute(
                select(CheckResult.monitor, func.count()).group_by(CheckResult.monitor)
            ).all()
        )
        rollups = dict(session.execute(select(HourlyRollup.monitor, HourlyRollup.count)).all())
        states = {s.monitor: s.state for s in store.get_monitor_states().values()}
    assert counts == {"fast": 2, "slow": 1}
    assert sum(v for k, v in rollups.items() if k == "slow") == 1, "uptime counts checks"
    assert states == {"fast": "UP", "slow": "UP"}, "a monitor not due keeps its state"


@pytest.mark.usefixtures("prefect_api")
def test_shards_and_locations_probe_the_monitors_due_at_the_sweeps_time(tmp_path: Path) -> None:
    from flows.sweep_shards import _share

    path = write_config(
        tmp_path,
        """
        sweep: {every: 1m}
        locations: {eu: {pool: p}, us: {pool: p}}
        monitors:
          - {name: a, url: "http://127.0.0.1:9/a", interval: 10m}
          - {name: b, url: "http://127.0.0.1:9/b", interval: 10m, locations: [us]}
          - {name: c, url: "http://127.0.0.1:9/c"}
          - {name: d, url: "http://127.0.0.1:9/d", interval: 10m}
        """,
    )
    from vigil.config import load_config

    config = load_config(path)
    with open_store(config.store.url) as store:
        store.save_monitor_states(
            [
                MonitorState(monitor="a", state=UP, last_checked_at=T0),
                MonitorState(monitor="b", state=UP, last_checked_at=T0 - timedelta(minutes=20)),
            ]
        )
    at = (T0 + timedelta(minutes=3)).isoformat()
    names = lambda monitors: [m.name for m in monitors]  # noqa: E731
    assert names(_share(config, 0, 1, "eu", at)) == ["c", "d"]
    assert names(_share(config, 0, 1, "us", at)) == ["b", "c", "d"]
    assert names(_share(config, 0, 2, None, at)) == ["c"], "shard 1 of 2 holds a and c"
    assert names(_share(config, 1, 2, None, at)) == ["b", "d"]
    assert names(_share(config, 0, 2, None, None)) == ["a", "c"], "no time: all of its share"
