"""`vigil status`: the one screen an operator reads in five seconds.

Every monitor's state and since when (worst first), each database's last backup, restore
test and the last drill, the last verification per deploy target, each with its Prefect flow
run. It must answer in well under a second with a thousand monitors and months of history,
so it reads only what it shows: the monitor_states table, each monitor's last check (found
by the (monitor, checked_at) index from `last_checked_at`), and the newest row per database
or target (their (name, started) indexes). It imports neither pandas nor Prefect.

What needs attention (exit 1): a monitor DOWN or DEGRADED outside maintenance, or not
checked for three sweep intervals (at least 5 minutes; never checked counts); a database
with no successful backup, whose newest backup failed, whose newest good backup is not
verified or older than `backup.max_age`; a failed restore test or one that missed its RTO;
a failed drill or a missed objective; a deploy target whose last verification failed or
was rolled back. A restore test or drill that never ran is shown, not flagged.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from vigil.config import Config
from vigil.durations import format_duration, format_size
from vigil.monitoring import pending
from vigil.store import (
    Backup,
    CheckResult,
    DeployVerification,
    Drill,
    MonitorState,
    RestoreTest,
    Store,
)

UP, DEGRADED, DOWN, UNKNOWN = "UP", "DEGRADED", "DOWN", "UNKNOWN"
STATE_ORDER = {DOWN: 0, DEGRADED: 1, UNKNOWN: 2, UP: 3}
# The words duties write in `status` for a run that did its job; "running" is in progress,
# anything else is a failure (so a new failure word can never pass for success).
SUCCESS_STATUSES = frozenset({"ok", "success", "succeeded", "completed", "passed", "verified"})
RUNNING = "running"
# Deploy verdicts (vigil.deploy): a rolled-back release, and a rollback that failed too.
ROLLED_BACK, ROLLBACK_FAILED = "rolled_back", "rollback_failed"
BAD_VERDICTS = frozenset(
    {"failed", ROLLED_BACK, ROLLBACK_FAILED, "interrupted", "rollback_interrupted", "not_restored"}
)
STALE_SWEEPS = 3
MIN_STALE = timedelta(minutes=5)
LOCAL_UI = "http://127.0.0.1:4200"


def is_success(status: str | None) -> bool:
    return status in SUCCESS_STATUSES


def is_failure(status: str | None) -> bool:
    return status != RUNNING and not is_success(status)


# --- what the screen shows ------------------------------------------------------------------


@dataclass
class MonitorLine:
    name: str
    state: str
    since: datetime | None
    last_checked_at: datetime | None
    in_maintenance: bool
    latency_ms: float | None
    tls_days_left: float | None
    problem: str | None
    flow_run_id: str | None
    link: str | None
    attention: str | None = None
    # What its locations saw, when not all alike (`vigil.sweep.regional.shown`: "DOWN from
    # eu-west, up from us-east", "failing from eu-west only; up from us-east"), and each
    # location's word at the last check (`down`, `degraded`, `up`, `no report`).
    locations: str | None = None
    seen: dict[str, str] = field(default_factory=dict)


@dataclass
class BackupLine:
    database: str
    last_at: datetime | None
    last_status: str | None
    last_ok_at: datetime | None
    age_s: float | None
    size_bytes: int | None
    verified: bool | None
    flow_run_id: str | None
    link: str | None
    attention: str | None = None


@dataclass
class RestoreLine:
    database: str
    started_at: datetime | None
    status: str | None
    duration_s: float | None
    rto_s: float
    rto_met: bool | None
    flow_run_id: str | None
    link: str | None
    attention: str | None = None


@dataclass
class DrillLine:
    started_at: datetime | None
    status: str | None
    rto_s: float | None
    rpo_s: float | None
    rto_met: bool | None
    rpo_met: bool | None
    flow_run_id: str | None
    link: str | None
    attention: str | None = None


@dataclass
class DeployLine:
    target: str
    started_at: datetime | None
    kind: str | None
    release: str | None
    verdict: str | None
    flow_run_id: str | None
    link: str | None
    attention: str | None = None


@dataclass
class StatusScreen:
    now: datetime
    monitors: list[MonitorLine] = field(default_factory=list)
    backups: list[BackupLine] = field(default_factory=list)
    restore_tests: list[RestoreLine] = field(default_factory=list)
    drill: DrillLine | None = None
    deploys: list[DeployLine] = field(default_factory=list)

    def attention(self) -> list[str]:
        """One line per thing that needs someone, in screen order."""
        lines: list[Any] = [*self.monitors, *self.backups, *self.restore_tests]
        lines += [self.drill] if self.drill else []
        lines += self.deploys
        return [f"{_label(line)}: {line.attention}" for line in lines if line.attention]

    @property
    def needs_attention(self) -> bool:
        return bool(self.attention())

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "needs_attention": self.needs_attention,
            "attention": self.attention(),
            "monitors": [asdict(m) for m in self.monitors],
            "backups": [asdict(b) for b in self.backups],
            "restore_tests": [asdict(r) for r in self.restore_tests],
            "drill": asdict(self.drill) if self.drill else None,
            "deploys": [asdict(d) for d in self.deploys],
        }


def _label(line: Any) -> str:
    if isinstance(line, MonitorLine):
        return f"monitor {line.name}"
    if isinstance(line, BackupLine):
        return f"backup {line.database}"
    if isinstance(line, RestoreLine):
        return f"restore test {line.database}"
    if isinstance(line, DeployLine):
        return f"deploy {line.target}"
    return "DR drill"


# --- gathering ------------------------------------------------------------------------------


def gather(config: Config, store: Store, now: datetime, ui_url: str | None = None) -> StatusScreen:
    """Read the screen from the store: a handful of indexed queries whatever the history."""
    with store.session() as session:
        return StatusScreen(
            now=now,
            monitors=monitor_lines(config, session, now, ui_url),
            backups=[backup_line(config, session, d.name, now, ui_url) for d in config.databases],
            restore_tests=[restore_line(config, session, d.name, ui_url) for d in config.databases],
            drill=drill_line(session, ui_url),
            deploys=[deploy_line(session, target, ui_url) for target in config.deploys],
        )


def monitor_lines(
    config: Config, session: Session, now: datetime, ui_url: str | None
) -> list[MonitorLine]:
    """Each configured monitor with its state and its last check, worst first."""
    last_check = and_(
        CheckResult.monitor == MonitorState.monitor,
        CheckResult.checked_at == MonitorState.last_checked_at,
    )
    query = select(
        MonitorState,
        CheckResult.in_maintenance,
        CheckResult.latency_ms,
        CheckResult.tls_days_left,
        CheckResult.flow_run_id,
    ).outerjoin(CheckResult, last_check)
    found = {row[0].monitor: row for row in session.execute(query)}
    lines = []
    for monitor in config.monitors:
        row = found.get(monitor.name)
        line = _monitor_line(monitor.name, row, ui_url)
        stale_after = max(config.interval_of(monitor) * STALE_SWEEPS, MIN_STALE)
        line.attention = _monitor_attention(line, now, stale_after)
        if row is not None and line.attention is None:
            line.attention = pending(row[0], monitor.failure_threshold)
        lines.append(line)
    return sorted(lines, key=_worst_first)


def _monitor_line(name: str, row: Any, ui_url: str | None) -> MonitorLine:
    if row is None:
        return MonitorLine(name, UNKNOWN, None, None, False, None, None, None, None, None)
    state, in_maintenance, latency, tls, run_id = row
    failed = list(state.failed_conditions or [])
    if state.state in (DOWN, DEGRADED):
        shown = "; ".join(_without_locations(failed)) or state.last_error
    else:
        shown = None
    return MonitorLine(
        name=name,
        state=state.state,
        since=state.since,
        last_checked_at=state.last_checked_at,
        in_maintenance=bool(in_maintenance),
        latency_ms=latency,
        tls_days_left=tls,
        problem=shown,
        flow_run_id=run_id,
        link=run_link(ui_url, run_id),
        **_locations(state.locations),
    )


def _locations(record: dict[str, Any] | None) -> dict[str, Any]:
    """The line's `locations` and `seen`, from the state's locations record."""
    if not record:
        return {}
    from vigil.sweep.quorum import LocationView
    from vigil.sweep.regional import shown_record

    return {
        "locations": shown_record(record),
        "seen": LocationView.from_record(record).by_location(),
    }


def _without_locations(failed: list[str]) -> list[str]:
    """The failed conditions less the locations' words, which the sweep puts first (the
    line shows them itself, from the state's locations record)."""
    from vigil.sweep.quorum import is_seen_words

    return failed[1:] if failed and is_seen_words(failed[0]) else failed


