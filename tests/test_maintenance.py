"""Maintenance windows: one-off and recurring, timezones, and which monitors they cover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from vigil.config import Config, MaintenanceWindow
from vigil.maintenance import (
    active_windows,
    in_maintenance,
    monitors_in_maintenance,
    upcoming,
    window_active,
)

BERLIN = "Europe/Berlin"


def window(**settings: Any) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate(settings)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def config(
    own: list[dict[str, Any]] | None = None, shared: list[dict[str, Any]] | None = None
) -> Config:
    return Config.model_validate(
        {
            "maintenance": shared or [],
            "monitors": [
                {"name": "api", "url": "https://api.example.com", "maintenance": own or []},
                {"name": "web", "url": "https://web.example.com"},
            ],
        }
    )


# one-off windows ---------------------------------------------------------------------------

ONE_OFF = {"from": "2024-05-01T02:00:00Z", "to": "2024-05-01T04:00:00Z"}


def test_a_one_off_window_covers_from_its_start_to_before_its_end() -> None:
    w = window(**ONE_OFF)
    assert not window_active(w, utc(2024, 5, 1, 1, 59, 59))
    assert window_active(w, utc(2024, 5, 1, 2, 0))
    assert window_active(w, utc(2024, 5, 1, 3, 59, 59))
    assert not window_active(w, utc(2024, 5, 1, 4, 0))


def test_one_off_times_without_an_offset_are_read_in_the_window_timezone() -> None:
    w = window(**{"from": "2024-05-01T02:00", "to": "2024-05-01T04:00", "timezone": BERLIN})
    assert window_active(w, utc(2024, 5, 1, 0, 0))  # 02:00 in Berlin (CEST, UTC+2)
    assert not window_active(w, utc(2024, 5, 1, 2, 30))


def test_a_naive_check_time_is_taken_as_utc() -> None:
    assert window_active(window(**ONE_OFF), datetime(2024, 5, 1, 3, 0))


# recurring windows ---------------------------------------------------------------------------


def test_a_recurring_window_lasts_its_duration_after_each_cron_fire() -> None:
    w = window(cron="0 3 * * *", duration="30m")
    assert not window_active(w, utc(2024, 5, 1, 2, 59, 59))
    assert window_active(w, utc(2024, 5, 1, 3, 0))
    assert window_active(w, utc(2024, 5, 2, 3, 29, 59))
    assert not window_active(w, utc(2024, 5, 2, 3, 30))


def test_a_fraction_of_a_second_before_the_fire_is_outside() -> None:
    w = window(cron="0 3 * * *", duration="30m")
    assert not window_active(w, utc(2024, 5, 1, 2, 59, 59) + timedelta(microseconds=500_000))


def test_a_recurring_window_follows_the_cron_in_its_timezone() -> None:
    w = window(cron="0 3 * * *", duration="1h", timezone=BERLIN)
    assert window_active(w, utc(2024, 1, 15, 2, 30))  # 03:30 CET (UTC+1)
    assert window_active(w, utc(2024, 7, 15, 1, 30))  # 03:30 CEST (UTC+2)
    assert not window_active(w, utc(2024, 7, 15, 2, 30))  # 04:30 CEST


def test_a_recurring_window_spanning_midnight() -> None:
    w = window(cron="0 23 * * 6", duration="3h")  # Saturday 23:00 to Sunday 02:00
    assert window_active(w, utc(2024, 5, 4, 23, 30))
    assert window_active(w, utc(2024, 5, 5, 1, 59))
    assert not window_active(w, utc(2024, 5, 5, 2, 0))
    assert not window_active(w, utc(2024, 5, 1, 23, 30))  # a Wednesday


def test_a_window_spanning_midnight_in_its_timezone() -> None:
    w = window(cron="30 23 * * *", duration="1h", timezone="America/New_York")
    assert window_active(w, utc(2024, 5, 2, 4, 0))  # 00:00 in New York (EDT, UTC-4)
    assert not window_active(w, utc(2024, 5, 2, 2, 0))  # 22:00 in New York


def test_duration_is_elapsed_time_across_a_dst_change() -> None:
    # 2024-03-31 01:00 CET; clocks jump from 02:00 to 03:00, so 3h ends at 05:00 CEST.
    w = window(cron="0 1 31 3 *", duration="3h", timezone=BERLIN)
    assert window_active(w, utc(2024, 3, 31, 2, 59))
    assert not window_active(w, utc(2024, 3, 31, 3, 0))


def test_day_of_month_and_weekday_are_both_required_as_in_the_schedules() -> None:
    """vigil reads every cron one way (vigil.cron): `1-7 * 0` is the first Sunday of the
    month, as for the drill's schedule, not "days 1-7 or any Sunday"."""
    w = window(cron="0 3 1-7 * 0", duration="1h")
    assert window_active(w, utc(2024, 6, 2, 3, 30))  # Sunday 2 June
    assert not window_active(w, utc(2024, 6, 9, 3, 30))  # the second Sunday
    assert not window_active(w, utc(2024, 6, 3, 3, 30))  # Monday 3 June
    starts = [
        o.start
        for o in upcoming(
            config(shared=[{"cron": "0 3 1-7 * 0", "duration": "1h"}]),
            utc(2024, 5, 20),
            timedelta(days=70),
        )
    ]
    assert starts == [utc(2024, 6, 2, 3), utc(2024, 7, 7, 3)]


