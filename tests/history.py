"""Months of generated history with outages, maintenance and degraded spells of known length.

`simulate` runs the sweep's own decisions (`vigil.sweep.decision.decide`, `check_rows`,
`rollup_rows`) once per sweep time, with verdicts taken from a list of `Episode`s, so the
store ends up holding exactly what the real sweep would have written; `write` stores it
and opens/closes incidents with the sweep's own records code.

`Scenario(end)` is the history the report, status page, metrics and status tests share,
laid out backwards from `end`: `STANDARD` ends at a fixed instant (the exact-number tests
call the code with `now=END`); `recent()` ends now, for the CLI commands, which read the
clock. `Expected` holds the 30-day figures, derived by hand from the episodes and the state
rules (a monitor goes DOWN on its `failure_threshold`-th failed sweep and comes back on the
first good one), not read back from the code under test.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.fixtures.postgres import libpq_url, with_database
from vigil.conditions import ConditionResult, Observation
from vigil.config import Config, Monitor, parse_config
from vigil.monitoring import MonitorState
from vigil.store import (
    Backup,
    BackupVerification,
    DeployVerification,
    Drill,
    RestoreTest,
    Store,
    open_store,
)
from vigil.sweep.checks import MonitorCheck
from vigil.sweep.decision import SweepDecision, decide, state_changes
from vigil.sweep.records import check_rows, record_incidents, rollup_rows

EVERY = timedelta(minutes=10)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
END = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

SLOW_MS, FAST_MS = 400.0, 100.0
REFUSED = "connection refused by api.internal.example"
FAILED_503 = ConditionResult("[STATUS] == 200", False, "[STATUS] 503, expected == 200")
BODY_DEGRADED = ConditionResult(
    "[BODY].status == ok", False, '[BODY].status "degraded", expected == ok'
)
INTERNAL_NAMES = ("api", "web", "search", "db")
INTERNAL_HOSTS = ("internal.example",)


@dataclass(frozen=True)
class Episode:
    """`verdict` on every sweep in [start, end) of one monitor."""

    monitor: str
    start: datetime
    end: datetime
    verdict: str


@dataclass
class Records:
    checks: list[dict[str, Any]] = field(default_factory=list)
    rollups: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, MonitorState] = field(default_factory=dict)
    changes: list[SweepDecision] = field(default_factory=list)


def simulate(
    config: Config,
    episodes: list[Episode],
    start: datetime,
    end: datetime,
    joined: dict[str, datetime] | None = None,
) -> Records:
    """Sweep every `EVERY` from `start` up to and including `end`; a monitor in `joined`
    is swept only from that time on (it was added to the config then)."""
    records = Records()
    at, sweep = start, 0
    while at <= end:
        monitors = [m for m in config.monitors if (joined or {}).get(m.name, start) <= at]
        checks = [_check(m, _verdict(episodes, m.name, at), sweep) for m in monitors]
        decision = decide(config, checks, records.states, at)
        records.checks += check_rows(decision, run_id(sweep))
        records.rollups += rollup_rows(decision)
        records.states = decision.after
        if state_changes(decision):
            records.changes.append(decision)
        at, sweep = at + EVERY, sweep + 1
    return records


def run_id(sweep: int) -> str:
    return f"00000000-0000-4000-8000-{sweep:012d}"


def write(store: Store, records: Records) -> None:
    store.add_check_results(records.checks)
    store.add_rollups(records.rollups)
    store.save_monitor_states(records.states)
    for decision in records.changes:
        record_incidents(store, decision)


def _verdict(episodes: list[Episode], name: str, at: datetime) -> str:
    for episode in episodes:
        if episode.monitor == name and episode.start <= at < episode.end:
            return episode.verdict
    return "ok"


def _check(monitor: Monitor, verdict: str, sweep: int) -> MonitorCheck:
    """A probe result for the verdict: a refused connection has no latency; every tenth
    answered sweep is slow, so p50 is FAST_MS and p95/p99 are SLOW_MS."""
    latency = (SLOW_MS if sweep % 10 == 0 else FAST_MS) / 1000
    if verdict == "failed":
        return MonitorCheck(monitor, Observation(error=REFUSED), [FAILED_503], "failed")
    if verdict == "degraded":
        obs = Observation(status=200, body=b'{"status": "degraded"}', response_time=latency)
        return MonitorCheck(monitor, obs, [BODY_DEGRADED], "degraded")
    return MonitorCheck(monitor, Observation(status=200, response_time=latency), [], "ok")


# --- the shared scenario --------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """Four monitors, two databases and a deploy target, with history up to `end`."""

    end: datetime
    history_days: int = 95

    @property
    def start(self) -> datetime:
        return self.end - self.history_days * DAY

    @property
    def r30(self) -> datetime:
        """Where the 30-day report begins."""
        return self.end - 30 * DAY

    def ago(self, days: int = 0, hours: float = 0, minutes: float = 0) -> datetime:
        return self.end - timedelta(days=days, hours=hours, minutes=minutes)

    @property
    def patching(self) -> datetime:
        """One occurrence of web's weekly patching window: half a week before the end, so
        no episode and neither edge of a report touches it."""
        return self.ago(days=3, hours=12)

    @property
    def upgrade(self) -> datetime:
        """Web's announced one-off window, two days ahead."""
        return self.end + timedelta(days=2, hours=10)

    def config_text(self, store_url: str | None = None, extra: str = "") -> str:
        cron = f"{self.patching.minute} {self.patching.hour} * * {_cron_weekday(self.patching)}"
        store = f"store:\n  url: {store_url}\n" if store_url else ""
        return (
            store
            + CONFIG.format(
                own_from=_stamp(self.ago(days=3, hours=12)),
                own_to=_stamp(self.ago(days=3, hours=11)),
                upgrade_from=_stamp(self.upgrade),
                upgrade_to=_stamp(self.upgrade + HOUR),
                shared_from=_stamp(self.ago(days=8, hours=11)),
                shared_to=_stamp(self.ago(days=8, hours=9)),
                cron=cron,
            )
            + extra
        )

    def config(self, store_url: str | None = None, extra: str = "") -> Config:
        return parse_config(self.config_text(store_url, extra))

    def write_config(self, folder: Path, store_url: str, extra: str = "") -> Path:
        """The config file the CLI commands read; `extra` is appended YAML."""
        path = folder / "vigil.yaml"
        path.write_text(self.config_text(store_url, extra))
        return path

    def episodes(self) -> list[Episode]:
        r30, ago = self.r30, self.ago
        return [
            # Straddles the 30-day report's start: DOWN from r30-20m to r30+40m (60m).
            Episode("api", r30 - 30 * MIN, r30 + 40 * MIN, "failed"),
            # Failing for an hour: DOWN at the second failure, 10m in: 50 minutes.
            Episode("api", ago(20, hours=2), ago(20, hours=1), "failed"),
            # DEGRADED at once, UP two hours later; no downtime.
            Episode("api", ago(12, hours=-2), ago(12, hours=-4), "degraded"),
            # DOWN 50 minutes entirely inside the shared 2h maintenance window: not counted.
            Episode("api", ago(8, hours=11), ago(8, hours=10), "failed"),
            # Failing 30 minutes: DOWN for 20.
            Episode("api", ago(5, hours=9), ago(5, hours=8.5), "failed"),
            # DOWN 50 minutes, the first 20 of them inside api's own 1h window.
            Episode("api", ago(3, hours=11.5), ago(3, hours=10.5), "failed"),
            # Search DEGRADED for three hours.
            Episode("search", ago(2, hours=3), ago(2), "degraded"),
            # An old outage, only on the 90-day bars: web DOWN 50 minutes.
            Episode("web", ago(60, hours=2), ago(60, hours=1), "failed"),
            # Web is failing now: DOWN since end-20m, still open.
            Episode("web", ago(minutes=30), self.end + MIN, "failed"),
        ]

    def joined(self) -> dict[str, datetime]:
        """db was added to the config 10 days before the end, 20 minutes past a sweep hour."""
        return {"db": self.ago(10, minutes=-20)}

    def records(self) -> Records:
        return _records(self)

    def seed(self, store: Store, monitors: bool = True) -> None:
        """The monitors' history (unless `monitors` is False) and the duties' records."""
        if monitors:
            write(store, self.records())
        with store.session() as session:
            session.add_all(self.duty_rows())

    def duty_rows(self) -> list[Any]:
        """Backups, verifications, restore tests, a drill and deploys before the end."""
        return [
            *self._main_backups(),
            *self._billing_backups(),
            *self._restores(),
            self._drill(),
            *self._deploys(),
        ]

    def _main_backups(self) -> Iterator[Any]:
        """A nightly backup 10h before the end's time of day, growing 10 MB a day; the one
        7 days back failed, the one 10 days back failed verification."""
        for i in range(40):
            created = self.ago(39 - i, hours=10)
            failed, unverified = created == self.ago(7, hours=10), created == self.ago(10, hours=10)
            yield Backup(
                id=f"main-{i:02d}",
                database="main",
                created_at=created,
                completed_at=None if failed else created + timedelta(seconds=60 + i),
                status="failed" if failed else "succeeded",
                verified=not (failed or unverified),
                size_bytes=None if failed else 1_000_000_000 + i * 10_000_000,
                duration_s=None if failed else 60.0 + i,
                error="pg_dump: connection refused" if failed else None,
                flow_run_id=f"b0000000-0000-4000-8000-{i:012d}",
            )
            if not failed:
                yield BackupVerification(
                    verified_at=created + 5 * MIN,
                    backup_id=f"main-{i:02d}",
                    status="failed" if unverified else "passed",
                    checks_passed=5,
                    checks_failed=int(unverified),
                )

    def _billing_backups(self) -> Iterator[Any]:
        """Billing's backups stopped three days ago."""
        for i in range(20):
            created = self.ago(22 - i, hours=10)
            yield Backup(
                id=f"billing-{i:02d}",
                database="billing",
                created_at=created,
                completed_at=created + timedelta(seconds=30),
                status="succeeded",
                verified=True,
                size_bytes=200_000_000,
                duration_s=30.0,
            )

    def _restores(self) -> Iterator[Any]:
        for days, seconds, status in RESTORES:
            started = self.ago(days, hours=8)
            yield RestoreTest(
                database="main",
                started_at=started,
                finished_at=started + timedelta(seconds=seconds),
                duration_s=float(seconds),
                status=status,
                rto_met=None if status == "failed" else seconds <= 1800,
                flow_run_id=f"r0000000-0000-4000-8000-{days:012d}",
            )

    def _drill(self) -> Drill:
        return Drill(
            started_at=self.ago(15, hours=9),
            finished_at=self.ago(15, hours=8, minutes=20),
            status="missed",
            rto_s=2400.0,
            rpo_s=90000.0,
            rto_met=True,
            rpo_met=False,
            flow_run_id="d0000000-0000-4000-8000-000000000001",
        )

    def _deploys(self) -> Iterator[Any]:
        for hours_ago, kind, release, verdict in DEPLOYS:
            started = self.ago(hours=hours_ago)
            yield DeployVerification(
                target="web",
                kind=kind,
                release=release,
                started_at=started,
                finished_at=started + 2 * MIN,
                verdict=verdict,
                flow_run_id=f"e0000000-0000-4000-8000-{hours_ago:012d}",
            )


