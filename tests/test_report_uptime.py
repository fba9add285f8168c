"""`vigil report`'s monitor figures over 30 days of generated history, exact, on SQLite and
PostgreSQL: uptime weighted by time, maintenance excluded, DEGRADED apart, downtime,
incidents, MTTR, latency percentiles, and the SLO's error budget."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pytest

from tests.history import END, STANDARD, Expected, Seeded, seeded_store
from vigil.config import Config
from vigil.report import MonitorSummary, Report, build_report


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    server = request.getfixturevalue("pg_server_url") if request.param == "postgresql" else None
    with seeded_store(STANDARD, request.param, tmp_path_factory.mktemp("uptime"), server) as s:
        yield s


@pytest.fixture(scope="module")
def report(seeded: Seeded) -> Report:
    return build_report(STANDARD.config(), seeded.store, END, days=30)


def monitor(report: Report, name: str) -> MonitorSummary:
    return next(m for m in report.monitors if m.name == name)


def test_uptime_is_weighted_by_time_with_maintenance_taken_out(report: Report) -> None:
    api = monitor(report, "api")
    assert api.maintenance_minutes == Expected.API_MAINTENANCE_MIN
    assert api.measured_minutes == Expected.API_MEASURED_MIN
    assert api.downtime_minutes == Expected.API_DOWN_MIN
    measured, down = Expected.API_MEASURED_MIN, Expected.API_DOWN_MIN
    assert api.uptime_pct == pytest.approx(100 * (measured - down) / measured, rel=1e-12)


def test_recurring_maintenance_windows_are_taken_out_too(report: Report) -> None:
    web = monitor(report, "web")
    assert web.maintenance_minutes == Expected.WEB_MAINTENANCE_MIN
    assert web.measured_minutes == 30 * 1440 - Expected.WEB_MAINTENANCE_MIN
    assert web.downtime_minutes == Expected.WEB_DOWN_MIN


def test_degraded_time_counts_as_up_and_is_shown_apart(report: Report) -> None:
    api, search = monitor(report, "api"), monitor(report, "search")
    assert api.degraded_minutes == Expected.API_DEGRADED_MIN
    assert api.degraded_pct == pytest.approx(100 * 120 / Expected.API_MEASURED_MIN, rel=1e-12)
    assert search.degraded_minutes == Expected.SEARCH_DEGRADED_MIN
    assert search.uptime_pct == 100.0
    assert search.degraded_incidents == 1 and search.incidents == 0


def test_incidents_count_when_they_cost_measured_time(report: Report) -> None:
    """The outage wholly inside a maintenance window is not an incident; the one that
    began before the period or ran past a window's end is."""
    api = monitor(report, "api")
    assert api.incidents == Expected.API_INCIDENTS
    assert api.degraded_incidents == 1
    listed = [i for i in report.incidents if i["monitor"] == "api" and i["state"] == "DOWN"]
    assert sorted(i["minutes"] for i in listed) == [20, 50, 50, 60]


def test_mttr_is_the_mean_full_length_of_resolved_outages(report: Report) -> None:
    assert monitor(report, "api").mttr_minutes == Expected.API_MTTR_MIN
    web = monitor(report, "web")
    assert web.incidents == 1  # still open: counted, but no recovery to average yet
    assert web.mttr_minutes is None
    [ongoing] = [i for i in report.incidents if i["monitor"] == "web"]
    assert ongoing["ongoing"] and ongoing["minutes"] == Expected.WEB_DOWN_MIN


def test_a_monitor_is_measured_from_its_first_check(report: Report) -> None:
    db = monitor(report, "db")
    assert db.measured_minutes == Expected.DB_MEASURED_MIN
    assert db.uptime_pct == 100.0


def test_slo_error_budget_for_the_period(report: Report) -> None:
    slo = monitor(report, "api").slo
    assert slo is not None
    budget = 0.001 * Expected.API_MEASURED_MIN  # 99.9% of 43,020 measured minutes
    assert slo.target_pct == 99.9
    assert slo.budget_minutes == pytest.approx(budget, rel=1e-12)
    assert slo.used_minutes == Expected.API_DOWN_MIN
    assert slo.remaining_minutes == pytest.approx(budget - Expected.API_DOWN_MIN, rel=1e-12)
    assert slo.remaining_pct == pytest.approx(100 * (budget - 140) / budget, rel=1e-12)
    assert not slo.met
    assert [m.name for m in report.slo_missed] == ["api"]
    assert monitor(report, "web").slo is None  # no target of its own and no global one


def test_slo_budget_left_when_the_target_is_met(seeded: Seeded) -> None:
    """Over the last 4 days api lost only the 30 minutes past its own window's end: within
    a 99% target's budget of 1% of 5,700 measured minutes."""
    config = STANDARD.config()
    relaxed = [
        m.model_copy(update={"slo": 99.0}) if m.name == "api" else m for m in config.monitors
    ]
    report = build_report(config.model_copy(update={"monitors": relaxed}), seeded.store, END, 4)
    api = monitor(report, "api")
    assert api.measured_minutes == 4 * 1440 - 60
    assert api.slo is not None and api.slo.met
    assert api.slo.budget_minutes == pytest.approx(57.0, rel=1e-12)
    assert api.slo.remaining_minutes == pytest.approx(27.0, rel=1e-12)
    assert api.slo.remaining_pct == pytest.approx(100 * 27 / 57, rel=1e-12)
    assert report.slo_missed == []


def test_a_global_slo_covers_monitors_without_their_own(seeded: Seeded) -> None:
    if "slo" not in Config.model_fields:
        pytest.skip("the config has no global `slo` key yet (requested from config.py)")
    report = build_report(STANDARD.config(extra="slo: 99.5%\n"), seeded.store, END, days=30)
    web, api = monitor(report, "web").slo, monitor(report, "api").slo
    assert web is not None and web.target_pct == 99.5 and web.met
    assert api is not None and api.target_pct == 99.9  # its own target wins


def test_latency_percentiles_of_answered_checks_outside_maintenance(report: Report) -> None:
    api = monitor(report, "api")
    assert api.latency_ms == {"p50": 100.0, "p95": 400.0, "p99": 400.0}
    # 4,320 sweeps in 30 days, less 18 in maintenance and 16 failed (no answer) outside it.
    assert api.latency_samples == 4320 - 18 - 16


def test_daily_uptime_splits_at_midnight(report: Report) -> None:
    daily = report.daily_uptime.set_index(["monitor", "day"])
    first = daily.loc[("api", date(2026, 1, 30))]  # the period starts at noon
    assert (first["measured"], first["down"]) == (720 * 60, 40 * 60)
    outage_day = daily.loc[("api", date(2026, 2, 9))]
    assert outage_day["uptime_pct"] == pytest.approx(100 * (1440 - 50) / 1440, rel=1e-12)
    assert daily.loc[("search", date(2026, 2, 27))]["degraded"] == 180 * 60


def test_the_report_is_one_json_document(report: Report) -> None:
    document = json.loads(json.dumps(report.as_dict()))
    assert document["period"] == {
        "start": "2026-01-30T12:00:00+00:00",
        "end": "2026-03-01T12:00:00+00:00",
        "days": 30.0,
        "timezone": "UTC",
    }
    assert [m["name"] for m in document["monitors"]] == ["api", "web", "search", "db"]
    assert document["monitors"][0]["slo"]["met"] is False