# which monitors a window covers ------------------------------------------------------------


def test_a_monitors_own_window_covers_only_that_monitor() -> None:
    cfg = config(own=[ONE_OFF])
    at = utc(2024, 5, 1, 3, 0)
    assert in_maintenance(cfg, "api", at)
    assert not in_maintenance(cfg, "web", at)


def test_a_global_window_covers_every_monitor() -> None:
    cfg = config(shared=[ONE_OFF])
    at = utc(2024, 5, 1, 3, 0)
    assert in_maintenance(cfg, "api", at)
    assert in_maintenance(cfg, "web", at)


def test_a_global_window_with_a_monitors_filter_covers_only_those() -> None:
    cfg = config(shared=[{**ONE_OFF, "monitors": ["web"]}])
    at = utc(2024, 5, 1, 3, 0)
    assert in_maintenance(cfg, "web", at)
    assert not in_maintenance(cfg, "api", at)


def test_a_whole_sweep_sees_the_same_monitors_in_maintenance_as_each_monitor_does() -> None:
    cron = {"cron": "0 2 * * *", "duration": "1h"}
    cases = [
        config(own=[ONE_OFF]),
        config(shared=[ONE_OFF]),
        config(shared=[{**ONE_OFF, "monitors": ["web"]}]),
        config(own=[cron], shared=[{**cron, "monitors": ["web"]}]),
        config(),
    ]
    for cfg in cases:
        for at in (utc(2024, 5, 1, 1, 59), utc(2024, 5, 1, 2, 30), utc(2024, 5, 1, 4, 0)):
            expected = {m.name for m in cfg.monitors if in_maintenance(cfg, m.name, at)}
            assert monitors_in_maintenance(cfg, at) == expected


def test_active_windows_lists_own_windows_then_global_ones() -> None:
    cfg = config(
        own=[{**ONE_OFF, "reason": "own"}],
        shared=[{"cron": "0 * * * *", "duration": "2h", "reason": "shared"}],
    )
    found = active_windows(cfg, "api", utc(2024, 5, 1, 3, 0))
    assert [w.reason for w in found] == ["own", "shared"]


def test_no_window_is_active_outside_every_window() -> None:
    cfg = config(own=[ONE_OFF], shared=[ONE_OFF])
    assert active_windows(cfg, "api", utc(2024, 5, 2, 3, 0)) == []


# upcoming ------------------------------------------------------------------------------------


def test_upcoming_lists_occurrences_in_the_horizon_including_the_current_one() -> None:
    cfg = config(
        own=[{**ONE_OFF, "reason": "migration"}],
        shared=[{"cron": "0 0 * * *", "duration": "1h", "reason": "nightly"}],
    )
    found = upcoming(cfg, utc(2024, 5, 1, 0, 30), timedelta(days=1))
    assert [(o.reason, o.start, o.monitors) for o in found] == [
        ("nightly", utc(2024, 5, 1, 0, 0), ("api", "web")),
        ("migration", utc(2024, 5, 1, 2, 0), ("api",)),
        ("nightly", utc(2024, 5, 2, 0, 0), ("api", "web")),
    ]
    assert found[1].end == utc(2024, 5, 1, 4, 0)


def test_upcoming_leaves_out_finished_and_later_windows() -> None:
    cfg = config(own=[ONE_OFF], shared=[{**ONE_OFF, "from": "2024-06-01", "to": "2024-06-02"}])
    assert upcoming(cfg, utc(2024, 5, 1, 5, 0), timedelta(days=7)) == []


def test_upcoming_names_the_filtered_monitors_of_a_global_window() -> None:
    cfg = config(shared=[{**ONE_OFF, "monitors": ["web"]}])
    [found] = upcoming(cfg, utc(2024, 5, 1, 0, 0), timedelta(days=1))
    assert found.monitors == ("web",)