CONFIG = """\
timezone: UTC
sweep: {{every: 10m}}
monitors:
  - name: api
    url: http://api.internal.example:8080/health
    public: true
    display_name: Public API
    slo: 99.9%
    failure_threshold: 2
    maintenance:
      - {{from: "{own_from}", to: "{own_to}", reason: "api node reboot"}}
  - name: web
    url: http://web.internal.example/health
    public: true
    display_name: Web app
    group: Website
    maintenance:
      - {{cron: "{cron}", duration: 1h, reason: "Weekly patching"}}
      - {{from: "{upgrade_from}", to: "{upgrade_to}", reason: "Database upgrade"}}
  - name: search
    url: http://search.internal.example/health
    public: true
    display_name: Search
    group: Website
  - name: db
    url: http://db.internal.example/health
maintenance:
  - {{from: "{shared_from}", to: "{shared_to}", monitors: [api], reason: "network"}}
databases:
  - {{name: main, url: "postgresql://vigil@db.internal.example/main"}}
  - {{name: billing, url: "postgresql://vigil@db.internal.example/billing"}}
restore_test:
  max_duration: 30m
drill:
  rto: 1h
  rpo: 24h
deploys:
  web: {{health: {{url: "http://web.internal.example/health"}}}}
"""
# (days before the end, seconds, status): one over the 30m RTO, one failed, one too old.
RESTORES = [
    (35, 500, "passed"),
    (28, 600, "passed"),
    (21, 2000, "passed"),
    (14, 700, "failed"),
    (7, 650, "passed"),
]
# (hours before the end, kind, release, verdict), oldest first.
DEPLOYS = [
    (400, "deploy", "v1", "passed"),
    (300, "deploy", "v2", "passed"),
    (200, "deploy", "v3", "rolled_back"),
    (199, "rollback", "v2", "passed"),
    (100, "deploy", "v4", "passed"),
    (50, "deploy", "v5", "rollback_failed"),
]

