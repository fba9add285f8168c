"""The duties vigil serves, by the flow name each runs under, with the tags its runs carry.

One table read by serving (`deployments.serve`), by commands that run a duty by hand (so a
hand-made run is tagged like a scheduled one, and the runs list filters them together), by
`prefect.yaml`'s test, and by notification routing (a duty's `routes:` key is its tag).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

TAGS: dict[str, list[str]] = {
    "uptime-sweep": ["vigil", "uptime"],
    "weekly-report": ["vigil", "report"],
    "deploy-verify": ["vigil", "deploy"],
    "deploy-rollback": ["vigil", "deploy"],
    "daily-backup": ["vigil", "backup"],
    "weekly-restore-test": ["vigil", "restore-test"],
    "dr-drill": ["vigil", "drill"],
    "daily-housekeeping": ["vigil", "housekeeping"],
}


def tags_of(flow_name: str) -> list[str]:
    """The tags of a duty's runs; `vigil` alone for a flow that is no duty."""
    return TAGS.get(flow_name, ["vigil"])


# A duty's name under `routes:` is its own tag (`routes: {deploy: {low: [deployments]}}`):
# the word the runs list filters on, one for both deploy flows.
ROUTE_NAMES: tuple[str, ...] = tuple(sorted({tags[-1] for tags in TAGS.values()} - {"vigil"}))


def route_name(flow_name: str) -> str | None:
    """The `routes:` key of the duty an alert comes from (`Alert.duty`, its flow's name);
    None for alerts of no duty (`vigil notify-test`)."""
    name = tags_of(flow_name)[-1]
    return name if name in ROUTE_NAMES else None


# How each duty's runs are named: a word an operator recognises, what the run is about when
# it is about one thing (a database), and when it was due, to the second.
LABELS: dict[str, str] = {
    "uptime-sweep": "sweep",
    "daily-backup": "backup",
    "weekly-restore-test": "restore-test",
    "dr-drill": "drill",
    "weekly-report": "report",
    "daily-housekeeping": "housekeeping",
}


def run_name(flow_name: str, parameters: dict[str, Any], due: datetime) -> str:
    """`sweep 2026-12-05 19:54:17`, `backup main 2026-12-05 02:00:00`: unique per second and
    the same whether `vigil serve` names a scheduled run ahead of time or the run names
    itself when it starts."""
    label = LABELS.get(flow_name, flow_name)
    about = parameters.get("database")
    stamp = due.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{label} {about} {stamp}" if about else f"{label} {stamp}"


def this_run_name() -> str:
    """`flow_run_name` for a duty's flow: its `run_name`, due at the run's scheduled start
    (when it was created, for a run started by hand)."""
    from prefect.runtime import flow_run

    due = flow_run.scheduled_start_time or datetime.now(UTC)
    return run_name(flow_run.flow_name or "", dict(flow_run.parameters or {}), due)
