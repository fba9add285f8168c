"""What the records say over a period: uptime and SLOs per monitor, and how the backups,
restore tests, drills and deploys went. Built with pandas on the records store.

Uptime is weighted by time, from state flips (as healthchecks does), never by counting
samples. The flips are the incidents the sweep opens and closes: a monitor is DOWN from an
incident's `started_at` to its `ended_at` (still open: to the period's end), DEGRADED
likewise, UP otherwise. Its clock starts at its first recorded check. Maintenance time (the
config's windows, one-off and recurring) is taken out of the period before anything is
divided, whatever the monitor's state then:

    measured  = period ∩ [first check, end) − maintenance
    uptime %  = 100 × (measured − DOWN time) / measured      (DEGRADED counts as up,
    degraded% = 100 × DEGRADED time / measured                and is shown apart)

An incident counts when some of its time falls in `measured`; MTTR is the mean full length
of the counted DOWN incidents that have ended. The SLO target is the monitor's `slo`, else
the config's global `slo`; the error budget is (100 − target)% of `measured`, spent by DOWN
time only. Latency percentiles are over every check that got an answer outside maintenance
(linear interpolation between samples). Days are calendar days in the config's timezone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.sql import Executable

from vigil.config import Config, Monitor
from vigil.maintenance import upcoming
from vigil.status import (
    DEGRADED,
    DOWN,
    ROLLBACK_FAILED,
    ROLLED_BACK,
    is_failure,
    is_success,
)
from vigil.store import (
    Backup,
    BackupVerification,
    CheckResult,
    DeployVerification,
    Drill,
    HourlyRollup,
    RestoreTest,
    Store,
)
from vigil.sweep.records import incidents_overlapping

KINDS = ("up", "degraded", "down", "maintenance")
UNWATCHED = "unwatched"  # before a monitor's first check
_COUNTERS = ["observed", "maintenance", "down", "degraded"]
PERCENTILES = (0.5, 0.95, 0.99)


# --- the period -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, with the timezone whose calendar days split it."""

    start: datetime
    end: datetime
    timezone: str = "UTC"

    @classmethod
    def last(cls, now: datetime, days: int, timezone: str = "UTC") -> Period:
        """The rolling window a report covers: exactly `days` × 24h before `now`."""
        end = now.astimezone(UTC)
        return cls(end - timedelta(days=days), end, timezone)

    @classmethod
    def calendar_days(cls, now: datetime, days: int, timezone: str = "UTC") -> Period:
        """`days` whole local days ending with today (so far): the status page's bars."""
        tz = ZoneInfo(timezone)
        today = now.astimezone(tz).date()
        first = datetime.combine(today - timedelta(days=days - 1), time(), tzinfo=tz)
        return cls(first.astimezone(UTC), now.astimezone(UTC), timezone)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def days(self) -> list[date]:
        """Every local calendar day the period touches, in order."""
        tz = ZoneInfo(self.timezone)
        first, last = self.start.astimezone(tz).date(), (self.end - _TICK).astimezone(tz).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def midnights(self) -> list[datetime]:
        """Local midnights strictly inside the period (DST-safe: built per calendar date)."""
        tz = ZoneInfo(self.timezone)
        found = (datetime.combine(d, time(), tzinfo=tz).astimezone(UTC) for d in self.days())
        return [m for m in found if self.start < m < self.end]


_TICK = timedelta(microseconds=1)


# --- the state timeline ---------------------------------------------------------------------