def _monitor_attention(line: MonitorLine, now: datetime, stale_after: timedelta) -> str | None:
    if line.last_checked_at is None:
        return "never checked (is the uptime sweep running?)"
    if now - line.last_checked_at > stale_after:
        return f"not checked since {_stamp(line.last_checked_at)}"
    if line.state in (DOWN, DEGRADED) and not line.in_maintenance:
        return f"{line.state} since {_stamp(line.since)}"
    return None


def _worst_first(line: MonitorLine) -> tuple[int, bool, datetime, str]:
    """By state, maintenance last within it, then the longest-standing first."""
    since = line.since or line.last_checked_at or datetime.max.replace(tzinfo=None)
    return (STATE_ORDER.get(line.state, 9), line.in_maintenance, _naive(since), line.name)


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None) if value.tzinfo else value


def backup_line(
    config: Config, session: Session, database: str, now: datetime, ui_url: str | None
) -> BackupLine:
    newest = select(Backup).where(Backup.database == database).order_by(Backup.created_at.desc())
    last = session.scalars(newest.limit(1)).first()
    good = session.scalars(newest.where(Backup.status.in_(SUCCESS_STATUSES)).limit(1)).first()
    shown = good or last
    good_at = (good.completed_at or good.created_at) if good else None
    line = BackupLine(
        database=database,
        last_at=last.created_at if last else None,
        last_status=last.status if last else None,
        last_ok_at=good_at,
        age_s=(now - good_at).total_seconds() if good_at else None,
        size_bytes=shown.size_bytes if shown else None,
        verified=good.verified if good else None,
        flow_run_id=last.flow_run_id if last else None,
        link=run_link(ui_url, last.flow_run_id if last else None),
    )
    line.attention = _backup_attention(line, config.backup.max_age)
    return line


