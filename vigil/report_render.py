"""The report as people read it: a terminal table, markdown (the Prefect artifact and the
plain-text mail) and a self-contained HTML page with its charts embedded.

The HTML fetches nothing (inline CSS, charts as SVG data URIs with their text alternative)
so it can be mailed, attached or opened from a file. Its colours keep WCAG AA contrast.
"""

from __future__ import annotations

import html
from datetime import timedelta

from vigil import boundary, charts
from vigil.durations import format_duration, format_size
from vigil.report import DrillSummary, Report, Slo
from vigil.sweep.quorum import seen_from


def pct(value: float | None, places: int = 3) -> str:
    return "–" if value is None else f"{value:.{places}f}%"


def minutes(value: float | None) -> str:
    """`1h36m`, and `0m` rather than format_duration's `0ms` for no time at all."""
    if value is None:
        return "–"
    return "0m" if value == 0 else format_duration(timedelta(minutes=value))


def seconds(value: float | None) -> str:
    return "–" if value is None else format_duration(value)


def budget_text(slo: Slo | None) -> str:
    """`99.9%: 43m12s budget, 20m left (46%)`, or `–` without a target."""
    if slo is None:
        return "–"
    left = (
        f"{minutes(slo.remaining_minutes)} left"
        if slo.remaining_minutes >= 0
        else f"over by {minutes(-slo.remaining_minutes)}"
    )
    share = "" if slo.remaining_pct is None else f" ({slo.remaining_pct:.0f}%)"
    return f"{slo.target_pct:g}%: {minutes(slo.budget_minutes)} budget, {left}{share}"


def monitor_rows(report: Report) -> list[list[str]]:
    """The monitor table every rendering shares, worst uptime first."""
    ordered = sorted(report.monitors, key=lambda m: (m.uptime_pct is None, m.uptime_pct or 0))
    return [
        [
            m.name,
            pct(m.uptime_pct),
            pct(m.degraded_pct),
            minutes(m.downtime_minutes),
            str(m.incidents),
            minutes(m.mttr_minutes),
            "/".join(_ms(m.latency_ms[p]) for p in ("p50", "p95", "p99")),
            budget_text(m.slo),
        ]
        for m in ordered
    ]


MONITOR_HEADERS = [
    "monitor",
    "uptime",
    "degraded",
    "downtime",
    "incidents",
    "MTTR",
    "p50/p95/p99 ms",
    "SLO",
]


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def duty_rows(report: Report) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The tables for backups, restore tests, drills and deploys: (headers, rows) each."""
    return {
        "Backups": (
            [
                "database",
                "runs",
                "failed",
                "verification failed",
                "last size",
                "size trend",
                "mean duration",
            ],
            [
                [
                    b.database,
                    str(b.runs),
                    str(b.failures),
                    str(b.verification_failures),
                    "–" if b.last_size_bytes is None else format_size(b.last_size_bytes),
                    "–" if b.size_change_pct is None else f"{b.size_change_pct:+.1f}%",
                    seconds(b.mean_duration_s),
                ]
                for b in report.backups
            ],
        ),
        "Restore tests": (
            ["database", "runs", "failed", "RTO", "over RTO", "last", "longest"],
            [
                [
                    r.database,
                    str(r.runs),
                    str(r.failures),
                    seconds(r.rto_s),
                    str(r.rto_missed),
                    seconds(r.last_duration_s),
                    seconds(r.max_duration_s),
                ]
                for r in report.restore_tests
            ],
        ),
        "DR drills": (
            ["started", "status", "RTO achieved", "RPO achieved", "objectives"],
            [
                [
                    d.started_at.strftime("%Y-%m-%d %H:%M"),
                    d.status,
                    seconds(d.rto_s),
                    seconds(d.rpo_s),
                    _objectives(d),
                ]
                for d in report.drills
            ],
        ),
        "Deploys": (
            ["target", "verifications", "passed", "failed", "rolled back", "rollback failed"],
            [
                [
                    d.target,
                    str(d.verifications),
                    str(d.passed),
                    str(d.failed),
                    str(d.rolled_back),
                    str(d.rollback_failures),
                ]
                for d in report.deploys
            ],
        ),
    }


def _objectives(drill: DrillSummary) -> str:
    def word(label: str, met: bool | None) -> str:
        return f"{label} {'?' if met is None else 'met' if met else 'MISSED'}"

    return f"{word('RTO', drill.rto_met)}, {word('RPO', drill.rpo_met)}"


def headline(report: Report) -> str:
    """`99.982% uptime over 30 days, 3 incidents, 1 SLO missed (api)`."""
    days = report.period.seconds / 86400
    incidents = sum(m.incidents for m in report.monitors)
    text = f"{pct(report.overall_uptime_pct)} uptime over {days:g} days, {incidents} incidents"
    missed = report.slo_missed
    if missed:
        text += f", {len(missed)} SLO missed ({', '.join(m.name for m in missed)})"
    return text


def to_markdown(report: Report) -> str:
    """The report as markdown: the Prefect artifact and the plain-text email body."""
    period = report.period
    lines = [
        f"# vigil report: {period.start:%Y-%m-%d %H:%M} – {period.end:%Y-%m-%d %H:%M} UTC",
        "",
        headline(report),
        "",
        "## Monitors",
        "",
        *_md_table(MONITOR_HEADERS, monitor_rows(report)),
    ]
    for title, (headers, rows) in duty_rows(report).items():
        if rows:
            lines += ["", f"## {title}", "", *_md_table(headers, rows)]
    if report.incidents:
        lines += ["", "## Incidents", ""]
        lines += _md_table(incident_headers(report), incident_rows(report))
    return "\n".join(lines) + "\n"


def incident_headers(report: Report) -> list[str]:
    """The incidents table's columns; `seen from` when monitors are checked from several
    locations (what each saw when the incident began)."""
    headers = ["monitor", "state", "started", "lasted"]
    return [*headers, "seen from"] if _located(report) else headers


def incident_rows(report: Report, limit: int = 50) -> list[list[str]]:
    located = _located(report)
    return [
        [
            i["monitor"],
            i["state"],
            i["started_at"].strftime("%Y-%m-%d %H:%M"),
            minutes(i["minutes"]) + (" (ongoing)" if i["ongoing"] else ""),
            *([seen_from(i.get("cause")) or ""] if located else []),
        ]
        for i in report.incidents[:limit]
    ]


def _located(report: Report) -> bool:
    return any(seen_from(i.get("cause")) for i in report.incidents)


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(boundary.markdown_cell(c) for c in cells) + " |"

    return [line(headers), "|" + "---|" * len(headers), *(line(r) for r in rows)]


# --- terminal -------------------------------------------------------------------------------


def to_text(report: Report) -> list[str]:
    """Aligned plain-text tables for `vigil report`."""
    period = report.period
    lines = [
        f"vigil report {period.start:%Y-%m-%d %H:%M} – {period.end:%Y-%m-%d %H:%M} UTC",
        headline(report),
        "",
        *_text_table(MONITOR_HEADERS, monitor_rows(report)),
    ]
    for title, (headers, rows) in duty_rows(report).items():
        if rows:
            lines += ["", title, *_text_table(headers, rows)]
    return lines


def _text_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


# --- HTML -----------------------------------------------------------------------------------

CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2328; background: #ffffff; margin: 0; }
header, main, footer { max-width: 72rem; margin: 0 auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 1.25rem 0 0.25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 0.5rem; border-bottom: 1px solid #d0d7de; }
.lead { color: #424a53; margin: 0 0 1rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5rem 0; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 0.25rem 0; }
th, td { padding: 0.3rem 0.75rem 0.3rem 0; text-align: left; border-bottom: 1px solid #eaeef2;
         white-space: nowrap; }
th { color: #424a53; font-weight: 600; }
.bad { color: #a40e26; font-weight: 600; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #424a53; font-size: 0.9rem; }
footer { color: #424a53; font-size: 0.85rem; padding-bottom: 2rem; }
"""