@dataclass
class Timeline:
    """Every monitor's flips over a period, ready to be weighted by time."""

    period: Period
    observed_from: dict[str, datetime]
    maintenance: pd.DataFrame  # monitor, start, end
    incidents: pd.DataFrame  # id, monitor, state, started_at, ended_at, severity, cause

    def segments(self) -> pd.DataFrame:
        """Stretches of constant state: monitor, at, until, seconds, kind, day.

        A sweep line over +1/-1 edges: every incident, maintenance window and local midnight
        is an edge, so each segment lies inside one day and has one kind (`unwatched` before
        the monitor's first check).
        """
        names = [n for n, t in self.observed_from.items() if t < self.period.end]
        if not names:
            return pd.DataFrame(columns=["monitor", "at", "until", "seconds", "kind", "day"])
        edges = pd.concat(
            [
                self._marks(names),
                _rows(
                    names, [max(self.observed_from[n], self.period.start) for n in names], 1
                ).rename(columns={"delta": "observed"}),
                self._edges(self.maintenance, "maintenance"),
                self._edges(self.incidents[self.incidents["state"] == DOWN], "down"),
                self._edges(self.incidents[self.incidents["state"] == DEGRADED], "degraded"),
            ],
            ignore_index=True,
        )
        edges = edges[edges["monitor"].isin(names)]
        edges[_COUNTERS] = edges[_COUNTERS].fillna(0)
        level = edges.groupby(["monitor", "at"], sort=True)[_COUNTERS].sum()
        level = level.groupby(level="monitor").cumsum().reset_index()
        level["until"] = level.groupby("monitor")["at"].shift(-1)
        level = level.dropna(subset=["until"])
        level["seconds"] = (level["until"] - level["at"]).dt.total_seconds()
        level["kind"] = np.select(
            [
                level["observed"] <= 0,
                level["maintenance"] > 0,
                level["down"] > 0,
                level["degraded"] > 0,
            ],
            [UNWATCHED, "maintenance", "down", "degraded"],
            default="up",
        )
        level["day"] = level["at"].dt.tz_convert(self.period.timezone).dt.date
        return level[["monitor", "at", "until", "seconds", "kind", "day"]].reset_index(drop=True)

    def totals(self, by: Sequence[str] = ("monitor",)) -> pd.DataFrame:
        """Seconds per kind (columns up, degraded, down, maintenance, measured) per group."""
        segments = self.segments()
        watched = segments[segments["kind"] != UNWATCHED]
        table = watched.pivot_table(
            index=list(by), columns="kind", values="seconds", aggfunc="sum", fill_value=0.0
        )
        table = table.reindex(columns=list(KINDS), fill_value=0.0)
        table["measured"] = table["up"] + table["degraded"] + table["down"]
        return table

    def incident_table(self) -> pd.DataFrame:
        """Incidents touching the period, with `seconds` (full length, or so far when still
        open), `measured_s` (the part in measured time) and `ongoing`."""
        frame = self.incidents.copy()
        end = self.period.end
        frame["ongoing"] = frame["ended_at"].isna()
        frame["seconds"] = (frame["ended_at"].fillna(end) - frame["started_at"]).dt.total_seconds()
        frame["measured_s"] = [self._measured_overlap(r) for r in frame.itertuples()]
        return frame

    def _measured_overlap(self, incident: Any) -> float:
        start = max(incident.started_at, self.period.start, self._from(incident.monitor))
        stop = (
            self.period.end
            if pd.isna(incident.ended_at)
            else min(incident.ended_at, self.period.end)
        )
        if stop <= start:
            return 0.0
        spans = self.maintenance[self.maintenance["monitor"] == incident.monitor]
        quiet = _covered(start, stop, zip(spans["start"], spans["end"], strict=True))
        return (stop - start).total_seconds() - quiet

    def _from(self, monitor: str) -> datetime:
        return self.observed_from.get(monitor, self.period.end)

    def _marks(self, names: list[str]) -> pd.DataFrame:
        instants = [self.period.start, *self.period.midnights(), self.period.end]
        return pd.DataFrame(
            {
                "monitor": [n for n in names for _ in instants],
                "at": pd.to_datetime([t for _ in names for t in instants], utc=True),
            }
        )

    def _edges(self, spans: pd.DataFrame, column: str) -> pd.DataFrame:
        """+1 where each span enters the period, -1 where it leaves (open spans: the end)."""
        start_col, end_col = ("start", "end") if "start" in spans else ("started_at", "ended_at")
        begin = spans[start_col].clip(lower=self.period.start)
        stop = spans[end_col].fillna(self.period.end).clip(upper=self.period.end)
        keep = begin < stop
        names = list(spans["monitor"][keep])
        enter = _rows(names, list(begin[keep]), 1)
        leave = _rows(names, list(stop[keep]), -1)
        return pd.concat([enter, leave], ignore_index=True).rename(columns={"delta": column})


def _rows(names: list[str], instants: list[Any], delta: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "monitor": pd.Series(names, dtype="str"),
            "at": pd.to_datetime(pd.Series(instants, dtype="object"), utc=True),
            "delta": delta,
        }
    )


def _covered(start: datetime, stop: datetime, spans: Iterable[tuple[Any, Any]]) -> float:
    """Seconds of [start, stop) inside the union of `spans` (they may overlap)."""
    clipped = sorted((max(a, start), min(b, stop)) for a, b in spans if a < stop and b > start)
    total, reach = 0.0, start
    for a, b in clipped:
        a = max(a, reach)
        if b > a:
            total += (b - a).total_seconds()
            reach = b
    return total


