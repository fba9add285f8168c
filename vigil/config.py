"""One YAML file declares every duty; this module reads it and refuses it loudly when wrong.

The file is found at `-c PATH`, else `$VIGIL_CONFIG`, else `./vigil.yaml`, else
`$VIGIL_HOME/vigil.yaml`. `${VAR}` and `${VAR:-default}` are filled from the environment
so secrets stay out of the file. Every
problem is reported at once, each with its key path (`monitors[2].url: ...`), because an
operator fixing a config wants the whole list, not one error per attempt.
"""

from __future__ import annotations

import functools
import os
import re
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from vigil.alert import Severity
from vigil.cron import Cron
from vigil.durations import Duration, Size, format_duration
from vigil.findings import Finding
from vigil.paths import default_backup_storage, default_store_url
from vigil.redact import forget_secrets, is_credential_name, redact, register_secrets, secrets_in
from vigil.yamlcache import load_yaml

# libyaml's C loader parses a 10,000-monitor file ~10x faster than the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class ConfigError(Finding):
    """A config that cannot be used; `errors` holds every `path: message` line."""

    def __init__(self, errors: list[str], path: Path | None = None) -> None:
        self.errors = errors
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(where + "; ".join(errors))


class Model(BaseModel):
    """Base for config sections: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- store, channels, routes ---------------------------------------------------------


class StoreConfig(Model):
    url: str = Field(default_factory=default_store_url)


class SlackChannel(Model):
    type: Literal["slack"]
    webhook_url: str | None = None
    token: str | None = None
    channel: str | None = None
    api_url: str | None = None
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackChannel:
        if bool(self.webhook_url) == bool(self.token):
            raise ValueError("give either webhook_url or token (with channel), not both or neither")
        if self.token and not self.channel:
            raise ValueError("a bot token needs a channel (e.g. '#ops')")
        return self


class EmailChannel(Model):
    type: Literal["email"]
    host: str
    port: int | None = None
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    from_addr: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    verify_tls: bool = True
    timeout: Duration = timedelta(seconds=15)

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "ssl": 465, "none": 25}[self.security]


class WebhookChannel(Model):
    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = {}
    timeout: Duration = timedelta(seconds=10)


Channel = Annotated[
    SlackChannel | EmailChannel | WebhookChannel,
    Field(discriminator="type"),
]


# --- maintenance and monitors -----------------------------------------------------------


class MaintenanceWindow(Model):
    """A one-off window (`from`/`to`) or a recurring one (`cron` + `duration`)."""

    start: datetime | None = Field(default=None, alias="from")
    end: datetime | None = Field(default=None, alias="to")
    cron: Cron | None = None
    duration: Duration | None = None
    timezone: str = "UTC"
    reason: str = ""
    monitors: list[str] = []

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceWindow:
        one_off = self.start is not None or self.end is not None
        recurring = self.cron is not None or self.duration is not None
        if one_off == recurring:
            raise ValueError("give either from/to or cron/duration")
        if one_off and (self.start is None or self.end is None or self.end <= self.start):
            raise ValueError("a one-off window needs from and a later to")
        if recurring and not (self.cron and self.duration):
            raise ValueError("a recurring window needs both cron and duration")
        _check_timezone(self.timezone)
        return self


class Monitor(Model):
    name: str = Field(min_length=1)
    type: Literal["http", "tcp", "postgres"] = "http"
    url: str | None = None
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    follow_redirects: bool = True
    verify_tls: bool = True
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    query: str | None = None
    timeout: Duration = timedelta(seconds=10)
    conditions: list[str] = Field(default_factory=list)
    failure_threshold: int = Field(default=2, ge=1)
    success_threshold: int = Field(default=1, ge=1)
    severity: Severity = "high"
    fallback: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    remind_every: Duration | None = None
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    max_body: Size = 1_000_000
    public: bool = False
    display_name: str | None = None
    group: str | None = None
    slo: float | None = Field(default=None, gt=0, le=100)
    # How often this monitor is checked (default: sweep.every); each sweep probes the due ones.
    interval: Duration | None = None
    # Where it is probed from (names under `locations:`; default all) and how many of them
    # must see a failure for it to count (default: a majority of them).
    locations: list[str] | None = Field(default=None, min_length=1)
    quorum: int | None = Field(default=None, ge=1)
    below_quorum: Literal["warn", "degraded"] | None = None

    @field_validator("slo", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        return _parse_percent(value)

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, value: list[str]) -> list[str]:
        return _check_conditions(value)

    @model_validator(mode="after")
    def _fields_for_type(self) -> Monitor:
        if self.type in ("http", "postgres") and not self.url:
            raise ValueError(f"url is required for a {self.type} monitor")
        if self.type == "http":
            _check_url(self.url or "", ("http", "https"), "url")
            if self.fallback:
                _check_url(self.fallback, ("http", "https"), "fallback")
        if self.type == "postgres":
            _check_url(self.url or "", ("postgresql", "postgres"), "url")
        if self.type == "tcp" and not (self.host and self.port):
            raise ValueError("host and port are required for a tcp monitor")
        if self.query and self.type != "postgres":
            raise ValueError("query is only for postgres monitors")
        return self


class SweepConfig(Model):
    every: Duration = timedelta(minutes=1)
    concurrency: int = Field(default=100, ge=1)
    per_host: int = Field(default=0, ge=0)
    shards: int = Field(default=1, ge=1)
    heartbeat_url: str | None = None
    digest_after: int = Field(default=3, ge=1)
    # What a failure seen from fewer locations than the quorum makes a monitor: UP with a
    # regional warning, or DEGRADED.
    below_quorum: Literal["warn", "degraded"] = "warn"
    # How long, beyond its own time budget, a sweep waits for its shard and location runs to
    # be picked up by a worker and report (workers poll every 10-15 s by default).
    run_grace: Duration = timedelta(seconds=60)


class Location(Model):
    """Where probes run: a Prefect work pool (and optionally one of its queues) with its own
    workers; `local` (no pool) is the machine running the sweep."""

    pool: str | None = None
    queue: str | None = None
    # How many runs share the location's monitors (on its pool and queue), merged into the
    # location's one view before the quorum decides.
    shards: int = Field(default=1, ge=1)


LOCAL = "local"


# --- databases and the backup family ----------------------------------------------------


class Database(Model):
    name: str
    url: str
    critical_tables: list[str] = []
    min_rows: dict[str, int] = {}
    min_backup_size: Size = 0
    exact_counts: bool = True
    # Tables whose rows are hashed in key order at backup time and after every restore, so
    # changed contents with equal counts are caught (a full read of each: see the README).
    fingerprint_tables: list[str] = []

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        _check_url(value, ("postgresql", "postgres"), "url")
        return value

    @field_validator("name")
    @classmethod
    def _segment(cls, value: str) -> str:
        return check_segment(value, "database name")


def check_segment(value: str, what: str) -> str:
    """A name vigil uses as one path segment (a backup folder, an object key, a lock or an
    artifact key): letters, digits, `_ . -`, starting with a letter or digit, so `.` and `..`
    (which would put backups outside the backup folder) and `/` can never be one."""
    if not SEGMENT.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must be letters, digits, '_', '.' or '-', starting with a "
            "letter or digit (it names folders and keys)"
        )
    return value


SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}")


class S3Settings(Model):
    endpoint_url: str | None = None
    region: str | None = None
    sse: Literal["AES256", "aws:kms"] | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    # About concurrency + 1 parts in memory (that many uploading, one filling): 8 MiB keeps a
    # zstd + age backup under 200 MB (two parts of 16 MiB measured 212-218 MB) and was no
    # slower; 10,000 parts make 80 GB, raise it for larger archives.
    part_size: Size = 8 * 1024**2
    # Parts uploading at once. More only helps while the upload, not the dump, is the
    # slowest stage (a distant bucket); each costs another part of memory.
    concurrency: int = 2

    @field_validator("part_size")
    @classmethod
    def _part_bounds(cls, value: int) -> int:
        if not 5 * 1024**2 <= value <= 512 * 1024**2:
            raise ValueError("part_size must be between 5MiB and 512MiB")
        return value

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().isdigit():  # from ${VARIABLE}
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
            raise ValueError(
                f"concurrency must be a whole number of parts uploading at once, from 1 to 64 "
                f"(memory is about concurrency + 1 parts of part_size), not {value!r}"
            )
        return value


class Retention(Model):
    keep_last: int = Field(default=3, ge=1)
    keep_daily: int = Field(default=7, ge=0)
    keep_weekly: int = Field(default=4, ge=0)
    keep_monthly: int = Field(default=12, ge=0)


class Compression(Model):
    """How the archive is compressed. `zstd` (the default): pg_dump writes an uncompressed
    custom-format archive and vigil compresses the stream on `threads` threads of its own,
    twice as fast as pg_dump's one-core zlib and smaller; `gzip` is pg_dump's own `-Z level`
    (what vigil did before); `none` stores the archive as pg_dump wrote it with `-Z0`.
    Written as `zstd`, `zstd:3`, `gzip:6`, `none`, a bare number (gzip, as before), or a
    mapping `{codec: zstd, level: 1, threads: 2}`."""

    codec: Literal["zstd", "gzip", "none"] = "zstd"
    level: int = 1
    threads: int = Field(default=2, ge=0, le=64)

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("compression must be zstd, zstd:LEVEL, gzip:LEVEL or none")
        if isinstance(value, int):
            return {"codec": "gzip", "level": value}
        if isinstance(value, str):
            codec, _, level = value.strip().partition(":")
            if codec not in ("zstd", "gzip", "none") or (level and not level.isdigit()):
                raise ValueError(
                    f"compression {value!r} must be zstd, zstd:LEVEL, gzip:LEVEL or none"
                )
            default = 0 if codec == "none" else 1
            return {"codec": codec, "level": int(level) if level else default}
        return value

    @model_validator(mode="after")
    def _level_range(self) -> Compression:
        low, high = {"zstd": (1, 19), "gzip": (0, 9), "none": (0, 0)}[self.codec]
        if not low <= self.level <= high:
            raise ValueError(f"{self.codec} level must be between {low} and {high}")
        return self

    @property
    def pg_dump_level(self) -> int:
        """pg_dump's own `--compress`: only gzip compresses inside pg_dump."""
        return self.level if self.codec == "gzip" else 0

    @property
    def label(self) -> str:
        return "none" if self.codec == "none" else f"{self.codec}:{self.level}"