def _backup_attention(line: BackupLine, max_age: timedelta) -> str | None:
    if line.last_status is not None and is_failure(line.last_status):
        return f"the last backup ({_stamp(line.last_at)}) {line.last_status}"
    if line.age_s is None:
        return "no successful backup on record"
    if line.age_s > max_age.total_seconds():
        return f"the newest good backup is {_ago(line.age_s)} old (max_age {_ago(max_age)})"
    if not line.verified:
        return "the newest good backup is not verified"
    return None


def restore_line(
    config: Config, session: Session, database: str, ui_url: str | None
) -> RestoreLine:
    query = select(RestoreTest).where(RestoreTest.database == database)
    test = session.scalars(query.order_by(RestoreTest.started_at.desc()).limit(1)).first()
    rto = config.restore_test.max_duration.total_seconds()
    if test is None:
        return RestoreLine(database, None, None, None, rto, None, None, None)
    met = test.rto_met
    if met is None and test.duration_s is not None:
        met = test.duration_s <= rto
    line = RestoreLine(
        database=database,
        started_at=test.started_at,
        status=test.status,
        duration_s=test.duration_s,
        rto_s=rto,
        rto_met=met,
        flow_run_id=test.flow_run_id,
        link=run_link(ui_url, test.flow_run_id),
    )
    if is_failure(test.status):
        line.attention = f"the last restore test ({_stamp(test.started_at)}) {test.status}"
    elif met is False:
        line.attention = f"the last restore took {_ago(test.duration_s or 0)}, over its RTO"
    return line


def drill_line(session: Session, ui_url: str | None) -> DrillLine:
    drill = session.scalars(select(Drill).order_by(Drill.started_at.desc()).limit(1)).first()
    if drill is None:
        return DrillLine(None, None, None, None, None, None, None, None)
    line = DrillLine(
        started_at=drill.started_at,
        status=drill.status,
        rto_s=drill.rto_s,
        rpo_s=drill.rpo_s,
        rto_met=drill.rto_met,
        rpo_met=drill.rpo_met,
        flow_run_id=drill.flow_run_id,
        link=run_link(ui_url, drill.flow_run_id),
    )
    line.attention = drill_attention(drill)
    return line


def drill_attention(drill: Drill) -> str | None:
    """What the last drill's verdict asks of the operator (its statuses: passed, findings,
    missed, failed; see vigil.drill)."""
    when = _stamp(drill.started_at)
    missed = [
        name for name, met in (("RTO", drill.rto_met), ("RPO", drill.rpo_met)) if met is False
    ]
    if drill.status == "failed":
        return f"the last drill ({when}) failed: the recovery did not complete"
    if missed:
        return f"the last drill missed its {' and '.join(missed)}"
    if drill.status == "findings":
        return f"the last drill ({when}) has findings to act on (see its report)"
    if is_failure(drill.status):
        return f"the last drill ({when}) {drill.status}"
    return None