def load_timeline(store: Store, config: Config, names: list[str], period: Period) -> Timeline:
    """Read the flips of `names` over `period`: a few indexed queries, no check scan."""
    return Timeline(
        period=period,
        observed_from=first_checks(store, names, period),
        maintenance=maintenance_spans(config, names, period),
        incidents=incidents(store, names, period),
    )


def first_checks(store: Store, names: list[str], period: Period) -> dict[str, datetime]:
    """When each monitor was first checked (only the exact time matters inside the period).

    The rollups give the first hour cheaply; only a monitor whose first hour falls in the
    period needs its exact first check, one index lookup each. The rollups outlive the raw
    checks (retention): a first check not inside that first hour was pruned, and the hour is
    the best answer left (the first remaining check would start the clock months late)."""
    if not names:
        return {}
    query = (
        select(HourlyRollup.monitor, func.min(HourlyRollup.hour))
        .where(HourlyRollup.monitor.in_(names))
        .group_by(HourlyRollup.monitor)
    )
    with store.session() as session:
        first_hours = {m: h for m, h in session.execute(query) if h is not None}
        found = {}
        for name, hour in first_hours.items():
            if hour + timedelta(hours=1) <= period.start:
                found[name] = hour
                continue
            first = session.scalar(
                select(func.min(CheckResult.checked_at)).where(
                    CheckResult.monitor == name, CheckResult.checked_at >= hour
                )
            )
            inside = first is not None and first < hour + timedelta(hours=1)
            found[name] = first if first is not None and inside else hour
    return found


