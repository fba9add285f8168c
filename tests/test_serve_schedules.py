"""What `vigil serve` registers: one deployment per duty the config declares, on its schedule."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from deployments.serve import build_deployments
from vigil.config import parse_config


def test_example_config_serves_each_duty_on_its_schedule() -> None:
    example = Path(__file__).parents[1] / "vigil" / "example.yaml"
    config = parse_config(example.read_text())
    deployments = {d.name: d for d in build_deployments(config, "/etc/vigil.yaml")}
    assert set(deployments) == {
        "uptime-sweep",
        "daily-backup",
        "weekly-restore-test",
        "dr-drill",
        "weekly-report",
    }
    backup = deployments["daily-backup"].schedules[0].schedule
    assert backup.cron == "0 2 * * *" and backup.timezone == "UTC"
    assert deployments["uptime-sweep"].schedules[0].schedule.interval.total_seconds() == 60
    for deployment in deployments.values():
        assert deployment.parameters["config_path"] == "/etc/vigil.yaml"
        assert deployment.concurrency_limit == 1 or deployment.concurrency_limit.limit == 1


def test_removed_duties_are_not_scheduled() -> None:
    config = parse_config("monitors: [{name: a, url: 'http://127.0.0.1/'}]")
    names = [d.name for d in build_deployments(config, "/x.yaml")]
    assert names == ["uptime-sweep", "weekly-report"]


def test_first_sunday_of_the_month_really_means_that() -> None:
    """Cron ORs day-of-month and day-of-week; vigil's schedules AND them (day_or=False)."""
    from prefect._vendor.croniter import croniter

    config = parse_config("databases: [{name: main, url: 'postgresql://127.0.0.1/x'}]")
    deployments = {d.name: d for d in build_deployments(config, "/x.yaml")}
    schedule = deployments["dr-drill"].schedules[0].schedule
    assert (schedule.cron, schedule.day_or, schedule.timezone) == ("0 3 1-7 * 0", False, "UTC")
    start = datetime(2026, 11, 24, tzinfo=UTC)
    dates = croniter(schedule.cron, start, day_or=schedule.day_or)
    upcoming = [dates.get_next(datetime) for _ in range(12)]
    assert all(d.weekday() == 6 and d.day <= 7 for d in upcoming)
    assert [d.month for d in upcoming] == [12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert upcoming[0] == datetime(2026, 12, 6, 3, tzinfo=UTC)
