"""Checks from several locations: one verdict per monitor from what each location saw.

A monitor probed from several locations (`locations:` in the config) is DOWN only when at
least its `quorum` of them saw it fail: a network problem between one location and the app
is not an outage users see. A failure seen from fewer locations is recorded per location
and shown: the monitor stays UP with a regional warning, or is DEGRADED when the config says
`below_quorum: degraded`. A location whose run did not report is named ("no report from
ap-south") and counted neither way; when the locations that did report all saw a failure
but are too few for the quorum, the sweep learned nothing it can act on and the monitor
keeps its state, like a monitor no shard reported on.

The verdict that comes out is an ordinary `MonitorCheck`, so thresholds, alerts, records,
uptime and SLOs downstream use the quorum's word; its first failed line says which
locations saw what ("DOWN from eu-west and us-east, up from ap-south"; below the quorum
"failing from ap-south only; up from eu-west and us-east", then each failing location's
reason), so alerts, the table, incidents and reports carry it without knowing about
locations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vigil.conditions import ConditionResult
from vigil.config import LOCAL, Config, Monitor
from vigil.monitoring import MonitorVerdict
from vigil.sweep.checks import MonitorCheck

LOCATIONS = "[LOCATIONS]"
_SAW = {"failed": "DOWN", "degraded": "degraded", "ok": "up"}
# Each location's word in `vigil status --json` and the metrics (`by_location`).
SEEN = {"failed": "down", "degraded": "degraded", "ok": "up"}
NO_REPORT = "no report"


@dataclass(frozen=True)
class LocationView:
    """What each of a monitor's locations saw in one sweep."""

    saw: dict[str, str]  # location -> "ok" | "degraded" | "failed", those that reported
    why: dict[str, str]  # location -> what failed there
    silent: tuple[str, ...]  # locations whose run did not report
    quorum: int

    @property
    def failing(self) -> list[str]:
        return [name for name, seen in self.saw.items() if seen == "failed"]

    @property
    def confirmed(self) -> bool:
        """Whether enough locations saw the failure for the monitor to be failing."""
        return len(self.failing) >= self.quorum

    @property
    def regional(self) -> bool:
        """A failure seen from some locations, fewer than the quorum."""
        return bool(self.failing) and not self.confirmed

    @property
    def notable(self) -> bool:
        """Whether its locations did not all see the same: a failure, a silent location, or
        a mix of up and degraded. Only then is the view shown to people."""
        return bool(self.failing or self.silent or len(set(self.saw.values())) > 1)

    def by_location(self) -> dict[str, str]:
        """Each location's word: `down`, `degraded`, `up` or `no report` (silent)."""
        seen = {name: SEEN[verdict] for name, verdict in self.saw.items()}
        return {**seen, **dict.fromkeys(self.silent, NO_REPORT)}

    def words(self) -> str:
        """`DOWN from eu-west and us-east, up from ap-south`, then the silent ones."""
        return ", ".join(self._seen(("failed", "degraded", "ok")))

    def regional_words(self) -> str:
        """`failing from eu-west only; up from us-east and ap-south`: a regional notice."""
        head = f"failing from {and_names(self.failing)} only"
        return "; ".join([head, *self._seen(("degraded", "ok"))])

    def reasons(self) -> list[str]:
        """`eu-west: [STATUS] 503, expected < 400`: what failed at each failing location."""
        return [f"{name}: {self.why.get(name, 'failed')}" for name in self.failing]

    def _seen(self, verdicts: tuple[str, ...]) -> list[str]:
        """`<word> from <locations>` per verdict seen, in that order, then the silent ones."""
        parts = []
        for verdict in verdicts:
            names = [name for name, seen in self.saw.items() if seen == verdict]
            if names:
                parts.append(f"{_SAW[verdict]} from {and_names(names)}")
        if self.silent:
            parts.append(f"{NO_REPORT} from {and_names(list(self.silent))}")
        return parts

    def record(self) -> dict[str, Any]:
        """The JSON kept with the check and the monitor's state."""
        return {
            "quorum": self.quorum,
            "saw": dict(self.saw),
            "why": dict(self.why),
            "silent": list(self.silent),
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> LocationView:
        return cls(
            saw=dict(data.get("saw", {})),
            why=dict(data.get("why", {})),
            silent=tuple(data.get("silent", ())),
            quorum=int(data.get("quorum", 1)),
        )


@dataclass(frozen=True)
class LocationRun:
    """One run a located sweep starts: a location's probes, or one shard of them
    (`locations.<name>.shards`). `slot` is its key in the sweep's store hand-over."""

    location: str
    shard: int
    shards: int
    slot: int

    @property
    def name(self) -> str:
        """How logs and `silent_runs` name it: `eu-west`, or `eu-west shard 2/3`."""
        if self.shards == 1:
            return self.location
        return f"{self.location} shard {self.shard + 1}/{self.shards}"


def location_runs(config: Config, wanted: dict[str, list[Monitor]]) -> list[LocationRun]:
    """The runs to start: for each location but `local` with monitors due, its shards (no
    more than it has monitors, counted as its shard runs split them: all of them, due or
    not, so parent and shards agree on who probes what)."""
    runs: list[LocationRun] = []
    for name, location in config.locations.items():
        if name == LOCAL or not wanted.get(name):
            continue
        everyone = sum(name in config.locations_of(m) for m in config.monitors)
        shards = max(1, min(location.shards, everyone))
        runs += [LocationRun(name, i, shards, len(runs) + i) for i in range(shards)]
    return runs


# How each phrase of the locations' words starts (`words`, `regional_words`). Location names
# are letters, digits, '_', '.' and '-' (the config refuses others), so a phrase never holds
# the "; " that joins a cause's parts.
_WORDS_START = tuple(f"{word} from " for word in (*_SAW.values(), "failing", NO_REPORT))


def is_seen_words(line: str) -> bool:
    """Whether a failed condition's line is the locations' words (`combine` puts them first)."""
    return line.startswith(_WORDS_START)


def seen_from(cause: str | None) -> str | None:
    """The locations' words at the head of a recorded cause (an incident's, a check's
    failed conditions joined), if it has them: every leading phrase that is theirs."""
    if not cause:
        return None
    parts = cause.split("; ")
    count = next((i for i, part in enumerate(parts) if not is_seen_words(part)), len(parts))
    return "; ".join(parts[:count]) or None


def and_names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def combine(
    monitor: Monitor,
    expected: list[str],
    found: dict[str, MonitorCheck],
    quorum: int,
    below_quorum: str,
) -> tuple[MonitorCheck | None, LocationView]:
    """The monitor's check for this sweep from the checks of its `expected` locations that
    reported (`found`, by location); None when nothing conclusive was seen."""
    view = LocationView(
        saw={name: found[name].verdict for name in expected if name in found},
        why={
            name: "; ".join(found[name].failed) or found[name].obs.error or "failed"
            for name in expected
            if name in found and found[name].verdict == "failed"
        },
        silent=tuple(name for name in expected if name not in found),
        quorum=quorum,
    )
    verdict: MonitorVerdict
    if view.confirmed:
        base = found[view.failing[0]]
        verdict = "failed"
    else:
        answering = [name for name in view.saw if view.saw[name] != "failed"]
        if not answering:
            return None, view
        degraded = [name for name in answering if view.saw[name] == "degraded"]
        base = found[(degraded or answering)[0]]
        verdict = "degraded" if degraded or (view.failing and below_quorum == "degraded") else "ok"
    results = list(base.results)
    if view.failing:
        # The words people see everywhere else too (`regional.shown`): a failure below the
        # quorum is "failing from eu-west only; up from ...", never "DOWN from eu-west".
        # Below it, the check comes from a location that saw it up, so each failing
        # location's reason follows (a DEGRADED alert and `vigil status` say why, too).
        seen = [view.words()] if view.confirmed else [view.regional_words(), *view.reasons()]
        results[:0] = [ConditionResult(LOCATIONS, False, line) for line in seen]
    check = MonitorCheck(monitor, base.obs, results, verdict, retried=base.retried)
    return check, view


def by_quorum(
    config: Config, monitors: list[Monitor], found: dict[str, dict[str, MonitorCheck]]
) -> tuple[list[MonitorCheck], list[Monitor], dict[str, LocationView]]:
    """Every monitor's check from what its locations handed over (`found`: location ->
    monitor name -> check), the monitors with nothing conclusive, and each one's view."""
    checks, missing, views = [], [], {}
    for monitor in monitors:
        expected = config.locations_of(monitor)
        seen = {
            loc: found[loc][monitor.name] for loc in expected if monitor.name in found.get(loc, {})
        }
        below = monitor.below_quorum or config.sweep.below_quorum
        check, view = combine(monitor, expected, seen, config.quorum_of(monitor), below)
        views[monitor.name] = view
        if check is None:
            missing.append(monitor)
        else:
            checks.append(check)
    return checks, missing, views
