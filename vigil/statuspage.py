"""The public status page: a static site (index.html + status.json) anyone may read.

Only monitors with `public: true` appear, under their `display_name` (and `group`, if
any); nothing else leaves the store: no URL, no internal name, no error text unless the
config's `status_page.show_errors` allows causes. The page is one HTML file with inline CSS
and SVG, no script and no font or file fetched from anywhere, so it can be served from any
bucket or folder. It shows the overall status, each service's current state and 90 daily
uptime bars (weighted by time, maintenance excluded, as in `vigil.report`), the recent
incidents with their durations, and the announced maintenance. It is built for a phone
first, with landmarks, text alternatives for the bars and colours that keep WCAG AA
contrast (4.5:1 for text, 3:1 for the bars).
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import select

from vigil.config import Config, Monitor
from vigil.durations import format_duration
from vigil.maintenance import in_maintenance, upcoming
from vigil.report import Period, load_timeline
from vigil.status import DEGRADED, DOWN, UNKNOWN, UP
from vigil.store import MonitorState, Store

DAYS = 90
MAINTENANCE = "MAINTENANCE"
# What a reader sees for each state, worst first (a group shows its worst member's).
STATE_WORDS = {
    DOWN: "Outage",
    DEGRADED: "Degraded performance",
    MAINTENANCE: "Under maintenance",
    UNKNOWN: "No data",
    UP: "Operational",
}
STATE_RANK = {state: rank for rank, state in enumerate(STATE_WORDS)}
# Text and badge colours (4.5:1 with white), bar colours (3:1 against the white page).
COLOURS = {
    "text": "#1f2328",
    "muted": "#57606a",
    "ok": "#1a7f37",
    "degraded": "#9a6700",
    "down": "#c21c2a",
    "maintenance": "#0a5cc2",
    "none": "#6e7781",
}
BADGE = {UP: "ok", DEGRADED: "degraded", DOWN: "down", MAINTENANCE: "maintenance", UNKNOWN: "none"}
FILES = ("index.html", "status.json")


@dataclass(frozen=True)
class Settings:
    """The `status_page:` config section, with these defaults while it is absent."""

    title: str = "Service status"
    show_errors: bool = False
    incident_days: int = 14
    maintenance_horizon: timedelta = timedelta(days=14)
    out: str | None = None
    upload: str | None = None

    @classmethod
    def of(cls, config: Config) -> Settings:
        section = config.status_page
        return cls(**{name: getattr(section, name) for name in cls.__dataclass_fields__})


# --- what the page says ---------------------------------------------------------------------


@dataclass
class Day:
    day: date
    measured_s: float
    down_s: float
    degraded_s: float
    maintenance_s: float

    @property
    def level(self) -> str:
        """The bar's colour: down beats degraded beats ok; no measured time is no data
        (or maintenance, if the day was spent in a window)."""
        if self.down_s > 0:
            return "down"
        if self.degraded_s > 0:
            return "degraded"
        if self.measured_s > 0:
            return "ok"
        return "maintenance" if self.maintenance_s > 0 else "none"

    @property
    def uptime_pct(self) -> float | None:
        if not self.measured_s:
            return None
        return 100.0 * (self.measured_s - self.down_s) / self.measured_s

    def describe(self) -> str:
        """`2026-02-24: 99.861% uptime, 20m down`: the bar's tooltip and spoken text."""
        if self.uptime_pct is None:
            return f"{self.day}: " + ("maintenance" if self.level == "maintenance" else "no data")
        text = f"{self.day}: {_pct(self.uptime_pct)} uptime"
        if self.down_s:
            text += f", {format_duration(self.down_s)} down"
        if self.degraded_s:
            text += f", {format_duration(self.degraded_s)} degraded"
        return text


@dataclass
class Service:
    label: str
    state: str
    days: list[Day]
    # What its locations saw when they did not agree ("DOWN from eu-west, up from us-east",
    # "failing from eu-west only; up from us-east").
    regions: str = ""

    @property
    def uptime_pct(self) -> float | None:
        measured = sum(d.measured_s for d in self.days)
        down = sum(d.down_s for d in self.days)
        return 100.0 * (measured - down) / measured if measured else None

    def summary(self) -> str:
        """The bars' text alternative: the overall figure, then every day that was not
        clean, so a screen reader hears what a glance at the colours tells."""
        parts = [f"Uptime over the last {len(self.days)} days: {_pct(self.uptime_pct)}."]
        for level, word in (("down", "Outage"), ("degraded", "Degraded")):
            bad = [d.describe() for d in self.days if d.level == level]
            if bad:
                parts.append(f"{word} on {len(bad)} day(s): " + "; ".join(bad) + ".")
        return " ".join(parts)


