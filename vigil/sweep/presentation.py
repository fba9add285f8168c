"""What a sweep shows people: the run's final state and message, its summary, and the rows
of the `uptime-sweep` table artifact, all from one `SweepDecision`.

The runs list reads the message (`12 up, 1 degraded, 2 down (api, db down)`) and the state's
name (`Outage` when anything is DOWN, `Incomplete` when a shard did not report, `Degraded`
when something is only degraded); scripts read the summary (`vigil sweep --json`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from vigil.config import Monitor
from vigil.durations import format_duration
from vigil.monitoring import DEGRADED, DOWN, UNKNOWN, UP, pending
from vigil.sweep.checks import MonitorCheck
from vigil.sweep.decision import SweepDecision
from vigil.sweep.quorum import LOCATIONS
from vigil.sweep.regional import REGIONAL, shown

STATE_ORDER = {DOWN: 0, DEGRADED: 1, UNKNOWN: 2, UP: 3}
ARTIFACT_KEY = "uptime-sweep"
ARTIFACT_ROWS = 1000
_NAMES_SHOWN = 5


@dataclass(frozen=True)
class RunState:
    """The arguments of `vigil.runtime.outcome` for one sweep."""

    problem: str | None
    summary: dict[str, Any]
    message: str
    degraded: bool


def run_state(
    decision: SweepDecision,
    alerts_sent: int,
    unchecked: list[Monitor],
    not_due: int = 0,
    silent: list[str] | None = None,
) -> RunState:
    """The sweep's final state: `Outage` when anything is DOWN, else `Incomplete` when some
    monitors were not checked (a shard or location did not report), else Completed (named
    `Degraded` when something is degraded). Monitors whose interval has not come round
    (`not_due`) are counted, not checked. `silent` names the runs (`shard 2/4`, `ap-south`,
    `eu-west shard 1/2`) that did not report: `silent_runs` in the summary."""
    tally = counts(decision)  # once: each pass over 100,000 checks is ~0.3 s
    down = _down(decision)
    summary = sweep_summary(decision, alerts_sent, tally, down)
    message = headline(decision, tally, down)
    problem = "Outage" if tally[DOWN] else None
    if unchecked:
        summary["unchecked"] = sorted(m.name for m in unchecked)
        why = "a location did not report" if decision.locations else "a shard did not report"
        message += f"; {len(unchecked)} not checked ({why})"
        problem = problem or "Incomplete"
    summary["silent_runs"] = list(silent or [])
    unheard = sorted({loc for v in decision.locations.values() for loc in v.silent})
    if unheard:
        summary["silent_locations"] = unheard
        message += f"; no report from {', '.join(unheard)}"
    if not_due:
        summary["not_due"] = not_due
        message += f"; {not_due} not due"
    return RunState(problem, summary, message, bool(tally[DEGRADED]))


def regional(decision: SweepDecision) -> list[str]:
    """Monitors UP or DEGRADED although some of their locations saw them fail."""
    return sorted(
        name
        for name, view in decision.locations.items()
        if view.regional and name in decision.after and decision.after[name].state != DOWN
    )


PENDING = "PENDING"


def counts(decision: SweepDecision) -> Counter[str]:
    """Monitors per state; a new monitor whose checks fail counts as PENDING, not UNKNOWN."""
    return Counter(
        PENDING if _pending(decision, c) else decision.after[c.monitor.name].state
        for c in decision.checks
    )


def _pending(decision: SweepDecision, check: MonitorCheck) -> str | None:
    return pending(decision.after[check.monitor.name], check.monitor.failure_threshold)


def headline(
    decision: SweepDecision, tally: Counter[str] | None = None, down: list[str] | None = None
) -> str:
    """`12 up, 1 degraded, 2 down (api, db down)`: the run's message in the runs list."""
    tally = counts(decision) if tally is None else tally
    shown_states = (UP, DEGRADED, DOWN, PENDING, UNKNOWN)
    parts = [f"{tally[s]} {s.lower()}" for s in shown_states if tally[s]]
    down = _down(decision) if down is None else down
    text = ", ".join(parts) or "no monitors"
    if down:
        shown = ", ".join(down[:_NAMES_SHOWN])
        if len(down) > _NAMES_SHOWN:
            shown += f" and {len(down) - _NAMES_SHOWN} more"
        text += f" ({shown} down)"
    warned = regional(decision)
    if warned:
        shown = ", ".join(warned[:_NAMES_SHOWN])
        if len(warned) > _NAMES_SHOWN:
            shown += f" and {len(warned) - _NAMES_SHOWN} more"
        text += f"; failing from some locations: {shown}"
    return text


