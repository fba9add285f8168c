"""The duties vigil serves, by the flow name each runs under, with the tags its runs carry.

One table read by serving (`deployments.serve`), by commands that run a duty by hand (so a
hand-made run is tagged like a scheduled one, and the runs list filters them together), and
by `prefect.yaml`'s test.
"""

from __future__ import annotations

TAGS: dict[str, list[str]] = {
    "uptime-sweep": ["vigil", "uptime"],
    "weekly-report": ["vigil", "report"],
    "deploy-verify": ["vigil", "deploy"],
    "deploy-rollback": ["vigil", "deploy"],
    "daily-backup": ["vigil", "backup"],
    "weekly-restore-test": ["vigil", "restore-test"],
    "dr-drill": ["vigil", "drill"],
}


def tags_of(flow_name: str) -> list[str]:
    """The tags of a duty's runs; `vigil` alone for a flow that is no duty."""
    return TAGS.get(flow_name, ["vigil"])
