"""vigil's one clock: the "now" that dates its records and decides their age.

Everything vigil writes or judges by the calendar reads `now()`: a sweep's checks, rollups,
states and incidents, shard handoffs, the records store's own stamps, backups' records and
their retention, `vigil records prune` and the daily housekeeping, reports, the status page,
`vigil status` and the metrics. Durations and deadlines (time budgets, timeouts, how long a
dump took) stay on `time.monotonic()`, and so do the drill's RTO and the restore test's
timings: those are objectives measured against the wall, whatever the calendar says.

By default `now()` is the real time (UTC). `VIGIL_CLOCK` replaces it with an accelerated
(or offset, or frozen) clock, for soaks and tests that must cross retention horizons of
weeks in minutes. The value is the same in every process that reads it, so `vigil serve`,
the flow runs it starts and a `vigil` command agree on the time without sharing state:

    VIGIL_CLOCK=<vigil time>x<rate>[@<real time>]

At the real time `<real time>` (default: `<vigil time>` itself) vigil's clock reads
`<vigil time>` and from there it runs `<rate>` times as fast as the wall clock:

    2026-12-07T16:00:00Zx1440          from 16:00 UTC real, a vigil day per real minute
    2025-01-01T00:00:00Zx1@2026-12-07T16:00:00Z
                                       real speed, 2025-01-01 at 16:00 real
    2025-01-01T00:00:00Zx0             frozen at 2025-01-01 (rate 0)

Prefect's own schedules and its database vacuum run on the real clock; a soak that runs
vigil 1440 times as fast schedules its "daily" housekeeping every real minute.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ENV = "VIGIL_CLOCK"
_FORMAT = re.compile(r"^(?P<at>[^x@]+)x(?P<rate>[0-9]+(?:\.[0-9]+)?)(?:@(?P<real>[^x@]+))?$")


class ClockError(ValueError):
    """VIGIL_CLOCK does not read as `<vigil time>x<rate>[@<real time>]`."""


@dataclass(frozen=True)
class Clock:
    """vigil time = at + (real - real_at) × rate."""

    at: datetime
    rate: float
    real_at: datetime

    def read(self, real: datetime) -> datetime:
        return self.at + (real - self.real_at) * self.rate

    def describe(self) -> str:
        return (
            f"{ENV}: {self.rate:g}x the wall clock, reading {self.at:%Y-%m-%d %H:%M:%S} UTC "
            f"at {self.real_at:%Y-%m-%d %H:%M:%S} UTC real"
        )


def parse(text: str) -> Clock:
    """The clock a VIGIL_CLOCK value describes (ClockError, naming the format, if none)."""
    found = _FORMAT.match(text.strip())
    if found is None:
        raise ClockError(
            f"{ENV}={text!r} is not <vigil time>x<rate>[@<real time>] "
            "(e.g. 2026-12-07T16:00:00Zx1440)"
        )
    at = _instant(found["at"])
    real = _instant(found["real"]) if found["real"] else at
    return Clock(at, float(found["rate"]), real)


def from_env(env: Mapping[str, str] | None = None) -> Clock | None:
    """The clock VIGIL_CLOCK sets in `env` (the process's by default), None for real time."""
    value = (os.environ if env is None else env).get(ENV, "").strip()
    return parse(value) if value else None


_cached: tuple[str, Clock | None] | None = None


def now() -> datetime:
    """vigil's now, aware UTC: the real time unless VIGIL_CLOCK says otherwise."""
    global _cached
    real = datetime.now(UTC)
    value = os.environ.get(ENV, "").strip()
    if not value:
        return real
    if _cached is None or _cached[0] != value:
        _cached = (value, parse(value))
    clock = _cached[1]
    return real if clock is None else clock.read(real)


def accelerated(rate: float, *, at: datetime | None = None) -> str:
    """A VIGIL_CLOCK value that runs `rate` times as fast from now on (from `at`'s reading)."""
    real = datetime.now(UTC).replace(microsecond=0)
    start = (at or real).astimezone(UTC)
    return f"{_stamp(start)}x{rate:g}@{_stamp(real)}"


def frozen(at: datetime) -> str:
    """A VIGIL_CLOCK value that stays at `at`."""
    return f"{_stamp(at.astimezone(UTC))}x0"


def real_seconds(vigil: timedelta, env: Mapping[str, str] | None = None) -> float:
    """How many real seconds a span of vigil time takes on the clock in `env` (inf if frozen)."""
    clock = from_env(env)
    rate = 1.0 if clock is None else clock.rate
    return float("inf") if rate == 0 else vigil.total_seconds() / rate


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ClockError(f"{ENV}: {text!r} is not an ISO 8601 time") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