def sweep_summary(
    decision: SweepDecision,
    alerts_sent: int,
    tally: Counter[str] | None = None,
    down: list[str] | None = None,
) -> dict[str, Any]:
    tally = counts(decision) if tally is None else tally
    return {
        "at": decision.at.isoformat(),
        "monitors": len(decision.checks),
        "up": tally[UP],
        "degraded": tally[DEGRADED],
        "down": tally[DOWN],
        "pending": tally[PENDING],
        "unknown": tally[UNKNOWN],
        "transitions": [f"{t.monitor}: {t.kind}" for t in decision.transitions],
        "alerts": alerts_sent,
        "down_monitors": _down(decision) if down is None else down,
        **({"locations": _location_words(decision)} if decision.locations else {}),
    }


def _location_words(decision: SweepDecision) -> dict[str, str]:
    """What each monitor's locations saw, for monitors not seen alike from all of them."""
    told = {name: _told(decision, name) for name, view in decision.locations.items()}
    return {name: words for name, words in told.items() if words}


def _told(decision: SweepDecision, name: str) -> str:
    """`vigil.sweep.regional.shown` for one monitor, with its episode after this sweep."""
    view = decision.locations.get(name)
    if view is None:
        return ""
    state = decision.after.get(name)
    episode = (state.locations or {}).get(REGIONAL) if state else None
    return shown(view, episode) or ""


def _down(decision: SweepDecision) -> list[str]:
    return sorted(
        c.monitor.name for c in decision.checks if decision.after[c.monitor.name].state == DOWN
    )


def table(decision: SweepDecision) -> tuple[list[dict[str, Any]], int]:
    """The sweep's artifact rows, worst first, capped so a huge sweep stays readable; and
    how many UP monitors the cap left out."""
    ordered = sorted(
        decision.checks,
        key=lambda c: (STATE_ORDER.get(decision.after[c.monitor.name].state, 9), c.monitor.name),
    )
    rows = []
    views = decision.locations
    for check in ordered[:ARTIFACT_ROWS]:
        state = decision.after[check.monitor.name]
        latency = check.obs.response_time
        since = state.since
        view = views.get(check.monitor.name) if views else None
        told = _told(decision, check.monitor.name) or (view.words() if view else "")
        where = {"locations": told} if views else {}
        rows.append(
            {
                "monitor": check.monitor.name,
                "state": (_pending(decision, check) or state.state)
                + (" (maintenance)" if check.monitor.name in decision.maintenance else ""),
                "latency": "-" if latency is None else format_duration(timedelta(seconds=latency)),
                "failed conditions": _failed(check, bool(views)),
                "since": since.strftime("%Y-%m-%d %H:%M UTC") if since else "",
                **where,
            }
        )
    return rows, max(0, len(ordered) - ARTIFACT_ROWS)


def _failed(check: MonitorCheck, located: bool) -> str:
    """The row's failed conditions; the locations' words are their own column."""
    failed = [
        r.detail for r in check.results if not r.ok and not (located and r.condition == LOCATIONS)
    ]
    return "; ".join(failed) or (check.obs.error or "")


def table_description(decision: SweepDecision, hidden: int) -> str:
    """The artifact's description: when, the headline, and what the cap left out."""
    note = f" ({hidden} more UP monitors not shown)" if hidden else ""
    return f"Uptime sweep at {decision.at:%Y-%m-%d %H:%M UTC}: {headline(decision)}{note}"


def story(decision: SweepDecision) -> list[tuple[int, str]]:
    """What the run's logs say happened, as (level, line): each monitor that changed state
    (old -> new, and why), each new monitor counting failures before DOWN; then the count."""
    lines = []
    for t in decision.transitions:
        why = "; ".join(t.failed) or (decision.after[t.monitor].last_error or "")
        level = logging.WARNING if t.state in (DOWN, DEGRADED) else logging.INFO
        change = f"{t.previous} -> {t.state}" if t.previous != t.state else f"still {t.state}"
        lines.append((level, f"{t.monitor}: {change} ({t.kind}){': ' + why if why else ''}"))
    for check in decision.checks:
        reason = _pending(decision, check)
        if reason:
            lines.append((logging.WARNING, f"{check.monitor.name}: {reason}"))
    if not decision.transitions:
        lines.append((logging.INFO, f"no monitor changed state ({headline(decision)})"))
    return lines