def deploy_line(session: Session, target: str, ui_url: str | None) -> DeployLine:
    query = select(DeployVerification).where(DeployVerification.target == target)
    last = session.scalars(query.order_by(DeployVerification.started_at.desc()).limit(1)).first()
    if last is None:
        return DeployLine(target, None, None, None, None, None, None)
    line = DeployLine(
        target=target,
        started_at=last.started_at,
        kind=last.kind,
        release=last.release,
        verdict=last.verdict,
        flow_run_id=last.flow_run_id,
        link=run_link(ui_url, last.flow_run_id),
    )
    if last.verdict in BAD_VERDICTS:
        line.attention = f"the last {last.kind} of {last.release or '?'} {last.verdict}"
    return line


# --- links ----------------------------------------------------------------------------------


def run_link(ui_url: str | None, flow_run_id: str | None) -> str | None:
    if not ui_url or not flow_run_id:
        return None
    return f"{ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}"


def ui_base_url(environ: dict[str, str] | None = None) -> str:
    """The Prefect UI that flow-run links point at, found the way Prefect finds it
    (PREFECT_UI_URL, else PREFECT_API_URL less its `/api`, from the environment or the
    active profile), else vigil's local server. Importing Prefect for this would cost a
    second: the whole screen's budget."""
    env = os.environ if environ is None else environ
    settings = {**_profile_settings(env), **{k: v for k, v in env.items() if v}}
    if settings.get("PREFECT_UI_URL"):
        return str(settings["PREFECT_UI_URL"]).rstrip("/")
    api = str(settings.get("PREFECT_API_URL") or "").rstrip("/")
    if api:
        return api.removesuffix("/api").replace("/api/", "/")
    return LOCAL_UI