class Encryption(Model):
    """`backup.encrypt`: seal every archive (and the config tarball) with age for these
    X25519 recipients (`age1...`, from `age-keygen -y`). The backup host holds only these
    public keys; the identities that open the backups live with the restore test, the
    drill and the people who restore. A new list applies to new backups only."""

    recipients: list[str] = Field(min_length=1)

    @field_validator("recipients")
    @classmethod
    def _age_recipients(cls, value: list[str]) -> list[str]:
        import pyrage

        for recipient in value:
            try:
                pyrage.x25519.Recipient.from_str(recipient.strip())
            except Exception:
                raise ValueError(
                    f"{recipient!r} is not an age X25519 recipient (age1..., the public key "
                    "`age-keygen -y key.txt` prints)"
                ) from None
        return [r.strip() for r in value]


def _identity_source(value: str | None) -> str | None:
    """`env:NAME` (the identity in an environment variable) or a path to an age identity
    file (what `age -i` reads); the identity itself never goes in the config file."""
    if value is None:
        return None
    if value.startswith("AGE-SECRET-KEY-"):
        raise ValueError(
            "put the identity in a file or an environment variable and name it here "
            "(a path, or env:NAME); the config must not hold the secret key itself"
        )
    if value.startswith("env:") and not re.fullmatch(r"env:[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(f"{value!r}: env: must be followed by an environment variable name")
    return value


class BackupConfig(Model):
    storage: str = Field(default_factory=default_backup_storage)
    s3: S3Settings = S3Settings()
    max_age: Duration = timedelta(hours=26)
    retention: Retention = Retention()
    config_files: list[str] = []
    compression: Compression = Compression()
    encrypt: Encryption | None = None
    schedule: Cron = "0 2 * * *"
    # How long a backup waits for another backup of the same database to finish.
    lock_timeout: Duration = timedelta(minutes=30)

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        _check_url(value, ("s3", "file"), "storage")
        parts = urlsplit(value)
        if parts.scheme == "file" and (
            parts.netloc not in ("", "localhost") or parts.path in ("", "/")
        ):
            raise ValueError(
                f"storage {value!r} must name a folder on this machine "
                "(file:///var/backups/vigil), not the root or another host"
            )
        if parts.scheme == "s3" and not parts.netloc:
            raise ValueError(f"storage {value!r} must name a bucket (s3://bucket/prefix)")
        return value


class SqlCheck(Model):
    name: str
    sql: str
    database: str | None = None


class RestoreTestConfig(Model):
    scratch_url: str | None = None
    max_duration: Duration = timedelta(minutes=30)
    hard_timeout: Duration | None = None
    jobs: int = Field(default=2, ge=1)
    amcheck: bool = True
    checks: list[SqlCheck] = []
    schedule: Cron = "0 4 * * 0"
    # The age identity that opens sealed backups: a file path or env:NAME.
    identity: str | None = None

    _identity = field_validator("identity")(_identity_source)

    @field_validator("scratch_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None:
            _check_url(value, ("postgresql", "postgres"), "scratch_url")
        return value


class AppCheck(Model):
    start: str
    health: str
    stop: str | None = None
    timeout: Duration = timedelta(minutes=2)


class RunbookStep(Model):
    name: str
    command: str
    timeout: Duration = timedelta(minutes=5)


class DrillConfig(Model):
    rto: Duration = timedelta(hours=1)
    rpo: Duration = timedelta(hours=24)
    target_url: str | None = None
    fallbacks: list[str] = []
    app_check: AppCheck | None = None
    steps: list[RunbookStep] = []
    schedule: Cron = "0 3 1-7 * 0"
    # The age identity that opens sealed backups: a file path or env:NAME.
    identity: str | None = None

    _identity = field_validator("identity")(_identity_source)

    @field_validator("target_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None:
            _check_url(value, ("postgresql", "postgres"), "target_url")
        return value


# --- deploy targets ------------------------------------------------------------------------


class HealthCheck(Model):
    url: str
    conditions: list[str] = ["[STATUS] == 200"]
    timeout: Duration = timedelta(seconds=5)
    headers: dict[str, str] = {}

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, value: list[str]) -> list[str]:
        # `[RELEASE]` is the release under verification, bound when the check runs.
        from vigil.conditions import bind_release

        _check_conditions([bind_release(text, "r1") for text in value])
        return value


class Pm2Check(Model):
    """pm2's own process list (`pm2 jlist`) for one app, under the PM2_HOME it runs in."""

    app: str
    home: str | None = None  # PM2_HOME (pm2's default: ~/.pm2)
    max_restarts: int = Field(default=0, ge=0)  # restarts allowed during one window
    bin: str = "pm2"


class ProcessCheck(Model):
    command: str | None = None
    pm2: Pm2Check | None = None
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _one_kind(self) -> ProcessCheck:
        if (self.command is None) == (self.pm2 is None):
            raise ValueError("a process check is either `command` or `pm2`, exactly one")
        return self


class CommandRollback(Model):
    type: Literal["command"]
    command: str
    timeout: Duration = timedelta(minutes=5)


class SymlinkRollback(Model):
    type: Literal["symlink"]
    releases_dir: str
    current: str
    restart: str | None = None
    timeout: Duration = timedelta(minutes=5)


class GitRollback(Model):
    type: Literal["git"]
    repo: str
    build: list[str] = []
    restart: str | None = None
    timeout: Duration = timedelta(minutes=10)


Rollback = Annotated[
    CommandRollback | SymlinkRollback | GitRollback,
    Field(discriminator="type"),
]


class DeployTarget(Model):
    health: HealthCheck | None = None
    pages: list[str] = []
    process: ProcessCheck | None = None
    window: Duration = timedelta(minutes=2)
    interval: Duration = timedelta(seconds=10)
    initial_delay: Duration = timedelta(0)  # Argo's initialDelay: boot time is not judged
    failure_limit: int = Field(default=0, ge=0)
    consecutive_error_limit: int = Field(default=4, ge=0)
    inconclusive_limit: int | None = Field(default=None, ge=0)
    lock_timeout: Duration = timedelta(minutes=10)
    severity: Severity = "high"
    rollback: Rollback | None = None

    @model_validator(mode="after")
    def _something_to_check(self) -> DeployTarget:
        if not (self.health or self.pages or self.process):
            raise ValueError("a deploy target needs at least one of health, pages, process")
        if self.interval > self.window:
            raise ValueError("interval must not be longer than window")
        return self


# --- reports and the status page ------------------------------------------------------------


class StatusPageConfig(Model):
    title: str = "Service status"
    show_errors: bool = False
    incident_days: int = Field(default=14, ge=1)
    maintenance_horizon: Duration = timedelta(days=14)
    out: str | None = None
    upload: str | None = None

    @field_validator("upload")
    @classmethod
    def _s3(cls, value: str | None) -> str | None:
        if value is not None:
            _check_url(value, ("s3",), "upload")
        return value


class ReportConfig(Model):
    schedule: Cron = "0 8 * * 1"
    days: int = Field(default=7, ge=1)
    severity: Severity = "low"
    channels: list[str] = []


# --- how long vigil keeps its own records ----------------------------------------------------


class RecordsRetention(Model):
    """How long vigil's records store keeps each kind of record (vigil/retention.py plans the
    pruning). Raw checks are the bulk (one row per monitor per sweep); the hourly rollups keep
    yearly SLOs and the 90-day bars; the rest is small and is the audit trail. `prefect_runs`
    is the flow-run retention of the Prefect server vigil starts (its db_vacuum service)."""

    checks: Duration = timedelta(days=30)
    rollups: Duration = timedelta(days=400)
    incidents: Duration = timedelta(days=1825)
    backups: Duration = timedelta(days=1825)
    restore_tests: Duration = timedelta(days=1825)
    drills: Duration = timedelta(days=1825)
    deploys: Duration = timedelta(days=1825)
    notifications: Duration = timedelta(days=1825)
    # 7 days of a sweep a minute is ~1.8 GB of Prefect database (benchmarks/soak.py); vigil's
    # own records keep the history beyond it.
    prefect_runs: Duration = timedelta(days=7)
    prefect_db_warn_size: Size = 5 * 1000**3
    batch_size: int = Field(default=2000, ge=1, le=100_000)
    schedule: Cron = "30 3 * * *"

    @model_validator(mode="after")
    def _sane(self) -> RecordsRetention:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, timedelta) and value < timedelta(minutes=1):
                raise ValueError(f"{name} must be at least 1m")
        if self.prefect_runs <= timedelta(hours=1):
            raise ValueError("prefect_runs must be longer than 1h (Prefect's own minimum)")
        if self.rollups < self.checks:
            raise ValueError("rollups must be kept at least as long as checks (they sum them)")
        return self

    @property
    def prefect_runs_horizon(self) -> timedelta:
        """How long the Prefect server vigil starts keeps finished flow runs."""
        return self.prefect_runs


# --- the whole file ----------------------------------------------------------------------------


class Config(Model):
    timezone: str = "UTC"
    slo: float | None = Field(default=None, gt=0, le=100)
    store: StoreConfig = StoreConfig()
    channels: dict[str, Channel] = {}
    # `{severity: [channel, ...]}` for every duty, and `{duty: {severity: [channel, ...]}}`
    # for one duty's own (`route`); checked by `route_errors`.
    routes: dict[str, Any] = {}
    sweep: SweepConfig = SweepConfig()
    maintenance: list[MaintenanceWindow] = []
    locations: dict[str, Location] = {}
    monitors: list[Monitor] = []
    databases: list[Database] = []
    backup: BackupConfig = BackupConfig()
    restore_test: RestoreTestConfig = RestoreTestConfig()
    drill: DrillConfig = DrillConfig()
    deploys: dict[str, DeployTarget] = {}
    status_page: StatusPageConfig = StatusPageConfig()
    report: ReportConfig = ReportConfig()
    retention: RecordsRetention = RecordsRetention()

    @field_validator("slo", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        return _parse_percent(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_timezone(value)

    @cached_property
    def monitors_by_name(self) -> dict[str, Monitor]:
        """Index for lookups by name: a sweep asks once per monitor."""
        return {m.name: m for m in self.monitors}

    def monitor(self, name: str) -> Monitor | None:
        return self.monitors_by_name.get(name)

    def interval_of(self, monitor: Monitor) -> timedelta:
        """How often `monitor` is checked: its own `interval`, else `sweep.every`."""
        return monitor.interval or self.sweep.every

    def locations_of(self, monitor: Monitor) -> list[str]:
        """Where `monitor` is probed from, in `locations:` order; [] without locations."""
        if monitor.locations is None:
            return list(self.locations)
        return [name for name in self.locations if name in monitor.locations]

    def quorum_of(self, monitor: Monitor) -> int:
        """How many of its locations must see a failure: its `quorum`, else a majority."""
        return monitor.quorum or len(self.locations_of(monitor)) // 2 + 1

    def database(self, name: str) -> Database | None:
        return next((d for d in self.databases if d.name == name), None)

    def databases_for(self, name: str | None, action: str) -> list[Database]:
        """The databases a duty works on: all, or the one named; a clear error otherwise."""
        if not self.databases:
            raise ValueError(f"no databases to {action}: add them under `databases:` in the config")
        if name is None:
            return list(self.databases)
        found = self.database(name)
        if found is None:
            known = ", ".join(d.name for d in self.databases)
            raise ValueError(f"no database named {name!r} under `databases:` (known: {known})")
        return [found]

    def route(self, duty: str, severity: Severity) -> list[str]:
        """The channels that hear an alert of `duty` (its flow's name, `Alert.duty`) at
        `severity`: the duty's own route for that severity when it has one (`[]` silences
        it), else the route every duty shares. The one place routing is decided."""
        from vigil.duties import route_name

        name = route_name(duty)
        own = self.routes.get(name) if name else None
        if isinstance(own, dict) and severity in own:
            return list(own[severity])
        return list(self.routes.get(severity) or [])

    def summary(self) -> str:
        return (
            f"{len(self.monitors)} monitors, {len(self.databases)} databases, "
            f"{len(self.deploys)} deploy targets, {len(self.channels)} channels"
        )


def cross_check(config: Config) -> list[str]:
    """Errors that span sections: names that must refer to something that exists."""
    errors = route_errors(config.routes, config.channels)
    errors += _duplicates("monitors", [m.name for m in config.monitors])
    errors += _duplicates("databases", [d.name for d in config.databases])
    for target in config.deploys:
        if not SEGMENT.fullmatch(target):
            errors.append(
                f"deploys.{target}: a target name must be letters, digits, '_', '.' or '-', "
                "starting with a letter or digit (it names its lock and artifacts)"
            )
    errors += _location_errors(config)
    known = {m.name for m in config.monitors}
    for i, monitor in enumerate(config.monitors):
        if monitor.interval is not None and monitor.interval < config.sweep.every:
            errors.append(
                f"monitors[{i}].interval: {format_duration(monitor.interval)} is shorter than "
                f"sweep.every ({format_duration(config.sweep.every)}), how often sweeps run"
            )
        for j, dep in enumerate(monitor.depends_on):
            if dep not in known or dep == monitor.name:
                errors.append(f"monitors[{i}].depends_on[{j}]: no other monitor named {dep!r}")
    for i, window in enumerate(config.maintenance):
        for j, name in enumerate(window.monitors):
            if name not in known:
                errors.append(f"maintenance[{i}].monitors[{j}]: no monitor named {name!r}")
    for j, fallback in enumerate(config.drill.fallbacks):
        if fallback not in known and not fallback.startswith(("http://", "https://")):
            errors.append(f"drill.fallbacks[{j}]: {fallback!r} is neither a monitor nor a URL")
    for j, name in enumerate(config.report.channels):
        if name not in config.channels:
            errors.append(f"report.channels[{j}]: no channel named {name!r}")
    for j, check in enumerate(config.restore_test.checks):
        if check.database and config.database(check.database) is None:
            errors.append(
                f"restore_test.checks[{j}].database: no database named {check.database!r}"
            )
    return errors


def route_errors(routes: dict[str, Any], channels: dict[str, Any]) -> list[str]:
    """Every problem of `routes:`: a key that is neither a severity nor a duty, a duty's
    route that is not a mapping of severities, a list that is not channel names, a channel
    that does not exist."""
    from vigil.alert import SEVERITIES
    from vigil.duties import ROUTE_NAMES

    severities, duties = ", ".join(SEVERITIES), ", ".join(ROUTE_NAMES)
    errors: list[str] = []
    for key, value in routes.items():
        if key in SEVERITIES:
            errors += _channel_list_errors(f"routes.{key}", value, channels)
        elif key in ROUTE_NAMES:
            if not isinstance(value, dict):
                errors.append(
                    f"routes.{key}: a duty's route maps severities to channels, "
                    "e.g. {low: [deployments]}"
                )
                continue
            for severity, names in value.items():
                if severity not in SEVERITIES:
                    errors.append(
                        f"routes.{key}.{severity}: unknown severity {severity!r} "
                        f"(one of {severities})"
                    )
                    continue
                errors += _channel_list_errors(f"routes.{key}.{severity}", names, channels)
        else:
            errors.append(
                f"routes.{key}: {key!r} is neither a severity ({severities}) nor a duty ({duties})"
            )
    return errors


def _channel_list_errors(path: str, names: Any, channels: dict[str, Any]) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return [f"{path}: a list of channel names, e.g. [ops-slack]"]
    return [
        f"{path}[{j}]: no channel named {name!r}"
        for j, name in enumerate(names)
        if name not in channels
    ]


def _location_errors(config: Config) -> list[str]:
    """Locations that cannot be run, and monitors naming locations or quorums that do not
    exist."""
    errors: list[str] = []
    for name, location in config.locations.items():
        if not SEGMENT.fullmatch(name):
            errors.append(
                f"locations.{name}: a location name must be letters, digits, '_', '.' or '-', "
                "starting with a letter or digit (it names its deployment)"
            )
        if name == LOCAL and location.pool:
            errors.append(f"locations.{LOCAL}: is the machine running the sweep; it has no pool")
        if name != LOCAL and not location.pool:
            errors.append(f"locations.{name}.pool: required (the work pool its workers poll)")
        if name == LOCAL and location.shards > 1:
            errors.append(
                f"locations.{LOCAL}.shards: the sweep probes its local monitors itself, in one run"
            )
    for i, monitor in enumerate(config.monitors):
        if (monitor.locations or monitor.quorum) and not config.locations:
            errors.append(f"monitors[{i}]: locations and quorum need `locations:` in the config")
            continue
        for j, name in enumerate(monitor.locations or []):
            if name not in config.locations:
                errors.append(f"monitors[{i}].locations[{j}]: no location named {name!r}")
        count = len(config.locations_of(monitor))
        if monitor.quorum and count and monitor.quorum > count:
            errors.append(
                f"monitors[{i}].quorum: {monitor.quorum} is more than its {count} locations"
            )
    return errors


def config_places(path: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where the config may be, in order: `-c PATH` or `$VIGIL_CONFIG` alone when given,
    else `./vigil.yaml`, then `$VIGIL_HOME/vigil.yaml` (where `vigil up` writes the example)."""
    chosen = path or os.environ.get("VIGIL_CONFIG")
    if chosen:
        return [Path(chosen).expanduser()]
    from vigil.paths import vigil_home

    return [Path("vigil.yaml"), vigil_home(create=False) / "vigil.yaml"]


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """The first of `config_places` that exists, else the first of them."""
    places = config_places(path)
    return next((p for p in places if p.exists()), places[0])


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read, interpolate and validate the config file; raise ConfigError with every problem."""
    where = resolve_path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        looked = ", ".join(str(p) for p in config_places(path))
        raise ConfigError(
            [f"no config file (looked at {looked}); create one with `vigil init {where}`"],
            where,
        ) from None
    except OSError as exc:
        raise ConfigError([f"cannot read {where}: {exc.strerror}"], where) from None
    return parse_config(text, where)


# The last config this process validated: (file, text, environment read, config, secrets).
_last_parsed: (
    tuple[Path | None, str, tuple[tuple[str, str | None], ...], Config, list[str]] | None
) = None


def forget_parsed() -> None:
    """Validate the next config afresh (tests of what a first load does)."""
    global _last_parsed
    _last_parsed = None


def parse_config(text: str, where: Path | None = None) -> Config:
    """Validate config text; on success, register its secrets for redaction.

    The same text with the same environment gives back the config this process validated
    last: `vigil sweep` checks the file before it starts the flow run, which loads it again,
    and for 100,000 monitors a validation is ~2.5 s of CPU. A Config is immutable."""
    global _last_parsed
    environment = tuple((m["name"], os.environ.get(m["name"])) for m in _VAR.finditer(text))
    if _last_parsed is not None and _last_parsed[:3] == (where, text, environment):
        _register(_last_parsed[4])
        return _last_parsed[3]
    config, secrets = _validated(text, where)
    _last_parsed = (where, text, environment, config, secrets)
    return config


def _register(secrets: list[str]) -> None:
    forget_secrets()
    register_secrets(secrets)


def _validated(text: str, where: Path | None) -> tuple[Config, list[str]]:
    try:
        raw = load_yaml(text, where, _LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{at}not valid YAML ({getattr(exc, 'problem', exc)})"], where) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["the top level must be a mapping of sections"], where)
    secrets: list[str] = []
    errors: list[str] = []
    raw = _interpolate(raw, "", errors, secrets)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        errors += [_format_error(e) for e in exc.errors()]
        raise ConfigError(errors, where) from None
    errors += cross_check(config)
    if errors:
        raise ConfigError(errors, where)
    secrets = [*secrets, *secrets_in(raw), *_declared_secrets(config)]
    _register(secrets)
    return config, secrets


def _interpolate(value: Any, path: str, errors: list[str], secrets: list[str]) -> Any:
    # Key paths are built only on the way to a `${`: a 10,000-monitor file has few. A
    # mapping or list with nothing filled in is given back as it is, not copied (for
    # 100,000 monitors, 100,000 mappings and lists rebuilt for nothing).
    if isinstance(value, dict | list):
        filled = {}
        keyed = isinstance(value, dict)
        pairs: Any = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in pairs:
            if (isinstance(v, str) and "${" not in v) or not isinstance(v, str | dict | list):
                continue  # nothing to fill in (tested inline: one call per value is slow)
            where = (f"{path}.{k}" if path else str(k)) if keyed else f"{path}[{k}]"
            new = _interpolate(v, where, errors, secrets)
            if new is not v:
                filled[k] = new
        if not filled:
            return value
        if isinstance(value, dict):
            return {**value, **filled}
        return [filled.get(i, v) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def fill(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        found = os.environ.get(name)
        if found is None or (found == "" and default is not None):
            if default is None:
                errors.append(
                    f"{path}: environment variable {name} is not set (and has no default)"
                )
                return match.group(0)
            found = default
        if _secret_source(name, path):
            secrets.append(found)
        return found

    return _VAR.sub(fill, value)


def _secret_source(variable: str, path: str) -> bool:
    """A `${VAR}` whose value is secret: the variable or the key it fills says so
    (`${SLACK_WEBHOOK_URL}`, `password: ${DB_PASS}`)."""
    key = path.rsplit(".", 1)[-1].split("[", 1)[0]
    return any(is_credential_name(name) or "webhook" in name.lower() for name in (variable, key))


def _declared_secrets(config: Config) -> list[str]:
    """Values secret by vigil's own rules, whatever their keys: webhook URLs whole (their
    path is the credential) with their long path and query tokens (servers echo them
    alone), webhook headers, the heartbeat URL. Passwords and credential-like keys anywhere
    are `secrets_in`'s."""
    found: list[str | None] = []
    for channel in config.channels.values():
        if isinstance(channel, SlackChannel):
            found += [channel.webhook_url, channel.token]
        elif isinstance(channel, EmailChannel):
            found.append(channel.password)
        else:
            found += [channel.url, *channel.headers.values()]
    found += [config.backup.s3.secret_access_key, config.sweep.heartbeat_url]
    hooks = [c.url for c in config.channels.values() if isinstance(c, WebhookChannel)]
    if config.sweep.heartbeat_url:
        hooks.append(config.sweep.heartbeat_url)
    found += [token for url in hooks for token in _url_tokens(url)]
    found += [
        token
        for c in config.channels.values()
        if isinstance(c, SlackChannel) and c.webhook_url
        for token in _url_tokens(c.webhook_url)
    ]
    return [v for v in found if v]


def _url_tokens(url: str) -> list[str]:
    """Long path segments and query values of a webhook URL: servers echo them alone."""
    parts = urlsplit(url)
    pieces = parts.path.split("/") + [p.partition("=")[2] for p in parts.query.split("&")]
    return [p for p in pieces if len(p) >= 16]


def _format_error(error: Any) -> str:
    path = ""
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("slack", "email", "webhook", "command", "symlink", "git"):
            continue  # the discriminator's tag: the type key already says it
        else:
            path += f".{part}" if path else str(part)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required"
    elif error["type"] == "union_tag_invalid":
        tags = error["ctx"]["expected_tags"]
        message = f"unknown type {error['input'].get('type')!r}; expected one of {tags}"
    elif error["type"] == "union_tag_not_found":
        message = "a type key is required"
    return redact(f"{path or '(top level)'}: {message}")


def _duplicates(section: str, names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    errors = []
    for i, name in enumerate(names):
        if name in seen:
            errors.append(
                f"{section}[{i}].name: {name!r} is already used by {section}[{seen[name]}]"
            )
        seen.setdefault(name, i)
    return errors


# An everyday URL (lower-case scheme, plain ASCII host without '@', no spaces or controls),
# which urlsplit would accept with that scheme and host: checked without urlsplit, at
# 100,000 monitors ~1 s of a sweep's config validation. Anything else takes urlsplit.
_PLAIN_URL = re.compile(r"([a-z][a-z0-9+.\-]*)://([A-Za-z0-9.\-_~%!$&'()*+,;=:]+)([/?#][!-~]*)?")


def _check_url(value: str, schemes: tuple[str, ...], key: str) -> str:
    plain = _PLAIN_URL.fullmatch(value)
    if plain is not None and plain.group(1) in schemes:
        return value
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise ValueError(f"{key} {redact(value)!r} is not a {'/'.join(schemes)} URL")
    if parts.netloc.count("@") > 1:
        # Tools split such a URL differently (libpq at the first '@', Python at the last),
        # so it connects nowhere: a password with '@' fails as an unknown host, retried.
        raise ValueError(
            f"{key} has more than one '@' before its host (not shown: it holds a password): "
            "write an '@' inside the user or password as %40"
        )
    return value


def _check_conditions(value: list[str]) -> list[str]:
    problems = _condition_problems(tuple(value))
    if problems:
        raise ValueError("bad condition " + problems)
    return value


@functools.lru_cache(maxsize=4096)
def _condition_problems(texts: tuple[str, ...]) -> str:
    """Per distinct list of conditions: 100,000 monitors share a handful of lists."""
    from vigil.conditions import ConditionError, parse_condition

    problems = []
    for text in texts:
        try:
            parse_condition(text)
        except ConditionError as exc:
            problems.append(f"{text!r}: {exc}")
    return "; ".join(problems)


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (e.g. UTC, Europe/Berlin)") from None
    return value


def _parse_percent(value: Any) -> Any:
    if isinstance(value, str) and value.strip().endswith("%"):
        return float(value.strip()[:-1])
    return value