@dataclass
class Group:
    label: str
    services: list[Service]

    @property
    def state(self) -> str:
        return min((s.state for s in self.services), key=STATE_RANK.__getitem__)


@dataclass
class PublicIncident:
    label: str
    state: str
    started_at: datetime
    ended_at: datetime | None
    seconds: float
    cause: str | None


@dataclass
class Announcement:
    start: datetime
    end: datetime
    reason: str
    labels: list[str]
    in_progress: bool


@dataclass
class StatusPage:
    title: str
    generated_at: datetime
    timezone: str
    overall: str
    overall_text: str
    entries: list[Service | Group] = field(default_factory=list)
    incidents: list[PublicIncident] = field(default_factory=list)
    maintenance: list[Announcement] = field(default_factory=list)
    incident_days: int = 14

    def services(self) -> list[Service]:
        found: list[Service] = []
        for entry in self.entries:
            found += entry.services if isinstance(entry, Group) else [entry]
        return found


# --- building it from the store -------------------------------------------------------------


def build(
    config: Config, store: Store, now: datetime, settings: Settings | None = None
) -> StatusPage:
    """Everything the page shows, public monitors only (`settings`: the config's)."""
    settings = settings or Settings.of(config)
    public = [m for m in config.monitors if m.public]
    names = [m.name for m in public]
    states = _current_states(config, store, public, now)
    days = _days_by_monitor(config, store, names, now)
    regions = _regions(store, names) if config.locations else {}
    services = {
        m.name: Service(_label(m), states[m.name], days[m.name], regions.get(m.name, ""))
        for m in public
    }
    overall, overall_text = overall_status(list(states.values()))
    return StatusPage(
        title=settings.title,
        generated_at=now,
        timezone=config.timezone,
        overall=overall,
        overall_text=overall_text,
        entries=_entries(public, services),
        incidents=_incidents(config, store, public, now, settings),
        maintenance=_announcements(config, public, now, settings.maintenance_horizon),
        incident_days=settings.incident_days,
    )


def overall_status(states: list[str]) -> tuple[str, str]:
    """(css key, sentence) for the banner."""
    live = [s for s in states if s != MAINTENANCE]
    if DOWN in live:
        if all(s == DOWN for s in live):
            return "down", "Major outage"
        return "down", "Partial outage"
    if DEGRADED in live:
        return "degraded", "Degraded performance"
    if MAINTENANCE in states:
        return "maintenance", "Maintenance in progress"
    if states and all(s == UNKNOWN for s in states):
        return "none", "Status not known yet"
    return "ok", "All systems operational"


def _label(monitor: Monitor) -> str:
    return monitor.display_name or monitor.name


def _current_states(
    config: Config, store: Store, public: list[Monitor], now: datetime
) -> dict[str, str]:
    """Each public monitor's state now; maintenance shows as such, whatever the probe says."""
    with store.session() as session:
        query = select(MonitorState).where(MonitorState.monitor.in_([m.name for m in public]))
        rows = {s.monitor: s.state for s in session.scalars(query)}
    return {
        m.name: MAINTENANCE if in_maintenance(config, m.name, now) else rows.get(m.name, UNKNOWN)
        for m in public
    }


def _regions(store: Store, names: list[str]) -> dict[str, str]:
    """What the locations saw at each monitor's last check, where they did not agree
    (`vigil.sweep.regional.shown`)."""
    from vigil.sweep.regional import shown_record

    with store.session() as session:
        query = select(MonitorState).where(MonitorState.monitor.in_(names))
        records = {s.monitor: s.locations for s in session.scalars(query) if s.locations}
    found = {name: shown_record(record) for name, record in records.items()}
    return {name: words for name, words in found.items() if words}


def _days_by_monitor(
    config: Config, store: Store, names: list[str], now: datetime
) -> dict[str, list[Day]]:
    period = Period.calendar_days(now, DAYS, config.timezone)
    totals = load_timeline(store, config, names, period).totals(["monitor", "day"])
    found: dict[str, list[Day]] = {}
    for name in names:
        found[name] = [_day(totals, name, day) for day in period.days()]
    return found