def maintenance_spans(config: Config, names: list[str], period: Period) -> pd.DataFrame:
    """Every maintenance occurrence of the config that overlaps the period, per monitor."""
    wanted = set(names)
    rows = [
        (name, o.start, o.end)
        for o in upcoming(config, period.start, period.end - period.start)
        for name in o.monitors
        if name in wanted
    ]
    frame = pd.DataFrame(rows, columns=["monitor", "start", "end"])
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def incidents(store: Store, names: list[str], period: Period) -> pd.DataFrame:
    """Incidents of `names` that overlap the period, as the sweep recorded them."""
    frame = _frame(store, incidents_overlapping(names, period.start, period.end))
    for column in ("started_at", "ended_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _frame(store: Store, query: Executable) -> pd.DataFrame:
    with store.session() as session:
        result = session.execute(query)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


# --- latency --------------------------------------------------------------------------------


def latencies(store: Store, names: list[str], period: Period) -> pd.DataFrame:
    """Every answered check outside maintenance: monitor, checked_at, latency_ms, day.

    Percentiles need the samples themselves (the rollups only keep sums), so this is the
    one query that reads check rows: by the (monitor, checked_at) index, period only."""
    query = select(CheckResult.monitor, CheckResult.checked_at, CheckResult.latency_ms).where(
        CheckResult.monitor.in_(names),
        CheckResult.checked_at >= period.start,
        CheckResult.checked_at < period.end,
        CheckResult.latency_ms.is_not(None),
        CheckResult.in_maintenance.is_(False),
    )
    frame = _frame(store, query)
    frame["checked_at"] = pd.to_datetime(frame["checked_at"], utc=True)
    frame["latency_ms"] = frame["latency_ms"].astype(float)
    frame["day"] = frame["checked_at"].dt.tz_convert(period.timezone).dt.date
    return frame


def percentiles(samples: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """p50/p95/p99 and the sample count per group."""
    if samples.empty:
        return pd.DataFrame(columns=[*by, "p50", "p95", "p99", "samples"])
    grouped = samples.groupby(list(by))["latency_ms"]
    table = grouped.quantile(list(PERCENTILES)).unstack()
    table.columns = ["p50", "p95", "p99"]
    table["samples"] = grouped.size()
    return table.reset_index()


# --- monitors and SLOs ----------------------------------------------------------------------


@dataclass
class Slo:
    """The SLO view of one monitor over the period; minutes, and percents of the budget."""

    target_pct: float
    met: bool
    budget_minutes: float
    used_minutes: float
    remaining_minutes: float
    remaining_pct: float | None


@dataclass
class MonitorSummary:
    name: str
    display_name: str
    measured_minutes: float
    uptime_pct: float | None
    degraded_pct: float | None
    downtime_minutes: float
    degraded_minutes: float
    maintenance_minutes: float
    incidents: int
    degraded_incidents: int
    mttr_minutes: float | None
    latency_ms: dict[str, float | None]
    latency_samples: int
    slo: Slo | None


def slo_target(monitor: Monitor, config: Config) -> float | None:
    """The monitor's own `slo`, else the config's global one (a percent), else none."""
    return monitor.slo if monitor.slo is not None else config.slo


def slo_view(target: float | None, measured_s: float, down_s: float) -> Slo | None:
    if target is None:
        return None
    budget = (100.0 - target) / 100.0 * measured_s
    remaining = budget - down_s
    uptime = 100.0 * (measured_s - down_s) / measured_s if measured_s else 100.0
    return Slo(
        target_pct=target,
        met=uptime >= target,
        budget_minutes=budget / 60,
        used_minutes=down_s / 60,
        remaining_minutes=remaining / 60,
        remaining_pct=100.0 * remaining / budget if budget else None,
    )


def summarize_monitor(
    monitor: Monitor,
    config: Config,
    totals: pd.Series | None,
    incident_rows: pd.DataFrame,
    latency: pd.Series | None,
) -> MonitorSummary:
    """One monitor's line of the report from its time totals, incidents and latencies."""
    seconds = {k: float(totals[k]) if totals is not None else 0.0 for k in (*KINDS, "measured")}
    measured = seconds["measured"]
    counted = incident_rows[incident_rows["measured_s"] > 0]
    down = counted[counted["state"] == DOWN]
    resolved = down[~down["ongoing"]]
    return MonitorSummary(
        name=monitor.name,
        display_name=monitor.display_name or monitor.name,
        measured_minutes=measured / 60,
        uptime_pct=100.0 * (measured - seconds["down"]) / measured if measured else None,
        degraded_pct=100.0 * seconds["degraded"] / measured if measured else None,
        downtime_minutes=seconds["down"] / 60,
        degraded_minutes=seconds["degraded"] / 60,
        maintenance_minutes=seconds["maintenance"] / 60,
        incidents=len(down),
        degraded_incidents=int((counted["state"] == DEGRADED).sum()),
        mttr_minutes=float(resolved["seconds"].mean()) / 60 if len(resolved) else None,
        latency_ms={
            p: (float(latency[p]) if latency is not None else None) for p in ("p50", "p95", "p99")
        },
        latency_samples=int(latency["samples"]) if latency is not None else 0,
        slo=slo_view(slo_target(monitor, config), measured, seconds["down"]),
    )


# --- backups, restore tests, drills, deploys ------------------------------------------------


@dataclass
class BackupSummary:
    database: str
    runs: int
    failures: int
    verification_failures: int
    last_size_bytes: int | None
    size_change_pct: float | None
    mean_duration_s: float | None
    last_duration_s: float | None
    last_success_at: datetime | None


@dataclass
class RestoreSummary:
    database: str
    runs: int
    failures: int
    rto_s: float
    rto_missed: int
    last_duration_s: float | None
    max_duration_s: float | None
    mean_duration_s: float | None


@dataclass
class DrillSummary:
    started_at: datetime
    status: str
    rto_s: float | None
    rpo_s: float | None
    rto_met: bool | None
    rpo_met: bool | None


@dataclass
class DeploySummary:
    target: str
    verifications: int
    passed: int
    failed: int
    rolled_back: int
    rollback_failures: int


def backup_rows(store: Store, period: Period) -> pd.DataFrame:
    query = select(
        Backup.id,
        Backup.database,
        Backup.created_at,
        Backup.status,
        Backup.size_bytes,
        Backup.duration_s,
        Backup.verified,
    ).where(Backup.created_at >= period.start, Backup.created_at < period.end)
    frame = _frame(store, query.order_by(Backup.created_at))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def verification_rows(store: Store, period: Period) -> pd.DataFrame:
    """Verifications in the period, with the database of the backup each one checked."""
    query = (
        select(BackupVerification.status, Backup.database)
        .join(Backup, Backup.id == BackupVerification.backup_id)
        .where(
            BackupVerification.verified_at >= period.start,
            BackupVerification.verified_at < period.end,
        )
    )
    return _frame(store, query)


def summarize_backups(
    databases: list[str], backups: pd.DataFrame, verifications: pd.DataFrame
) -> list[BackupSummary]:
    found = []
    for name in databases:
        runs = backups[backups["database"] == name]
        good = _where(runs, "status", is_success)
        sized = good.dropna(subset=["size_bytes"])
        checks = verifications[verifications["database"] == name]
        found.append(
            BackupSummary(
                database=name,
                runs=len(runs),
                failures=_count(runs["status"], is_failure),
                verification_failures=_count(checks["status"], lambda s: not is_success(s)),
                last_size_bytes=int(sized["size_bytes"].iloc[-1]) if len(sized) else None,
                size_change_pct=_change_pct(sized["size_bytes"]),
                mean_duration_s=_mean(good["duration_s"]),
                last_duration_s=_last(good["duration_s"]),
                last_success_at=good["created_at"].iloc[-1].to_pydatetime() if len(good) else None,
            )
        )
    return found


def restore_rows(store: Store, period: Period) -> pd.DataFrame:
    query = select(
        RestoreTest.database,
        RestoreTest.started_at,
        RestoreTest.status,
        RestoreTest.duration_s,
        RestoreTest.rto_met,
    ).where(RestoreTest.started_at >= period.start, RestoreTest.started_at < period.end)
    frame = _frame(store, query.order_by(RestoreTest.started_at))
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    return frame


def summarize_restores(
    databases: list[str], tests: pd.DataFrame, rto: timedelta
) -> list[RestoreSummary]:
    """Durations are those of the restores that worked (a failed one measured nothing).
    A restore missed its RTO when it says so, or (unsaid) when it took longer than it."""
    found = []
    for name in databases:
        runs = tests[tests["database"] == name]
        good = _where(runs, "status", is_success)
        limit = rto.total_seconds()
        missed = sum(
            1
            for met, took in zip(good["rto_met"], good["duration_s"], strict=True)
            if met is False or (pd.isna(met) and pd.notna(took) and took > limit)
        )
        found.append(
            RestoreSummary(
                database=name,
                runs=len(runs),
                failures=_count(runs["status"], is_failure),
                rto_s=rto.total_seconds(),
                rto_missed=missed,
                last_duration_s=_last(good["duration_s"]),
                max_duration_s=_max(good["duration_s"]),
                mean_duration_s=_mean(good["duration_s"]),
            )
        )
    return found


def drill_rows(store: Store, period: Period) -> list[DrillSummary]:
    query = (
        select(Drill)
        .where(Drill.started_at >= period.start, Drill.started_at < period.end)
        .order_by(Drill.started_at)
    )
    with store.session() as session:
        return [
            DrillSummary(d.started_at, d.status, d.rto_s, d.rpo_s, d.rto_met, d.rpo_met)
            for d in session.scalars(query)
        ]


def deploy_rows(store: Store, period: Period) -> pd.DataFrame:
    query = select(
        DeployVerification.target, DeployVerification.kind, DeployVerification.verdict
    ).where(
        DeployVerification.started_at >= period.start, DeployVerification.started_at < period.end
    )
    return _frame(store, query)


def summarize_deploys(targets: list[str], rows: pd.DataFrame) -> list[DeploySummary]:
    """Deploy verifications per target; a rollback is a deploy that ended rolled back
    (whether or not the rollback itself worked)."""
    found = []
    for name in targets:
        deploys = rows[(rows["target"] == name) & (rows["kind"] == "deploy")]
        verdicts = deploys["verdict"]
        found.append(
            DeploySummary(
                target=name,
                verifications=len(deploys),
                passed=int((verdicts == "passed").sum()),
                failed=int(verdicts.isin(["failed", ROLLED_BACK, ROLLBACK_FAILED]).sum()),
                rolled_back=int(verdicts.isin([ROLLED_BACK, ROLLBACK_FAILED]).sum()),
                rollback_failures=int((verdicts == ROLLBACK_FAILED).sum()),
            )
        )
    return found


def _where(frame: pd.DataFrame, column: str, predicate: Callable[[Any], bool]) -> pd.DataFrame:
    return frame[frame[column].map(predicate).astype(bool)]


def _count(values: Iterable[Any], predicate: Callable[[Any], bool]) -> int:
    return sum(1 for value in values if predicate(value))


def _change_pct(values: pd.Series) -> float | None:
    if len(values) < 2 or not values.iloc[0]:
        return None
    return 100.0 * (float(values.iloc[-1]) - float(values.iloc[0])) / float(values.iloc[0])


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.mean()) if len(values) else None


def _max(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.max()) if len(values) else None


def _last(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.iloc[-1]) if len(values) else None


# --- the whole report -----------------------------------------------------------------------


@dataclass
class Report:
    """Everything `vigil report` prints; the frames feed the charts and are not in JSON."""

    period: Period
    generated_at: datetime
    monitors: list[MonitorSummary]
    incidents: list[dict[str, Any]]
    backups: list[BackupSummary]
    restore_tests: list[RestoreSummary]
    drills: list[DrillSummary]
    deploys: list[DeploySummary]
    daily_uptime: pd.DataFrame = field(repr=False)
    daily_latency: pd.DataFrame = field(repr=False)
    backup_history: pd.DataFrame = field(repr=False)
    restore_history: pd.DataFrame = field(repr=False)  # the restores that worked

    @property
    def slo_missed(self) -> list[MonitorSummary]:
        return [m for m in self.monitors if m.slo is not None and not m.slo.met]

    @property
    def overall_uptime_pct(self) -> float | None:
        """Time-weighted over every monitor: total up minutes over total measured minutes."""
        measured = sum(m.measured_minutes for m in self.monitors)
        down = sum(m.downtime_minutes for m in self.monitors)
        return 100.0 * (measured - down) / measured if measured else None

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(
            {
                "period": {
                    "start": self.period.start,
                    "end": self.period.end,
                    "days": self.period.seconds / 86400,
                    "timezone": self.period.timezone,
                },
                "generated_at": self.generated_at,
                "overall_uptime_pct": self.overall_uptime_pct,
                "monitors": [asdict(m) for m in self.monitors],
                "incidents": self.incidents,
                "backups": [asdict(b) for b in self.backups],
                "restore_tests": [asdict(r) for r in self.restore_tests],
                "drills": [asdict(d) for d in self.drills],
                "deploys": [asdict(d) for d in self.deploys],
            }
        )


def build_report(config: Config, store: Store, now: datetime, days: int = 30) -> Report:
    """The report over the `days` × 24h before `now`."""
    period = Period.last(now, days, config.timezone)
    names = [m.name for m in config.monitors]
    timeline = load_timeline(store, config, names, period)
    totals = timeline.totals()
    incident_table = timeline.incident_table()
    samples = latencies(store, names, period)
    latency = percentiles(samples, ["monitor"]).set_index("monitor")
    monitors = [
        summarize_monitor(
            m,
            config,
            totals.loc[m.name] if m.name in totals.index else None,
            incident_table[incident_table["monitor"] == m.name],
            latency.loc[m.name] if m.name in latency.index else None,
        )
        for m in config.monitors
    ]
    databases = [d.name for d in config.databases]
    backups = backup_rows(store, period)
    restores = restore_rows(store, period)
    return Report(
        period=period,
        generated_at=now,
        monitors=monitors,
        incidents=_incident_list(incident_table),
        backups=summarize_backups(databases, backups, verification_rows(store, period)),
        restore_tests=summarize_restores(databases, restores, config.restore_test.max_duration),
        drills=drill_rows(store, period),
        deploys=summarize_deploys(list(config.deploys), deploy_rows(store, period)),
        daily_uptime=_daily_uptime(timeline),
        daily_latency=percentiles(samples, ["monitor", "day"]),
        backup_history=backups,
        restore_history=_where(restores, "status", is_success),
    )


def _daily_uptime(timeline: Timeline) -> pd.DataFrame:
    """monitor, day, measured and DOWN seconds, uptime_pct (None on a day never measured)."""
    table = timeline.totals(["monitor", "day"]).reset_index()
    measured = table["measured"].where(table["measured"] > 0)
    table["uptime_pct"] = 100.0 * (measured - table["down"]) / measured
    return table


def _incident_list(table: pd.DataFrame) -> list[dict[str, Any]]:
    counted = table[table["measured_s"] > 0].sort_values("started_at", ascending=False)
    return [
        {
            "monitor": row.monitor,
            "state": row.state,
            "started_at": row.started_at.to_pydatetime(),
            "ended_at": None if pd.isna(row.ended_at) else row.ended_at.to_pydatetime(),
            "minutes": row.seconds / 60,
            "ongoing": bool(row.ongoing),
            "severity": row.severity,
            "cause": None if pd.isna(row.cause) else row.cause,
        }
        for row in counted.itertuples()
    ]


def _jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601, numpy scalars as Python numbers, NaN as null."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