def to_html(report: Report) -> str:
    """One HTML document; no script, no font, no remote file."""
    esc = html.escape
    period = report.period
    title = f"vigil report {period.start:%Y-%m-%d} – {period.end:%Y-%m-%d}"
    sections = [
        _html_section(
            "monitors",
            "Monitors",
            _html_table(
                "Uptime, incidents, latency and SLO per monitor",
                MONITOR_HEADERS,
                monitor_rows(report),
                bad=_slo_missed_rows(report),
            ),
        )
    ]
    figures = _figures(report)
    if figures:
        sections.append(_html_section("charts", "Charts", "".join(figures)))
    for title_text, (headers, rows) in duty_rows(report).items():
        if rows:
            slug = title_text.lower().replace(" ", "-")
            sections.append(_html_section(slug, title_text, _html_table(title_text, headers, rows)))
    if report.incidents:
        table = _html_table(
            "Incidents, newest first",
            incident_headers(report),
            incident_rows(report),
        )
        sections.append(_html_section("incidents", "Incidents", table))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><p class="lead">{esc(headline(report))}</p></header>'
        f"<main>{''.join(sections)}</main>"
        f"<footer><p>Generated {report.generated_at:%Y-%m-%d %H:%M} UTC by vigil. "
        "Uptime is weighted by time, maintenance excluded; DEGRADED counts as up and is "
        "shown apart.</p></footer></body></html>\n"
    )


def _slo_missed_rows(report: Report) -> set[str]:
    return {m.name for m in report.slo_missed}


def _figures(report: Report) -> list[str]:
    rto = report.restore_tests[0].rto_s if report.restore_tests else 0.0
    slowest = sorted(
        (m for m in report.monitors if m.latency_ms["p95"] is not None),
        key=lambda m: -(m.latency_ms["p95"] or 0),
    )[:2]
    found = [
        charts.uptime_chart(report.daily_uptime),
        *(charts.latency_chart(report.daily_latency, m.name) for m in slowest),
        charts.backup_size_chart(report.backup_history),
        charts.restore_chart(report.restore_history, rto),
    ]
    return [_figure(chart) for chart in found if chart is not None]


def _figure(chart: charts.Chart) -> str:
    esc = html.escape
    return (
        f'<figure><img src="{chart.data_uri}" alt="{esc(chart.alt)}" width="720" height="288">'
        f"<figcaption>{esc(chart.title)}</figcaption></figure>"
    )


def _html_section(slug: str, title: str, content: str) -> str:
    return (
        f'<section aria-labelledby="{slug}"><h2 id="{slug}">{html.escape(title)}</h2>'
        f"{content}</section>"
    )


def _html_table(
    caption: str, headers: list[str], rows: list[list[str]], bad: set[str] | None = None
) -> str:
    esc = html.escape
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = "".join(_html_row(row, bool(bad) and row[0] in (bad or set())) for row in rows)
    return (
        f'<div class="scroll"><table><caption>{esc(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _html_row(row: list[str], bad: bool) -> str:
    esc = html.escape
    cells = "".join(f"<td>{esc(cell)}</td>" for cell in row[1:])
    marker = ' class="bad"' if bad else ""
    return f'<tr{marker}><th scope="row">{esc(row[0])}</th>{cells}</tr>'