def _day(totals: pd.DataFrame, name: str, day: date) -> Day:
    if (name, day) not in totals.index:
        return Day(day, 0.0, 0.0, 0.0, 0.0)
    row = totals.loc[(name, day)]
    return Day(
        day,
        float(row["measured"]),
        float(row["down"]),
        float(row["degraded"]),
        float(row["maintenance"]),
    )


def _entries(public: list[Monitor], services: dict[str, Service]) -> list[Service | Group]:
    """Services in config order; a group takes the place of its first member."""
    entries: list[Service | Group] = []
    groups: dict[str, Group] = {}
    for monitor in public:
        service = services[monitor.name]
        if monitor.group is None:
            entries.append(service)
        elif monitor.group in groups:
            groups[monitor.group].services.append(service)
        else:
            groups[monitor.group] = Group(monitor.group, [service])
            entries.append(groups[monitor.group])
    return entries


def _incidents(
    config: Config, store: Store, public: list[Monitor], now: datetime, settings: Settings
) -> list[PublicIncident]:
    """Incidents of the last `incident_days` that cost measured time, newest first."""
    labels = {m.name: _label(m) for m in public}
    period = Period.last(now, settings.incident_days, config.timezone)
    table = load_timeline(store, config, list(labels), period).incident_table()
    table = table[table["measured_s"] > 0].sort_values("started_at", ascending=False)
    return [
        PublicIncident(
            label=labels[row.monitor],
            state=row.state,
            started_at=row.started_at.to_pydatetime(),
            ended_at=None if pd.isna(row.ended_at) else row.ended_at.to_pydatetime(),
            seconds=float(row.seconds),
            cause=_cause(row.cause) if settings.show_errors else None,
        )
        for row in table.itertuples()
    ]


def _cause(value: Any) -> str | None:
    """An incident's recorded cause, or None: pandas reads a missing one (a DEGRADED
    incident has none) as NaN, which is truthy and no string."""
    return None if value is None or pd.isna(value) else str(value)


def _announcements(
    config: Config, public: list[Monitor], now: datetime, horizon: timedelta
) -> list[Announcement]:
    """Announced maintenance that touches a public monitor, naming only public ones."""
    labels = {m.name: _label(m) for m in public}
    found = []
    for occurrence in upcoming(config, now, horizon):
        shown = [labels[n] for n in occurrence.monitors if n in labels]
        if shown:
            found.append(
                Announcement(
                    start=occurrence.start,
                    end=occurrence.end,
                    reason=occurrence.reason,
                    labels=shown,
                    in_progress=occurrence.start <= now,
                )
            )
    return found


# --- HTML -----------------------------------------------------------------------------------

CSS = f"""
:root {{ color-scheme: light; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: {COLOURS["text"]}; background: #ffffff; }}
.skip {{ position: absolute; left: -999px; }}
.skip:focus {{ left: 1rem; top: 1rem; background: #ffffff; padding: 0.5rem; }}
header, main, footer {{ max-width: 46rem; margin: 0 auto; padding: 0 1rem; }}
h1 {{ font-size: 1.6rem; margin: 1.5rem 0 1rem; }}
h2 {{ font-size: 1.2rem; margin: 2rem 0 0.75rem; }}
h3, h4 {{ font-size: 1rem; margin: 0; }}
.sr-only {{ position: absolute; width: 1px; height: 1px; overflow: hidden;
            clip: rect(0 0 0 0); white-space: nowrap; }}
.banner {{ color: #ffffff; border-radius: 0.5rem; padding: 1rem; font-size: 1.2rem;
           font-weight: 600; margin: 0; }}
.updated {{ color: {COLOURS["muted"]}; font-size: 0.875rem; margin: 0.5rem 0 0; }}
ul.services, ul.members, ol.incidents, ul.maintenance {{ list-style: none; margin: 0;
           padding: 0; }}
.service, .group {{ border: 1px solid #d0d7de; border-radius: 0.5rem; padding: 0.75rem;
           margin: 0 0 0.75rem; }}
.members .service {{ border: 0; border-top: 1px solid #d0d7de; border-radius: 0;
           margin: 0.75rem 0 0; padding: 0.75rem 0 0; }}
.row {{ display: flex; flex-wrap: wrap; justify-content: space-between; gap: 0.25rem 1rem;
        align-items: baseline; }}
.badge {{ color: #ffffff; border-radius: 1rem; padding: 0 0.6rem; font-size: 0.875rem;
          font-weight: 600; white-space: nowrap; }}
svg.bars {{ display: block; width: 100%; height: 2rem; margin: 0.5rem 0 0.25rem; }}
.scale {{ display: flex; justify-content: space-between; margin: 0; color: {COLOURS["muted"]};
          font-size: 0.8rem; }}
.incidents li, .maintenance li {{ border-left: 4px solid {COLOURS["none"]}; padding: 0 0 0 0.75rem;
          margin: 0 0 1rem; }}
.incidents p, .maintenance p {{ margin: 0.125rem 0; }}
.muted {{ color: {COLOURS["muted"]}; }}
footer {{ color: {COLOURS["muted"]}; font-size: 0.8rem; margin-top: 2rem; padding-bottom: 2rem; }}
""" + "".join(
    f".bg-{key} {{ background: {colour}; }}\n"
    f".edge-{key} {{ border-left-color: {colour} !important; }}\n"
    for key, colour in COLOURS.items()
    if key not in ("text", "muted")
)

