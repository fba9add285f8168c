"""The time arithmetic under every uptime figure: calendar days in the config's timezone
(DST days are 23 or 25 hours), overlapping maintenance counted once, open incidents running
to the end, percentiles by linear interpolation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from vigil.report import Period, Timeline, percentiles

H = timedelta(hours=1)


def frame(rows: list[tuple[object, ...]], columns: list[str]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=columns)
    for column in columns:
        if column in ("start", "end", "started_at", "ended_at"):
            table[column] = pd.to_datetime(table[column], utc=True)
    return table


def timeline(
    period: Period,
    maintenance: Sequence[tuple[object, ...]] = (),
    incidents: Sequence[tuple[object, ...]] = (),
    observed_from: datetime | None = None,
) -> Timeline:
    return Timeline(
        period=period,
        observed_from={"api": observed_from or period.start},
        maintenance=frame(list(maintenance), ["monitor", "start", "end"]),
        incidents=frame(
            list(incidents),
            ["id", "monitor", "state", "started_at", "ended_at", "severity", "cause"],
        ),
    )


def test_a_dst_day_is_as_long_as_it_really_is() -> None:
    """Berlin springs forward on 2026-03-29: that local day has 23 hours."""
    start = datetime(2026, 3, 28, 0, 0, tzinfo=UTC) - H  # local midnight (UTC+1)
    period = Period(start, start + timedelta(days=3) - H, "Europe/Berlin")
    assert period.days() == [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)]
    totals = timeline(period).totals(["monitor", "day"])
    hours = [totals.loc[("api", d)]["measured"] / 3600 for d in period.days()]
    assert hours == [24, 23, 24]


def test_overlapping_windows_are_taken_out_once() -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    period = Period(start, start + timedelta(days=1))
    spans = [("api", start + 2 * H, start + 4 * H), ("api", start + 3 * H, start + 5 * H)]
    outage = [(1, "api", "DOWN", start + 3 * H, start + 6 * H, "high", None)]
    totals = timeline(period, spans, outage).totals().loc["api"]
    assert totals["maintenance"] == 3 * 3600  # 02:00-05:00, not 4h
    assert totals["down"] == 1 * 3600  # only 05:00-06:00 is outside maintenance
    assert totals["measured"] == 21 * 3600


def test_an_open_incident_runs_to_the_end_and_counts_its_time_so_far() -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    period = Period(start, start + 10 * H)
    outage = [(1, "api", "DOWN", start + 8 * H, None, "high", None)]
    line = timeline(period, incidents=outage)
    assert line.totals().loc["api"]["down"] == 2 * 3600
    [row] = line.incident_table().itertuples()
    assert row.ongoing and row.seconds == 2 * 3600 and row.measured_s == 2 * 3600


def test_time_before_the_first_check_is_not_measured() -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    period = Period(start, start + timedelta(days=2))
    totals = timeline(period, observed_from=start + 30 * H).totals(["monitor", "day"])
    assert totals.loc[("api", date(2026, 5, 2))]["measured"] == 18 * 3600
    assert ("api", date(2026, 5, 1)) not in totals.index


def test_an_incident_inside_maintenance_costs_no_measured_time() -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    period = Period(start, start + timedelta(days=1))
    spans = [("api", start + 1 * H, start + 3 * H)]
    outage = [(1, "api", "DOWN", start + 1 * H, start + 2 * H, "high", None)]
    [row] = timeline(period, spans, outage).incident_table().itertuples()
    assert row.measured_s == 0 and row.seconds == 3600


def test_percentiles_interpolate_between_samples() -> None:
    samples = pd.DataFrame({"monitor": ["api"] * 5, "latency_ms": [10.0, 20, 30, 40, 50]})
    [row] = percentiles(samples, ["monitor"]).itertuples()
    assert (row.p50, row.p95, row.p99, row.samples) == (30.0, 48.0, pytest.approx(49.6), 5)


def test_calendar_days_end_with_today_so_far() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    period = Period.calendar_days(now, 90)
    assert len(period.days()) == 90
    assert period.start == datetime(2025, 12, 2, tzinfo=UTC)
    assert period.days()[-1] == date(2026, 3, 1)