def api_target(environ: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """The Prefect API vigil talks to (PREFECT_API_URL from the environment or the active
    profile, else the local server) and the basic-auth header PREFECT_API_AUTH_STRING asks
    for, read without importing Prefect."""
    import base64

    env = os.environ if environ is None else environ
    settings = {**_profile_settings(env), **{k: v for k, v in env.items() if v}}
    api = str(settings.get("PREFECT_API_URL") or LOCAL_UI + "/api").rstrip("/")
    auth = settings.get("PREFECT_API_AUTH_STRING")
    headers = {"Authorization": "Basic " + base64.b64encode(str(auth).encode()).decode()}
    return api, headers if auth else {}


def prefect_database(config: Config, environ: dict[str, str] | None = None) -> Any:
    """How the Prefect server vigil talks to keeps its database (vigil.prefect_db), or None
    when no server answers within a second."""
    from vigil.prefect_db import assess, read_settings

    api, headers = api_target(environ)
    settings = read_settings(api, headers)
    if not isinstance(settings, dict):
        return None
    retention = config.retention
    return assess(
        settings,
        wanted=retention.prefect_runs_horizon,
        warn_size=retention.prefect_db_warn_size,
        env=environ,
    )


def prefect_lines(found: Any) -> list[str]:
    """The screen's Prefect section: the vacuum and the size, then each warning."""
    if found is None:
        return ["", "Prefect database", "  no Prefect server answered: not checked"]
    kept = _ago(found.retention) if found.retention else "?"
    vacuum = "flow runs kept " + kept if "flow_runs" in found.vacuum else "flow runs kept forever"
    size = f", {format_size(found.size_bytes)} ({found.size_of})" if found.size_bytes else ""
    lines = ["", "Prefect database", f"  vacuum {','.join(found.vacuum)}: {vacuum}{size}"]
    return lines + [f" ! {warning}" for warning in found.warnings]


def _profile_settings(env: Any) -> dict[str, Any]:
    home = Path(env.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(env.get("PREFECT_PROFILES_PATH") or home / "profiles.toml")
    try:
        profiles = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    active = env.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    found = profiles.get("profiles", {}).get(active, {})
    return found if isinstance(found, dict) else {}


# --- the screen as text ---------------------------------------------------------------------


def render(screen: StatusScreen) -> list[str]:
    """Plain lines: problems in full, healthy monitors as one count."""
    attention = screen.attention()
    lines = [
        f"vigil status at {_stamp(screen.now)}: "
        + (f"{len(attention)} need attention" if attention else "all well"),
        "",
        _monitor_heading(screen.monitors),
    ]
    lines += [_monitor_text(m, screen.now) for m in screen.monitors if _worth_a_line(m)]
    quiet = sum(1 for m in screen.monitors if not _worth_a_line(m))
    if quiet:
        lines.append(f"  {quiet} UP")
    lines += _section("Backups", [_backup_text(b, screen.now) for b in screen.backups])
    lines += _section("Restore tests", [_restore_text(r) for r in screen.restore_tests])
    lines += _section("DR drill", [_drill_text(screen.drill)] if screen.drill else [])
    lines += _section("Deploys", [_deploy_text(d, screen.now) for d in screen.deploys])
    return lines


def _section(title: str, lines: list[str]) -> list[str]:
    return ["", title, *lines] if lines else []


def _monitor_heading(monitors: list[MonitorLine]) -> str:
    counts: dict[str, int] = {}
    for line in monitors:
        counts[line.state] = counts.get(line.state, 0) + 1
    parts = [f"{counts[s]} {s.lower()}" for s in (DOWN, DEGRADED, UNKNOWN, UP) if counts.get(s)]
    return f"Monitors ({len(monitors)}: {', '.join(parts) or 'none'})"


def _worth_a_line(line: MonitorLine) -> bool:
    return (
        line.state != UP
        or line.attention is not None
        or line.in_maintenance
        or line.locations is not None
    )


def _monitor_text(line: MonitorLine, now: datetime) -> str:
    since = f"since {_stamp(line.since)} ({_ago(now - line.since)})" if line.since else ""
    text = f"{_mark(line.attention)} {line.state:<8} {line.name}  {since}"
    if line.in_maintenance:
        text += "  [maintenance]"
    if line.problem:
        text += f"  {line.problem[:120]}"
    if line.locations:
        text += f"  [{line.locations}]"
    if line.attention and not line.attention.startswith(line.state):
        text += f"  ({line.attention})"
    return _with_link(text, line.link)


def _backup_text(line: BackupLine, now: datetime) -> str:
    if line.last_at is None:
        return f"{_mark(line.attention)} {line.database}: no backup on record"
    good = f"last good {_ago(line.age_s)} ago" if line.age_s is not None else "no good backup"
    size = _size(line.size_bytes)
    verified = "verified" if line.verified else "NOT verified"
    text = f"{_mark(line.attention)} {line.database}: {good}, {size}, {verified}"
    if line.last_status and not is_success(line.last_status):
        text += f"; last run {line.last_status} {_ago((now - line.last_at).total_seconds())} ago"
    return _with_link(text, line.link)


def _restore_text(line: RestoreLine) -> str:
    if line.started_at is None:
        return f"  {line.database}: no restore test yet"
    took = _ago(line.duration_s) if line.duration_s is not None else "?"
    verdict = {True: "within", False: "OVER", None: "vs"}[line.rto_met]
    text = (
        f"{_mark(line.attention)} {line.database}: {line.status} {_stamp(line.started_at)}, "
        f"took {took} ({verdict} RTO {_ago(line.rto_s)})"
    )
    return _with_link(text, line.link)


def _drill_text(line: DrillLine) -> str:
    if line.started_at is None:
        return "  no drill yet"

    def objective(name: str, met: bool | None, achieved: float | None) -> str:
        value = _ago(achieved) if achieved is not None else "?"
        return f"{name} {value} {'met' if met else 'MISSED' if met is False else '?'}"

    rto = objective("RTO", line.rto_met, line.rto_s)
    rpo = objective("RPO", line.rpo_met, line.rpo_s)
    text = f"{_mark(line.attention)} {_stamp(line.started_at)} {line.status}: {rto}, {rpo}"
    return _with_link(text, line.link)


def _deploy_text(line: DeployLine, now: datetime) -> str:
    if line.started_at is None:
        return f"  {line.target}: no verification yet"
    text = (
        f"{_mark(line.attention)} {line.target}: {line.kind} {line.release or '?'} "
        f"{line.verdict} {_ago((now - line.started_at).total_seconds())} ago"
    )
    return _with_link(text, line.link)


def _mark(attention: str | None) -> str:
    return " !" if attention else "  "


def _with_link(text: str, link: str | None) -> str:
    return f"{text}  {link}" if link else text


def _stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "?"


def _ago(value: float | timedelta | None) -> str:
    """Whole minutes past an hour: `3d9h59m`, not `3d9h59m30s`."""
    if value is None:
        return "?"
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    return format_duration(round(seconds / 60) * 60 if seconds >= 3600 else seconds)


def _size(value: int | None) -> str:
    return "size ?" if value is None else format_size(value)