BAR_WIDTH, BAR_GAP, BAR_HEIGHT = 4, 2, 30


def render(page: StatusPage) -> str:
    """The whole page as one HTML document."""
    esc = html.escape
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(page.title)}: {esc(page.overall_text)}</title>"
        f"<style>{CSS}</style></head><body>"
        '<a class="skip" href="#main">Skip to content</a>'
        f"<header><h1>{esc(page.title)}</h1></header>"
        f'<main id="main">{_banner(page)}{_services(page)}'
        f"{_maintenance(page)}{_incident_list(page)}</main>"
        f"<footer><p>Uptime is the share of each day a service was not down, "
        "announced maintenance excluded. Times are "
        f"{esc(page.timezone)}.</p></footer></body></html>\n"
    )


def _banner(page: StatusPage) -> str:
    return (
        '<section aria-labelledby="overall-title">'
        '<h2 id="overall-title" class="sr-only">Overall status</h2>'
        f'<p class="banner bg-{page.overall}" id="overall">{html.escape(page.overall_text)}</p>'
        f'<p class="updated">Updated {_when(page.generated_at, page.timezone)}</p></section>'
    )


def _services(page: StatusPage) -> str:
    items = []
    for i, entry in enumerate(page.entries):
        if isinstance(entry, Group):
            members = "".join(_service(s, f"g{i}s{j}", "h4") for j, s in enumerate(entry.services))
            items.append(
                f'<li class="group"><div class="row"><h3>{html.escape(entry.label)}</h3>'
                f"{_badge(entry.state)}</div>"
                f'<ul class="members" aria-label="{html.escape(entry.label)} services">'
                f"{members}</ul></li>"
            )
        else:
            items.append(_service(entry, f"s{i}", "h3"))
    return (
        '<section aria-labelledby="services-title"><h2 id="services-title">Services</h2>'
        f'<ul class="services">{"".join(items)}</ul></section>'
    )


def _service(service: Service, key: str, heading: str) -> str:
    esc = html.escape
    days = service.days
    return (
        f'<li class="service"><div class="row"><{heading}>{esc(service.label)}</{heading}>'
        f"{_badge(service.state)}</div>{_regions_note(service)}{_bars(service, key)}"
        f'<p class="scale" aria-hidden="true"><span>{len(days)} days ago</span>'
        f"<span>{_pct(service.uptime_pct)} uptime</span><span>Today</span></p></li>"
    )


def _regions_note(service: Service) -> str:
    if not service.regions:
        return ""
    return f'<p class="regions">Seen {html.escape(service.regions)}</p>'


