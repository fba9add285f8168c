"""prefect.yaml declares the same deployments `vigil serve` builds, so a team moving from one
process to workers (`prefect deploy --all`) gets the same duties, schedules and limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments.serve import build_deployments
from vigil.config import parse_config

ROOT = Path(__file__).parents[1]

# A config that asks for every duty (sharded sweeps included), with every schedule left at
# its default: prefect.yaml carries the defaults (workers read their config at run time).
EVERY_DUTY = """
sweep: {shards: 2}
monitors:
  - {name: api, url: 'http://127.0.0.1:8765/health'}
  - {name: web, url: 'http://127.0.0.1:8765/'}
databases: [{name: main, url: 'postgresql://127.0.0.1/app'}]
deploys: {web: {health: {url: 'http://127.0.0.1:8765/health'}}}
"""


def declared() -> dict[str, dict[str, Any]]:
    """prefect.yaml's deployments by name (YAML anchors resolved)."""
    project = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return {d["name"]: d for d in project["deployments"]}


def served() -> dict[str, Any]:
    """What `vigil serve` registers for a config that declares every duty."""
    return {d.name: d for d in build_deployments(parse_config(EVERY_DUTY), "/etc/vigil.yaml")}


def schedule_of(raw: dict[str, Any]) -> tuple[Any, ...]:
    """A prefect.yaml schedule entry reduced to what decides when runs happen."""
    if "cron" in raw:
        return ("cron", raw["cron"], raw.get("timezone"), raw.get("day_or", True))
    return ("interval", float(raw["interval"]))


def served_schedule(schedule: Any) -> tuple[Any, ...]:
    if hasattr(schedule, "cron"):
        return ("cron", schedule.cron, schedule.timezone, schedule.day_or)
    return ("interval", schedule.interval.total_seconds())


def test_prefect_yaml_declares_exactly_the_served_duties() -> None:
    assert sorted(declared()) == sorted(served())


@pytest.mark.parametrize("name", sorted(declared()))
def test_each_deployment_matches_vigil_serve(name: str) -> None:
    from prefect.flows import load_flow_from_entrypoint

    ours, theirs = declared()[name], served()[name]
    path, function = ours["entrypoint"].split(":")
    flow: Any = load_flow_from_entrypoint(f"{ROOT / path}:{function}")
    assert flow.name == theirs.flow_name
    served_path, served_function = theirs.entrypoint.split(":")
    assert (function, (ROOT / path).resolve()) == (served_function, Path(served_path).resolve())

    assert ours["tags"] == theirs.tags
    assert ours["description"] == theirs.description
    assert [schedule_of(s) for s in ours["schedules"]] == [
        served_schedule(s.schedule) for s in theirs.schedules
    ]
    # Workers read $VIGIL_CONFIG; every other parameter is the same as when served.
    assert ours["parameters"] == {k: v for k, v in theirs.parameters.items() if k != "config_path"}
    if theirs.concurrency_limit is None:
        assert "concurrency_limit" not in ours
    else:
        assert ours["concurrency_limit"] == {
            "limit": theirs.concurrency_limit,
            "collision_strategy": theirs.concurrency_options.collision_strategy.value,
        }
    assert ours["work_pool"]["name"] == "vigil"


def test_workers_run_the_code_of_their_own_checkout() -> None:
    """The pull step enters the checkout named by the worker's environment at run time."""
    project = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert project["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $VIGIL_CHECKOUT }}"}}
    ]
    assert all("pull" not in d for d in project["deployments"])
