"""Monitor states and the alert plan: pure decisions, no I/O, so every rule is testable.

Each sweep gives every monitor a verdict (`ok`, `degraded`, `failed`); `advance` folds it
into the monitor's persisted `MonitorState` (UP / DEGRADED / DOWN / UNKNOWN) and returns
the `Transition` worth telling someone about, if any. `plan_alerts` turns one sweep's
transitions into as few alerts as tell the whole story: maintenance silences, dependents
fold into their root cause, and many monitors failing at once become one digest.
`mark_alerted` then records what was announced, which is what drives reminders and the
late first alert of a problem that began in maintenance.

Rules, in one place:

- failure_threshold consecutive `failed` verdicts take a monitor DOWN (UNKNOWN included).
- success_threshold guards every exit from DOWN. In DOWN a `degraded` verdict counts toward
  it like an `ok` one (the service answers again), and the monitor leaves DOWN for UP or
  DEGRADED according to the verdict that completes the streak. A restarting service often
  answers "degraded" while it warms up and then fails once more; leaving DOWN on that first
  answer would send DEGRADED and DOWN again. With the default success_threshold of 1 the
  exit is immediate.
- UP or UNKNOWN -> DEGRADED is immediate: the service says so itself, there is no probe
  noise to debounce. DEGRADED -> UP takes success_threshold consecutive `ok` verdicts (a
  `degraded` one restarts the count), so a service flapping between ok and degraded gives
  one DEGRADED alert, not one per flap. DEGRADED -> UP and UNKNOWN -> UP are quiet.
- `last_alert_at` is None exactly while the current problem (DOWN or DEGRADED) has not been
  announced: entering DOWN or DEGRADED clears it, `mark_alerted` sets it. Entering UP keeps
  it, so a recovery can tell whether anyone heard about the outage it ends.
- Nagging needs a sweep that confirms the problem (`failed` in DOWN, `degraded` in
  DEGRADED) outside maintenance: then an unannounced problem is announced late (its
  DOWN/DEGRADED was held back by maintenance or by a dependency that was down), and an
  announced one is reminded every `remind_every`. A monitor on its way back up is not nagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from vigil.alert import SEVERITIES, Alert, Severity
from vigil.conditions import ConditionResult, Observation, body_status
from vigil.config import Monitor
from vigil.durations import format_duration

__all__ = [
    "DEGRADED",
    "DOWN",
    "UNKNOWN",
    "UP",
    "MonitorState",
    "MonitorVerdict",
    "Transition",
    "advance",
    "mark_alerted",
    "plan_alerts",
    "verdict",
]

UP = "UP"
DEGRADED = "DEGRADED"
DOWN = "DOWN"
UNKNOWN = "UNKNOWN"
_PROBLEMS = (DOWN, DEGRADED)
# The verdict that confirms each problem state, and so allows nagging about it.
_CONFIRMS = {DOWN: "failed", DEGRADED: "degraded"}
_MAX_LINES = 50
_DIGEST_NAMES = 10

MonitorVerdict = Literal["ok", "degraded", "failed"]
Kind = Literal[
    "down",
    "recovered",
    "degraded",
    "reminder",
    "regional",
    "regional-reminder",
    "regional-recovered",
]
# A failure seen from fewer locations than the quorum (vigil.sweep.regional): low-severity
# notices that never fold into a root cause and never count as the monitor's own alert.
REGIONAL_KINDS = ("regional", "regional-reminder", "regional-recovered")


class Counted(Protocol):
    """What `pending` reads: a sweep's MonitorState or the store's row of it."""

    state: str
    consecutive_failures: int
    failed_conditions: list[str]
    last_error: str | None


def pending(state: Counted, failure_threshold: int) -> str | None:
    """Why a monitor with no state yet is not DOWN although its checks fail: a new monitor
    counts failures up to its threshold first (`pending: 1 of 2 failures: [STATUS] 503`).
    None when there is nothing to tell."""
    if state.state != UNKNOWN or state.consecutive_failures <= 0:
        return None
    why = "; ".join(state.failed_conditions) or state.last_error or "check failed"
    return f"pending: {state.consecutive_failures} of {failure_threshold} failures: {why}"


def verdict(results: list[ConditionResult], obs: Observation) -> MonitorVerdict:
    """One sweep's word on a monitor. A health endpoint saying {"status": "degraded"} makes
    the monitor DEGRADED, not DOWN, even when a `[BODY]` condition failed only for that."""
    failing = [r for r in results if not r.ok]
    if body_status(obs) == "degraded" and all("[BODY]" in r.condition for r in failing):
        return "degraded"
    return "failed" if failing else "ok"


@dataclass
class MonitorState:
    """What persists between sweeps (the store's monitor_states row)."""

    monitor: str
    state: str = UNKNOWN
    since: datetime | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_checked_at: datetime | None = None
    last_alert_at: datetime | None = None
    last_error: str | None = None
    failed_conditions: list[str] = field(default_factory=list)
    # What each location saw at the last check (vigil.sweep.quorum), for monitors probed
    # from several locations.
    locations: dict[str, Any] | None = None


@dataclass(frozen=True)
class Transition:
    """An event worth telling someone about.

    `previous == state` for a reminder or a late first alert. `down_for` is how long the
    monitor was DOWN (recovered, DOWN -> DEGRADED) or has been in its problem (reminder).
    """

    monitor: str
    kind: Kind
    previous: str
    state: str
    at: datetime
    down_for: timedelta | None
    failed: list[str]
    severity: Severity
    in_maintenance: bool
    # For a regional notice: what the locations saw ("failing from eu-west only; up from
    # us-east and ap-south").
    where: str = ""


# --- one monitor, one sweep --------------------------------------------------------------


def advance(
    monitor: Monitor,
    state: MonitorState,
    verdict: str,
    failed: list[str],
    error: str | None,
    at: datetime,
    in_maintenance: bool,
) -> tuple[MonitorState, Transition | None]:
    """The monitor's state after this sweep's verdict, and what to tell about it.

    Maintenance does not freeze the state (the status page and the history stay true);
    it flags the transition so the plan holds the alert back. The input is not modified.
    """
    failures, successes = _counters(state, verdict)
    checked = replace(
        state,
        consecutive_failures=failures,
        consecutive_successes=successes,
        last_checked_at=at,
        last_error=error,
        failed_conditions=list(failed),
    )
    target = _target(monitor, checked, verdict)
    if target != state.state:
        return _enter(monitor, checked, target, at, in_maintenance)
    return checked, _nag(monitor, checked, verdict, at, in_maintenance)


def _counters(state: MonitorState, verdict: str) -> tuple[int, int]:
    """(failures, successes). A success is what argues for leaving the current state:
    in DOWN any answer, ok or degraded; elsewhere only ok."""
    if verdict == "failed":
        return state.consecutive_failures + 1, 0
    answered = verdict == "ok" or state.state == DOWN
    return 0, state.consecutive_successes + 1 if answered else 0


def _target(monitor: Monitor, state: MonitorState, verdict: str) -> str:
    if verdict == "failed":
        return DOWN if state.consecutive_failures >= monitor.failure_threshold else state.state
    settled = state.consecutive_successes >= monitor.success_threshold
    if state.state in _PROBLEMS and not settled:
        return state.state
    return UP if verdict == "ok" else DEGRADED


def _enter(
    monitor: Monitor, state: MonitorState, target: str, at: datetime, in_maintenance: bool
) -> tuple[MonitorState, Transition | None]:
    previous = state.state
    down_for = at - state.since if previous == DOWN and state.since else None
    entered = replace(state, state=target, since=at)
    if target in _PROBLEMS:
        entered = replace(entered, last_alert_at=None, consecutive_successes=0)
    kind = _entry_kind(previous, target)
    if kind is None:
        return entered, None
    severity = _degraded_severity(monitor) if kind == "degraded" else monitor.severity
    transition = Transition(
        monitor=monitor.name,
        kind=kind,
        previous=previous,
        state=target,
        at=at,
        down_for=down_for,
        failed=list(state.failed_conditions),
        severity=severity,
        in_maintenance=in_maintenance,
    )
    return entered, transition


def _entry_kind(previous: str, target: str) -> Kind | None:
    if target == DOWN:
        return "down"
    if target == DEGRADED:
        return "degraded"
    return "recovered" if previous == DOWN else None


def _nag(
    monitor: Monitor, state: MonitorState, verdict: str, at: datetime, in_maintenance: bool
) -> Transition | None:
    """A late first alert or a reminder, on a sweep that confirms the problem."""
    if in_maintenance or _CONFIRMS.get(state.state) != verdict:
        return None
    is_down = state.state == DOWN
    if state.last_alert_at is None:
        kind: Kind = "down" if is_down else "degraded"
        lasted = None
    elif monitor.remind_every and at - state.last_alert_at >= monitor.remind_every:
        kind = "reminder"
        lasted = at - state.since if state.since else None
    else:
        return None
    return Transition(
        monitor=monitor.name,
        kind=kind,
        previous=state.state,
        state=state.state,
        at=at,
        down_for=lasted,
        failed=list(state.failed_conditions),
        severity=monitor.severity if is_down else _degraded_severity(monitor),
        in_maintenance=False,
    )


def _degraded_severity(monitor: Monitor) -> Severity:
    """Degraded is at most "medium" (it still answers), and never above the monitor's own
    severity: a degraded low-severity monitor must not page louder than its outage would."""
    medium: Severity = "medium"
    return max(monitor.severity, medium, key=SEVERITIES.index)


# --- one sweep, all monitors ---------------------------------------------------------------


@dataclass(frozen=True)
class _Page:
    """A transition that is announced, with the dependents folded into it."""

    transition: Transition
    also: tuple[str, ...] = ()


def plan_alerts(
    transitions: list[Transition],
    monitors: dict[str, Monitor],
    states: dict[str, MonitorState],
    fallback_status: dict[str, str],
    *,
    digest_after: int,
    duty: str = "uptime-sweep",
    flow_run_url: str | None = None,
) -> list[Alert]:
    """The alerts for one sweep: one per announced transition, or one digest per kind when
    more than `digest_after` of that kind remain. `states` are the states after the sweep;
    `fallback_status` maps a DOWN monitor to "serving" or "down: <reason>"."""
    pages = _pages(transitions, monitors, states)
    render = _Renderer(monitors, states, fallback_status, duty, flow_run_url)
    alerts: list[Alert] = []
    for kind in ("down", "degraded", "reminder", "recovered", *REGIONAL_KINDS):
        group = [p for p in pages if p.transition.kind == kind]
        if len(group) > digest_after:
            alerts.append(render.digest(kind, group))
        else:
            alerts += [render.single(p) for p in group]
    return alerts


def mark_alerted(
    states: dict[str, MonitorState],
    transitions: list[Transition],
    monitors: dict[str, Monitor],
    at: datetime,
) -> dict[str, MonitorState]:
    """`states` with last_alert_at set to `at` for each transition `plan_alerts` announces
    on its own or in a digest. Dependents folded into a root's alert are not marked: if
    they outlast their root, they get their own late alert."""
    marked = dict(states)
    for page in _pages(transitions, monitors, states):
        if page.transition.kind in REGIONAL_KINDS:
            continue  # its own bookkeeping, in the state's locations record
        name = page.transition.monitor
        if name in marked:
            marked[name] = replace(marked[name], last_alert_at=at)
    return marked


def _pages(
    transitions: list[Transition],
    monitors: dict[str, Monitor],
    states: dict[str, MonitorState],
) -> list[_Page]:
    """The announced transitions. A problem of a monitor whose dependency is DOWN folds into
    the root cause's alert as "also affected"; a recovery in the same sweep as its root's
    announced recovery folds in as "also recovered". Only roots page."""
    audible = [t for t in transitions if _audible(t, states)]
    down = {name for name, s in states.items() if s.state == DOWN}
    recovering = {t.monitor for t in audible if t.kind == "recovered"}
    graph = _Dependencies(monitors)
    folded: dict[tuple[str, str], list[str]] = {}
    roots: list[Transition] = []
    for t in audible:
        if t.kind in REGIONAL_KINDS:
            roots.append(t)
            continue
        causes = recovering if t.kind == "recovered" else down
        root_causes = graph.roots(t.monitor, causes)
        if not root_causes:
            roots.append(t)
        for root in root_causes:
            folded.setdefault((_also(t), root), []).append(t.monitor)
    return [_Page(t, tuple(folded.get((_also(t), t.monitor), ()))) for t in roots]


def _audible(transition: Transition, states: dict[str, MonitorState]) -> bool:
    """A recovery is told only if its outage was (else it is news of nothing), and then even
    in maintenance, since it closes a page someone already got."""
    if transition.kind == "regional-recovered":
        return True  # planned only when its notice was sent
    if transition.kind != "recovered":
        return not transition.in_maintenance
    state = states.get(transition.monitor)
    return state is not None and state.last_alert_at is not None


class _Dependencies:
    """depends_on, followed transitively; cycles are tolerated (config allows them)."""

    def __init__(self, monitors: dict[str, Monitor]) -> None:
        self._monitors = monitors
        self._reach: dict[str, frozenset[str]] = {}

    def upstream(self, name: str) -> frozenset[str]:
        if name not in self._reach:
            seen: set[str] = set()
            todo = [name]
            while todo:
                monitor = self._monitors.get(todo.pop())
                fresh = [d for d in monitor.depends_on if d not in seen] if monitor else []
                seen.update(fresh)
                todo += fresh
            self._reach[name] = frozenset(seen - {name})
        return self._reach[name]

    def blockers(self, name: str, causes: set[str]) -> set[str]:
        """Upstream monitors among `causes`, except those in a cycle with `name`: in a cycle
        of failing monitors nobody is the other's cause, so each must still page."""
        return {d for d in self.upstream(name) & causes if name not in self.upstream(d)}

    def roots(self, name: str, causes: set[str]) -> set[str]:
        return {b for b in self.blockers(name, causes) if not self.blockers(b, causes)}


# --- alert texts -------------------------------------------------------------------------------


class _Renderer:
    def __init__(
        self,
        monitors: dict[str, Monitor],
        states: dict[str, MonitorState],
        fallback_status: dict[str, str],
        duty: str,
        flow_run_url: str | None,
    ) -> None:
        self._monitors = monitors
        self._states = states
        self._fallback_status = fallback_status
        self._duty = duty
        self._flow_run_url = flow_run_url

    def single(self, page: _Page) -> Alert:
        t = page.transition
        if t.kind in REGIONAL_KINDS:
            return self._regional(t)
        state = self._states.get(t.monitor)
        details = list(t.failed)
        if not details and state and state.last_error:
            details.append(f"error: {state.last_error}")
        fallback = self._fallback_status.get(t.monitor, "")
        if t.state == DOWN and fallback.startswith("down"):
            details.append(f"fallback {fallback}")
        return Alert(
            title=_title(t),
            severity=t.severity,
            duty=self._duty,
            subject=t.monitor,
            summary=self._summary(t),
            details=_truncated(details),
            since=state.since if state else None,
            flow_run_url=self._flow_run_url,
            kind="recovered" if t.kind == "recovered" else "problem",
            fields=self._fields(page),
        )

    def _regional(self, t: Transition) -> Alert:
        """A failure below the quorum: a low notice that says where, never a DOWN page."""
        state = self._states.get(t.monitor)
        if t.kind == "regional-recovered":
            summary = f"{t.monitor} is up from every location again after {_lasted(t)}"
            if t.where:
                summary += f" {t.where}"
        else:
            summary = f"{t.where}: below its quorum, so not DOWN"
        return Alert(
            title=_title(t),
            severity=t.severity,
            duty=self._duty,
            subject=t.monitor,
            summary=summary,
            details=_truncated(list(t.failed)),
            since=None if state is None else state.since,
            flow_run_url=self._flow_run_url,
            kind="recovered" if t.kind == "regional-recovered" else "problem",
            fields={"locations": t.where} if t.where else {},
        )

    def digest(self, kind: str, pages: list[_Page]) -> Alert:
        transitions = [p.transition for p in pages]
        names = [t.monitor for t in transitions]
        shown = ", ".join(names[:_DIGEST_NAMES])
        if len(names) > _DIGEST_NAMES:
            shown += f" and {len(names) - _DIGEST_NAMES} more"
        sinces = [s.since for n in names if (s := self._states.get(n)) and s.since]
        return Alert(
            title=_digest_title(kind, transitions),
            severity=min((t.severity for t in transitions), key=SEVERITIES.index),
            duty=self._duty,
            subject=f"{len(names)} monitors",
            summary=shown,
            details=_truncated([self._digest_line(p) for p in pages]),
            since=min(sinces, default=None),
            flow_run_url=self._flow_run_url,
            kind="recovered" if kind == "recovered" else "problem",
            fields={},
        )

    def _summary(self, t: Transition) -> str:
        if t.kind == "recovered":
            return f"{t.monitor} is UP again after {_lasted(t)} DOWN"
        if t.kind == "reminder":
            return f"{t.monitor} has been {t.state} for {_lasted(t)}"
        if t.kind == "degraded":
            after = f" after being DOWN for {_lasted(t)}" if t.down_for else ""
            return f"{t.monitor} answers but reports itself degraded{after}"
        state = self._states.get(t.monitor)
        count = state.consecutive_failures if state else 0
        return f"{t.monitor} failed {count} consecutive checks"

    def _fields(self, page: _Page) -> dict[str, str]:
        t = page.transition
        fields: dict[str, str] = {}
        if t.state == DOWN:
            fields["fallback"] = self._fallback(t.monitor)
        if t.down_for and t.kind in ("recovered", "degraded"):
            fields["down for"] = format_duration(t.down_for)
        if page.also:
            fields[_also(t)] = ", ".join(page.also)
        return fields

    def _fallback(self, name: str) -> str:
        """Whether users still have somewhere to go, which decides how urgent a DOWN is:
        "serving", "also down", "not configured", or "not checked" if the sweep did not."""
        monitor = self._monitors.get(name)
        if monitor is None or not monitor.fallback:
            return "not configured"
        status = self._fallback_status.get(name)
        if status is None:
            return "not checked"
        return "serving" if status == "serving" else "also down"

    def _digest_line(self, page: _Page) -> str:
        t = page.transition
        if t.kind in REGIONAL_KINDS:
            return f"{t.monitor}: {t.where}"
        if t.kind == "recovered":
            line = f"{t.monitor}: was DOWN for {_lasted(t)}"
        else:
            line = f"{t.monitor}: {'; '.join(t.failed) or t.state}"
        fallback = self._fallback(t.monitor)
        if t.state == DOWN and fallback != "not configured":
            line += f" (fallback: {fallback})"
        if page.also:
            line += f" ({_also(t)}: {', '.join(page.also)})"
        return line


def _also(t: Transition) -> str:
    return "also recovered" if t.kind == "recovered" else "also affected"


def _title(t: Transition) -> str:
    failing = t.where.split("; ", 1)[0]
    if t.kind == "regional":
        return f"{t.monitor} is {failing}"
    if t.kind == "regional-reminder":
        return f"{t.monitor} is still {failing} (for {_lasted(t)})"
    if t.kind == "regional-recovered":
        return f"{t.monitor} is up again from every location"
    if t.kind == "recovered":
        return f"{t.monitor} RECOVERED after {_lasted(t)}"
    if t.kind == "reminder":
        return f"{t.monitor} is still {t.state} (for {_lasted(t)})"
    return f"{t.monitor} is {t.state}"


def _digest_title(kind: str, items: list[Transition]) -> str:
    if kind == "regional-recovered":
        return f"{len(items)} monitors are up again from every location"
    if kind in REGIONAL_KINDS:
        still = "still " if kind == "regional-reminder" else ""
        return f"{len(items)} monitors are {still}failing from some locations"
    if kind == "recovered":
        return f"{len(items)} monitors RECOVERED"
    states = " or ".join(sorted({t.state for t in items}, key=_PROBLEMS.index))
    still = "still " if kind == "reminder" else ""
    return f"{len(items)} monitors are {still}{states}"


def _lasted(t: Transition) -> str:
    return format_duration(t.down_for) if t.down_for else "an unknown time"


def _truncated(lines: list[str]) -> list[str]:
    if len(lines) <= _MAX_LINES:
        return lines
    return [*lines[:_MAX_LINES], f"and {len(lines) - _MAX_LINES} more"]