def _bars(service: Service, key: str) -> str:
    """One rect per day; the SVG is an image whose text alternative lists the bad days."""
    step = BAR_WIDTH + BAR_GAP
    rects = "".join(
        f'<rect x="{i * step}" y="0" width="{BAR_WIDTH}" height="{BAR_HEIGHT}" rx="1" '
        f'fill="{COLOURS[day.level]}" data-day="{day.day}" data-level="{day.level}">'
        f"<title>{html.escape(day.describe())}</title></rect>"
        for i, day in enumerate(service.days)
    )
    width = len(service.days) * step - BAR_GAP
    return (
        f'<svg class="bars" role="img" aria-labelledby="{key}-alt" '
        f'viewBox="0 0 {width} {BAR_HEIGHT}" preserveAspectRatio="none">'
        f'<title id="{key}-alt">{html.escape(service.summary())}</title>{rects}</svg>'
    )


def _badge(state: str) -> str:
    return f'<span class="badge bg-{BADGE[state]}">{html.escape(STATE_WORDS[state])}</span>'


def _maintenance(page: StatusPage) -> str:
    esc = html.escape
    items = "".join(
        f'<li class="edge-maintenance"><h3>{esc(a.reason or "Scheduled maintenance")}'
        f"{' (in progress)' if a.in_progress else ''}</h3>"
        f"<p>{_when(a.start, page.timezone)} – {_when(a.end, page.timezone)}</p>"
        f'<p class="muted">Affects {esc(", ".join(a.labels))}</p></li>'
        for a in page.maintenance
    )
    body = f'<ul class="maintenance">{items}</ul>' if items else "<p>None scheduled.</p>"
    return (
        '<section aria-labelledby="maintenance-title">'
        f'<h2 id="maintenance-title">Scheduled maintenance</h2>{body}</section>'
    )


def _incident_list(page: StatusPage) -> str:
    esc = html.escape
    items = []
    for incident in page.incidents:
        lasted = format_duration(incident.seconds)
        timing = (
            f"Ongoing for {lasted}, since {_when(incident.started_at, page.timezone)}"
            if incident.ended_at is None
            else f"{_when(incident.started_at, page.timezone)}, lasted {lasted}"
        )
        cause = f'<p class="muted">{esc(incident.cause)}</p>' if incident.cause else ""
        items.append(
            f'<li class="edge-{BADGE[incident.state]}">'
            f"<h3>{esc(incident.label)}: {esc(STATE_WORDS[incident.state])}</h3>"
            f"<p>{timing}</p>{cause}</li>"
        )
    body = (
        f'<ol class="incidents">{"".join(items)}</ol>'
        if items
        else f"<p>No incidents in the last {page.incident_days} days.</p>"
    )
    return (
        '<section aria-labelledby="incidents-title">'
        f'<h2 id="incidents-title">Recent incidents</h2>{body}</section>'
    )


def _when(value: datetime, timezone: str) -> str:
    return value.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")


def _pct(value: float | None) -> str:
    if value is None:
        return "no data"
    return "100%" if value >= 100 else f"{value:.3f}%"


# --- files ----------------------------------------------------------------------------------


def as_json(page: StatusPage) -> dict[str, Any]:
    """The same public facts for machines (status.json)."""
    return {
        "title": page.title,
        "generated_at": page.generated_at.isoformat(),
        "status": page.overall,
        "description": page.overall_text,
        "services": [
            {
                "name": s.label,
                "state": STATE_WORDS[s.state],
                **({"regions": s.regions} if s.regions else {}),
                "uptime_pct": s.uptime_pct,
                "days": [
                    {"day": str(d.day), "uptime_pct": d.uptime_pct, "level": d.level}
                    for d in s.days
                ],
            }
            for s in page.services()
        ],
        "incidents": [
            {**asdict(i), "started_at": i.started_at.isoformat(), "ended_at": _iso(i.ended_at)}
            for i in page.incidents
        ],
        "maintenance": [
            {**asdict(a), "start": a.start.isoformat(), "end": a.end.isoformat()}
            for a in page.maintenance
        ],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def write(page: StatusPage, out_dir: Path) -> list[Path]:
    """Write index.html and status.json, each replaced atomically so a web server never
    serves half a file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {
        "index.html": render(page),
        "status.json": json.dumps(as_json(page), indent=2) + "\n",
    }
    return [_atomic_write(out_dir / name, text) for name, text in contents.items()]


def _atomic_write(path: Path, text: str) -> Path:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def content_types(names: Iterable[str]) -> Iterable[tuple[str, str]]:
    """(name, Content-Type) of each file of the site, for an upload."""
    kinds = {".html": "text/html; charset=utf-8", ".json": "application/json"}
    return ((name, kinds[Path(name).suffix]) for name in names)