STANDARD = Scenario(END)


def recent(history_days: int = 31) -> Scenario:
    """The scenario ending now (on the 10-minute sweep grid), for commands that read the
    clock; the config sweeps every 10m, so the last sweep is never stale."""
    now = datetime.now(UTC)
    return Scenario(
        now.replace(minute=now.minute - now.minute % 10, second=0, microsecond=0), history_days
    )


@cache
def _records(scenario: Scenario) -> Records:
    """The sweep loop is the slow part: run once per scenario and session."""
    config = scenario.config()
    return simulate(config, scenario.episodes(), scenario.start, scenario.end, scenario.joined())


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _cron_weekday(value: datetime) -> int:
    """cron counts from Sunday = 0, Python from Monday = 0."""
    return (value.weekday() + 1) % 7


class Expected:
    """The 30-day figures of any Scenario, by hand from its episodes."""

    API_DOWN_MIN = 40 + 50 + 20 + 30  # straddling the start (part), day 20, day 5, day 3 (part)
    API_MAINTENANCE_MIN = 120 + 60  # the shared 2h window and api's own 1h one
    API_MEASURED_MIN = 30 * 1440 - API_MAINTENANCE_MIN
    API_INCIDENTS = 4
    API_MTTR_MIN = (60 + 50 + 20 + 50) / 4  # full lengths, maintenance included
    API_DEGRADED_MIN = 120
    SEARCH_DEGRADED_MIN = 180
    DB_MEASURED_MIN = 10 * 1440 - 20
    WEB_DOWN_MIN = 20
    WEB_MAINTENANCE_MIN = 4 * 60  # weekly windows 3.5, 10.5, 17.5 and 24.5 days back


