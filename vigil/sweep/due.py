"""Per-monitor intervals: which monitors a sweep probes.

Sweeps run every `sweep.every`; a monitor with a longer `interval` is probed by the first
sweep at which that much time has passed since its last check (`last_checked_at` in the
records store, so every sweep, shard and location reads the same answer). A sweep starts
a little earlier or later than the minute it was scheduled for, so "that much time" allows
half a sweep interval: a 5-minute monitor on 1-minute sweeps is probed every fifth sweep,
not every sixth when a sweep starts a few hundred milliseconds early.

Thresholds, reminders and uptime count checks, not sweeps: a 5-minute monitor with
`failure_threshold: 2` goes DOWN on its second failed check, 5 to 10 minutes after the
outage began.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vigil.config import Config, Monitor


def has_intervals(config: Config) -> bool:
    """Whether any monitor is checked less often than every sweep (if none, every monitor is
    due every time and the sweep need not read the states before probing)."""
    every = config.sweep.every
    return any(m.interval is not None and m.interval > every for m in config.monitors)


def due(
    config: Config, monitors: list[Monitor], states: Mapping[str, Any], at: datetime
) -> list[Monitor]:
    """The monitors among `monitors` to probe in the sweep at `at`, in their order. `states`
    are the stored monitor states (anything with `last_checked_at`), by monitor name."""
    every = config.sweep.every
    slack = every / 2
    chosen = []
    for monitor in monitors:
        interval = monitor.interval
        if interval is None or interval <= every:
            chosen.append(monitor)
            continue
        state = states.get(monitor.name)
        last = state.last_checked_at if state is not None else None
        if last is None or at - last + slack >= interval:
            chosen.append(monitor)
    return chosen
