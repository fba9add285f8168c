"""Prefect's own database, kept bounded: the settings vigil starts a server with, and the
check `vigil status` makes of the server it talks to.

Prefect 3's `db_vacuum` service deletes only events by default; finished flow runs (with
their task runs, states, logs and artifacts) stay forever unless `flow_runs` is among
PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED. A sweep a minute leaves some 100-160 KB of server
database per run, so that default grows by gigabytes a month. The setting names below are
Prefect's public settings (prefect.settings.models.server.services,
ServerServicesDBVacuumSettings, 3.9): `enabled` (comma-separated set), `retention_period`
(seconds, more than one hour, by a run's end time).

This module reads the server's settings from its API (`GET /api/admin/settings`) and the
size of a local SQLite database file; it never connects to Prefect's database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from vigil.durations import format_duration, format_size

VACUUM_ENABLED = "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED"
VACUUM_RETENTION = "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD"
EVENTS_RETENTION = "PREFECT_SERVER_EVENTS_RETENTION_PERIOD"
WANTED_VACUUM = "events,flow_runs"
# Prefect's own default for events; vigil never keeps them longer, only shorter.
PREFECT_EVENTS_DEFAULT = timedelta(days=7)
DATABASE_URL_SETTINGS = (
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
)


def server_settings(retention: timedelta) -> dict[str, str]:
    """The settings a Prefect server needs for vigil: flow-run vacuum on, runs kept for
    `retention` (the config's `retention.prefect_runs`), and events (the largest table, a
    dozen per sweep run) kept no longer than the runs they tell of: at Prefect's default of
    7 days a one-hour run retention still leaves a week of events (measured in the soak:
    the flow-run count flat, the database growing as before)."""
    events = min(retention, PREFECT_EVENTS_DEFAULT)
    return {
        VACUUM_ENABLED: WANTED_VACUUM,
        VACUUM_RETENTION: str(int(retention.total_seconds())),
        EVENTS_RETENTION: f"PT{int(events.total_seconds())}S",  # ISO 8601: no seconds converter
    }


def server_env(env: Mapping[str, str], retention: timedelta) -> dict[str, str]:
    """`env` with vigil's vacuum settings added; an operator's own values win (they show in
    `vigil status` if they keep runs forever)."""
    return {**server_settings(retention), **env}


@dataclass
class PrefectDatabase:
    """What the server says about its database, and the warnings for the operator."""

    vacuum: list[str]
    retention: timedelta | None
    size_bytes: int | None
    size_of: str | None  # where the size was measured
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "vacuum": self.vacuum,
            "retention_s": self.retention.total_seconds() if self.retention else None,
            "size_bytes": self.size_bytes,
            "size_of": self.size_of,
            "warnings": self.warnings,
        }


def assess(
    settings: Mapping[str, Any],
    *,
    wanted: timedelta,
    warn_size: int,
    env: Mapping[str, str] | None = None,
) -> PrefectDatabase:
    """Judge the server's settings (the JSON of /api/admin/settings) and its database size."""
    vacuum_section = settings.get("server", {}).get("services", {}).get("db_vacuum", {})
    enabled = _vacuum_types(vacuum_section.get("enabled"))
    retention = _duration(vacuum_section.get("retention_period"))
    size, where = database_size(settings, os.environ if env is None else env)
    found = PrefectDatabase(sorted(enabled), retention, size, where)
    seconds = int(wanted.total_seconds())
    fix = f"set {VACUUM_ENABLED}={WANTED_VACUUM} and {VACUUM_RETENTION}={seconds} on the server"
    if "flow_runs" not in enabled:
        found.warnings.append(
            f"the Prefect server keeps flow runs forever ({VACUUM_ENABLED} is "
            f"{','.join(sorted(enabled)) or 'empty'}): {fix}, then restart it"
        )
    elif retention is not None and retention > wanted * 1.5:
        found.warnings.append(
            f"the Prefect server keeps flow runs {format_duration(retention.total_seconds())}, "
            f"vigil's retention.prefect_runs says {format_duration(seconds)}: "
            f"set {VACUUM_RETENTION}={seconds} on the server"
        )
    if size is not None and size > warn_size:
        found.warnings.append(
            f"the Prefect database is {format_size(size)} ({where}), over "
            f"retention.prefect_db_warn_size {format_size(warn_size)}: shorten "
            f"{VACUUM_RETENTION} (now {_words(retention)}) or raise the threshold"
        )
    return found


def database_size(
    settings: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[int | None, str | None]:
    """Bytes of the server's SQLite database with its WAL, when it is a file on this machine:
    from the connection URL in this environment, else the default file under the server's
    PREFECT_HOME. A PostgreSQL server's size is not read (vigil does not connect to it)."""
    url = next((env[name] for name in DATABASE_URL_SETTINGS if env.get(name)), None)
    if url is not None:
        if not url.startswith("sqlite"):
            return None, None
        path = Path(url.split(":///", 1)[-1]).expanduser()
    else:
        home = settings.get("home")
        if not home:
            return None, None
        path = Path(str(home)).expanduser() / "prefect.db"
    if not path.is_file():
        return None, None
    total = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return total, str(path)


def _vacuum_types(value: Any) -> set[str]:
    """Prefect's own reading: true is every type, false is events only, a list is itself."""
    if value is True:
        return {"events", "flow_runs", "orphans"}
    if value is False or value is None:
        return {"events"} if value is False else set()
    if isinstance(value, str):
        return {v.strip() for v in value.split(",") if v.strip()}
    return {str(v) for v in value}


def _duration(value: Any) -> timedelta | None:
    """Prefect serialises timedeltas as ISO 8601 (`PT2H`, `P90D`) or seconds."""
    if value is None:
        return None
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(timedelta).validate_python(value)
    except ValidationError:
        return None


def _words(value: timedelta | None) -> str:
    return format_duration(value.total_seconds()) if value else "?"


def read_settings(api_url: str, headers: Mapping[str, str], timeout: float = 1.0) -> Any:
    """The server's settings, or None when it does not answer in `timeout` (status must stay
    fast with the server down)."""
    import httpx

    try:
        response = httpx.get(
            f"{api_url.rstrip('/')}/admin/settings", headers=dict(headers), timeout=timeout
        )
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None
