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
        "daily-housekeeping",
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
    assert names == ["uptime-sweep", "weekly-report", "daily-housekeeping"]


def test_first_sunday_of_the_month_really_means_that() -> None:
    """Cron ORs day-of-month and day-of-week; vigil's schedules AND them (day_or=False),
    as vigil.cron reads every cron (maintenance windows too)."""
    from itertools import islice

    from vigil.cron import DAY_OR, fires_after

    config = parse_config("databases: [{name: main, url: 'postgresql://127.0.0.1/x'}]")
    deployments = {d.name: d for d in build_deployments(config, "/x.yaml")}
    schedule = deployments["dr-drill"].schedules[0].schedule
    assert (schedule.cron, schedule.day_or, schedule.timezone) == ("0 3 1-7 * 0", DAY_OR, "UTC")
    start = datetime(2026, 11, 24, tzinfo=UTC)
    upcoming = list(islice(fires_after(schedule.cron, start), 12))
    assert all(d.weekday() == 6 and d.day <= 7 for d in upcoming)
    assert [d.month for d in upcoming] == [12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert upcoming[0] == datetime(2026, 12, 6, 3, tzinfo=UTC)


def test_a_duty_removed_from_the_config_is_no_longer_scheduled(prefect_api: None) -> None:
    """Against a real Prefect API: the served deployments of the old config exist with their
    schedules; restarting with a config without databases pauses the backup family's."""
    from prefect.client.orchestration import get_client

    from deployments.serve import retire_removed

    before = parse_config(
        "monitors: [{name: a, url: 'http://127.0.0.1/'}]\n"
        "databases: [{name: main, url: 'postgresql://127.0.0.1/x'}]"
    )
    for deployment in build_deployments(before, "/x.yaml"):
        deployment.apply()
    after = parse_config("monitors: [{name: a, url: 'http://127.0.0.1/'}]")

    retired = retire_removed([d.name for d in build_deployments(after, "/x.yaml")])

    assert retired == ["daily-backup", "dr-drill", "weekly-restore-test"]
    with get_client(sync_client=True) as client:
        paused = {
            d.name: d.paused
            for d in client.read_deployments()
            if d.name in ("daily-backup", "uptime-sweep")
        }
    assert paused == {"daily-backup": True, "uptime-sweep": False}
    assert retire_removed([d.name for d in build_deployments(after, "/x.yaml")]) == []
    # a duty put back in the config is scheduled again when served
    [backup] = [d for d in build_deployments(before, "/x.yaml") if d.name == "daily-backup"]
    backup.apply()
    with get_client(sync_client=True) as client:
        assert not next(d for d in client.read_deployments() if d.name == "daily-backup").paused


def test_the_drills_schedule_reads_as_the_first_sunday_in_the_ui() -> None:
    config = parse_config("databases: [{name: main, url: 'postgresql://127.0.0.1/x'}]")
    deployments = {d.name: d for d in build_deployments(config, "/x.yaml")}
    description = deployments["dr-drill"].description
    assert "between day 1 and 7 of the month, only on Sunday" in description, description
    assert "or on Sunday" not in description
    assert "day-of-month and day-of-week both apply" in description
    assert "only on Monday (UTC; cron `0 8 * * 1`)" in deployments["weekly-report"].description


def test_scheduled_runs_carry_their_names_before_they_start(prefect_api: None) -> None:
    """The scheduler names runs `gentle-otter`; serving renames them to what they will run
    as, so the runs list and a run's first log line read `sweep <due time>`."""
    from datetime import timedelta

    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    from deployments.serve import name_scheduled_runs

    config = parse_config("monitors: [{name: a, url: 'http://127.0.0.1/'}]")
    [sweep] = [d for d in build_deployments(config, "/x.yaml") if d.name == "uptime-sweep"]
    deployment_id = sweep.apply()
    due = datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(
            deployment_id, state=Scheduled(scheduled_time=due), name="gentle-otter"
        )
        assert name_scheduled_runs(["uptime-sweep"]) >= 1
        assert client.read_flow_run(run.id).name == "sweep 2031-05-04 03:02:01"
        assert name_scheduled_runs(["uptime-sweep"]) == 0, "named once"
        later = client.create_flow_run_from_deployment(
            deployment_id, state=Scheduled(scheduled_time=due + timedelta(seconds=1))
        )
        name_scheduled_runs(["uptime-sweep"])
        assert client.read_flow_run(later.id).name == "sweep 2031-05-04 03:02:02", "unique"
        for each in (run, later):
            client.delete_flow_run(each.id)


_NAMER = """
import sys, threading
from vigil.runtime import use_api
use_api(sys.argv[1])
from deployments.serve import _keep_naming
_keep_naming(["uptime-sweep"], every=0.5)
threading.Event().wait(float(sys.argv[2]))
"""


def test_the_naming_thread_talks_to_the_api_this_process_was_pointed_at(
    prefect_api: None, tmp_path: Path
) -> None:
    """`vigil up` points Prefect at its server through a settings context
    (vigil.runtime.use_api), which a bare thread does not see; the thread that names
    scheduled runs must talk to that server, not start a temporary one of its own. Run in
    a process of its own, as `vigil up` is (the harness would lend it a global context)."""
    import os
    import subprocess
    import sys
    import time as clock

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL
    from prefect.states import Scheduled

    config = parse_config("monitors: [{name: a, url: 'http://127.0.0.1/'}]")
    [sweep] = [d for d in build_deployments(config, "/x.yaml") if d.name == "uptime-sweep"]
    deployment_id = sweep.apply()
    due = datetime(2032, 6, 5, 4, 3, 2, tzinfo=UTC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(
            deployment_id, state=Scheduled(scheduled_time=due), name="gentle-otter"
        )
        namer = subprocess.Popen(
            [sys.executable, "-c", _NAMER, str(PREFECT_API_URL.value()), "40"],
            env=env,
            cwd=Path(__file__).parents[1],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = clock.monotonic() + 40
            while client.read_flow_run(run.id).name == "gentle-otter":
                assert namer.poll() is None and clock.monotonic() < deadline, "never named"
                clock.sleep(0.5)
            assert client.read_flow_run(run.id).name == "sweep 2032-06-05 04:03:02"
        finally:
            namer.kill()
            output = namer.communicate()[0]
            client.delete_flow_run(run.id)
    assert "temporary server" not in output, output