# --- stores ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    store: Store
    url: str
    scenario: Scenario


@contextmanager
def seeded_store(
    scenario: Scenario,
    backend: str,
    folder: Path,
    pg_server_url: str | None,
    monitors: bool = True,
) -> Iterator[Seeded]:
    """A store holding the scenario, on SQLite in `folder` (a copy of a file seeded once per
    session) or in a scratch PostgreSQL database dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'vigil.db'}"
        shutil.copyfile(_sqlite_template(scenario, monitors), folder / "vigil.db")
        with open_store(url) as store:
            yield Seeded(store, url, scenario)
        return
    with _database(backend, folder, pg_server_url) as url, open_store(url) as store:
        scenario.seed(store, monitors)
        yield Seeded(store, url, scenario)


@cache
def _sqlite_template(scenario: Scenario, monitors: bool) -> Path:
    """Seeded once; closing the store checkpoints the WAL, so the file alone is complete."""
    home = os.environ.get("VIGIL_HOME")  # the test session's own home (tests/conftest.py)
    path = Path(tempfile.mkdtemp(prefix="history-", dir=home)) / "vigil.db"
    with open_store(f"sqlite:///{path}") as store:
        scenario.seed(store, monitors)
    return path


@contextmanager
def _database(backend: str, folder: Path, pg_server_url: str | None) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'vigil.db'}"
        return
    assert pg_server_url is not None
    name = f"vigil_test_{secrets.token_hex(6)}"
    with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(pg_server_url, name)
    finally:
        with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
