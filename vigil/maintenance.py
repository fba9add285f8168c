"""Maintenance windows: when a monitor's failures are expected and must not page anyone.

A window is one-off (`from`/`to`) or recurring (`cron` + `duration`, the cron read in the
window's `timezone` the way vigil reads every cron: `vigil.cron`). Windows come from two
places: a monitor's own `maintenance` list, and the top-level `maintenance` list, which
covers every monitor unless its `monitors` names some. The sweep still checks monitors in
maintenance and still tracks their state; only the alerts are held back (see
`vigil.monitoring`).

Times written without an offset are read in the window's timezone, because that is what
an operator typing `from: 2024-05-01 02:00` with `timezone: Europe/Berlin` means. A
recurring window's `duration` is elapsed time, so a 4h window that crosses a DST change
still lasts 4h.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from vigil.config import Config, MaintenanceWindow
from vigil.cron import fires_after, last_fire

__all__ = [
    "Occurrence",
    "active_windows",
    "in_maintenance",
    "monitors_in_maintenance",
    "upcoming",
    "window_active",
]


@dataclass(frozen=True)
class Occurrence:
    """One concrete stretch of maintenance, for the status page's "scheduled" list."""

    start: datetime
    end: datetime
    reason: str
    monitors: tuple[str, ...]
    window: MaintenanceWindow


def active_windows(config: Config, monitor_name: str, at: datetime) -> list[MaintenanceWindow]:
    """The windows that cover `monitor_name` at `at`: its own first, then global ones."""
    return [w for w in _windows_for(config, monitor_name) if window_active(w, at)]


def in_maintenance(config: Config, monitor_name: str, at: datetime) -> bool:
    return any(window_active(w, at) for w in _windows_for(config, monitor_name))


def monitors_in_maintenance(config: Config, at: datetime) -> set[str]:
    """The monitors of `config` in maintenance at `at`, for a whole sweep at once.

    Each window is evaluated once (a recurring one builds a cron iterator), not once per
    monitor it covers: a global cron window over 10,000 monitors is one evaluation."""
    names = {m.name for m in config.monitors}
    quiet: set[str] = set()
    for window in config.maintenance:
        if window_active(window, at):
            quiet |= names if not window.monitors else names & set(window.monitors)
    for monitor in config.monitors:
        if monitor.name not in quiet and any(window_active(w, at) for w in monitor.maintenance):
            quiet.add(monitor.name)
    return quiet


def window_active(window: MaintenanceWindow, at: datetime) -> bool:
    """Whether `at` falls in the window; the end is exclusive, so back-to-back windows
    never both claim their shared instant."""
    occurrence = _latest_start(window, at)
    return occurrence is not None and occurrence[0] <= _utc(at) < occurrence[1]


def upcoming(config: Config, now: datetime, horizon: timedelta) -> list[Occurrence]:
    """Every occurrence that overlaps [now, now + horizon), in progress ones included,
    in start order; each names the configured monitors it covers."""
    until = _utc(now) + horizon
    found = [
        Occurrence(start, end, window.reason, covered, window)
        for window, covered in _all_windows(config)
        for start, end in _occurrences(window, now, until)
    ]
    return sorted(found, key=lambda o: (o.start, o.end, o.monitors))


def _windows_for(config: Config, monitor_name: str) -> list[MaintenanceWindow]:
    monitor = config.monitor(monitor_name)
    own = list(monitor.maintenance) if monitor else []
    shared = [w for w in config.maintenance if not w.monitors or monitor_name in w.monitors]
    return own + shared


def _all_windows(config: Config) -> Iterator[tuple[MaintenanceWindow, tuple[str, ...]]]:
    names = tuple(m.name for m in config.monitors)
    for window in config.maintenance:
        yield window, tuple(n for n in names if not window.monitors or n in window.monitors)
    for monitor in config.monitors:
        for window in monitor.maintenance:
            yield window, (monitor.name,)


def _latest_start(window: MaintenanceWindow, at: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence that started last at or before `at` (None if none has started);
    a later-starting one cannot cover `at`, and an earlier one ends no later."""
    if window.cron is None:
        start, end = _one_off(window)
        return (start, end) if start <= _utc(at) else None
    fired = last_fire(window.cron, _utc(at).astimezone(ZoneInfo(window.timezone)))
    return _span(window, fired)


def _occurrences(
    window: MaintenanceWindow, now: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    spans = [_one_off(window)] if window.cron is None else _recurring(window, now, until)
    return [(start, end) for start, end in spans if end > _utc(now) and start < until]


def _recurring(
    window: MaintenanceWindow, now: datetime, until: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """The occurrence in progress (if any), then every later one starting before `until`."""
    current = _latest_start(window, now)
    if current is not None:
        yield current
    assert window.cron is not None
    for fired in fires_after(window.cron, _utc(now).astimezone(ZoneInfo(window.timezone))):
        span = _span(window, fired)
        if span[0] >= until:
            return
        yield span


def _span(window: MaintenanceWindow, fired: datetime) -> tuple[datetime, datetime]:
    assert window.duration is not None  # the config guarantees it for a cron window
    start = _utc(fired)
    return start, start + window.duration


def _one_off(window: MaintenanceWindow) -> tuple[datetime, datetime]:
    assert window.start is not None and window.end is not None  # guaranteed by the config
    tz = ZoneInfo(window.timezone)
    return _utc(window.start, tz), _utc(window.end, tz)


def _utc(value: datetime, tz: ZoneInfo | None = None) -> datetime:
    """Aware UTC; a naive value is read in `tz` (the sweep's own clock is UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz or UTC)
    return value.astimezone(UTC)
