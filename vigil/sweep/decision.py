"""The sweep's one decision point: each monitor's new state from this sweep's verdict, and
which fallbacks to look at for the monitors now DOWN.

Only the run that decides (the sweep itself, never a shard) calls `decide`, so a state
moves once per sweep and no alert is planned twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from vigil.config import Config, Monitor
from vigil.maintenance import monitors_in_maintenance
from vigil.monitoring import DOWN, UNKNOWN, MonitorState, Transition, advance
from vigil.sweep import regional
from vigil.sweep.checks import MonitorCheck
from vigil.sweep.quorum import LocationView


@dataclass
class SweepDecision:
    """Everything one sweep decided, ready to record and announce."""

    at: datetime
    checks: list[MonitorCheck]
    before: dict[str, MonitorState]
    after: dict[str, MonitorState]
    transitions: list[Transition] = field(default_factory=list)
    maintenance: set[str] = field(default_factory=set)
    # What each location saw, for monitors probed from several (vigil.sweep.quorum).
    locations: dict[str, LocationView] = field(default_factory=dict)


def decide(
    config: Config,
    checks: list[MonitorCheck],
    before: dict[str, MonitorState],
    at: datetime,
    locations: dict[str, LocationView] | None = None,
) -> SweepDecision:
    """Advance each monitor's state with this sweep's verdict (the quorum's, for a monitor
    probed from several locations: `locations` holds what each saw)."""
    views = locations or {}
    decision = SweepDecision(
        at=at, checks=checks, before=before, after=dict(before), locations=views
    )
    in_maintenance = monitors_in_maintenance(config, at)
    for check in checks:
        name = check.monitor.name
        quiet = name in in_maintenance
        if quiet:
            decision.maintenance.add(name)
        prior = before.get(name) or MonitorState(monitor=name)
        state, transition = advance(
            check.monitor, prior, check.verdict, check.failed, check.obs.error, at, quiet
        )
        if transition is not None:
            decision.transitions.append(transition)
        view = views.get(name)
        if view is not None:
            below = check.monitor.below_quorum or config.sweep.below_quorum
            record, notice = regional.step(
                check.monitor, prior.locations, view, state, at, quiet, below
            )
            state = replace(state, locations=record)
            if notice is not None:
                decision.transitions.append(notice)
        decision.after[name] = state
    return decision


def state_changes(decision: SweepDecision) -> list[tuple[MonitorCheck, str, str]]:
    """(check, state before, state after) for each monitor whose state changed."""
    changes = []
    for check in decision.checks:
        name = check.monitor.name
        before = decision.before[name].state if name in decision.before else UNKNOWN
        after = decision.after[name].state
        if before != after:
            changes.append((check, before, after))
    return changes


def fallback_targets(decision: SweepDecision) -> list[Monitor]:
    """Fallback endpoints to probe: those of monitors DOWN after this sweep, as monitors of
    their own with the primary's settings and conditions."""
    probes = []
    for check in decision.checks:
        monitor = check.monitor
        if monitor.fallback and decision.after[monitor.name].state == DOWN:
            probes.append(
                monitor.model_copy(update={"url": monitor.fallback, "name": monitor.name})
            )
    return probes


def fallback_status(checks: list[MonitorCheck]) -> dict[str, str]:
    """`{monitor: "serving" | "down: <reason>"}` for the alert's fallback field."""
    status = {}
    for check in checks:
        if check.verdict in ("ok", "degraded"):
            status[check.monitor.name] = "serving"
        else:
            reason = "; ".join(check.failed) or check.obs.error or "failed"
            status[check.monitor.name] = f"down: {reason}"
    return status
