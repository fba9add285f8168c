"""How a drill is told: the after-action report (scope, objectives, timeline, findings with
observed values, action items, the previous drill's figures), which is the markdown
artifact `dr-drill`, the record's report and `vigil drill --report FILE`; and the one
notification carrying the verdict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vigil.alert import Alert
from vigil.drill import FAILED, FINDINGS, MISSED, DrillResult
from vigil.durations import format_duration
from vigil.runtime import flow_run_link

DUTY = "dr-drill"
ARTIFACT_KEY = "dr-drill"


def alert_for(result: DrillResult) -> Alert:
    """Always one notification: `critical` when recovery failed, `high` when an objective
    was missed or a phase found a problem, otherwise an informational pass."""
    severity, kind = {
        FAILED: ("critical", "problem"),
        MISSED: ("high", "problem"),
        FINDINGS: ("high", "problem"),
    }.get(result.status, ("low", "info"))
    items = result.action_items()
    fields = {
        "RTO": _figure(result.rto_s, result.rto, result.rto_met),
        "RPO": _figure(result.rpo_s, result.rpo, result.rpo_met),
    }
    return Alert(
        title=f"DR drill {result.status}",
        severity=severity,  # type: ignore[arg-type]
        duty=DUTY,
        subject="disaster-recovery drill",
        summary=items[0] if items else result.headline(),
        details=items[1:],
        fields=fields,
        kind=kind,  # type: ignore[arg-type]
        flow_run_url=flow_run_link(),
    )


def _figure(seconds: float | None, target: Any, met: bool) -> str:
    achieved = "n/a" if seconds is None else format_duration(seconds)
    return f"{achieved} ({'met' if met else 'MISSED'}, target {format_duration(target)})"


def markdown(result: DrillResult) -> str:
    """The after-action report: scope, timeline, objectives, findings, actions, comparison."""
    sections: list[Callable[[DrillResult], list[str]]] = [
        _scope,
        _objectives,
        _timeline,
        _findings,
        _actions,
        _comparison,
    ]
    lines = [f"# DR drill {result.declared_at:%Y-%m-%d %H:%M} UTC: **{result.status.upper()}**"]
    for section in sections:
        lines += ["", *section(result)]
    return "\n".join(lines) + "\n"


def _scope(result: DrillResult) -> list[str]:
    databases = ", ".join(f"`{r.database}`" for r in result.recoveries) or "none"
    lines = [
        "## Scope and objectives",
        "",
        f"- declared: {result.declared_at:%Y-%m-%d %H:%M:%S} UTC",
        f"- databases: {databases}",
        f"- recovered from: {result.storage}",
        f"- rehearsal server: {result.target or 'not set'}",
        f"- objectives: RTO {format_duration(result.rto)}, RPO {format_duration(result.rpo)}",
    ]
    for r in result.recoveries:
        backup = r.entry.id if r.entry else "none located"
        point = f", newest row {r.recovery_point:%Y-%m-%d %H:%M:%S} UTC" if r.recovery_point else ""
        lines.append(f"- `{r.database}`: backup `{backup}`{point}")
    return lines


def _objectives(result: DrillResult) -> list[str]:
    data = result.data_rpo_s
    data_line = (
        [f"| RPO (newest row) | {format_duration(data)} | {format_duration(result.rpo)} | - |"]
        if data is not None
        else []
    )
    return [
        "## Objectives",
        "",
        "| objective | achieved | target | verdict |",
        "|---|---|---|---|",
        f"| RTO | {_dur(result.rto_s)} | {format_duration(result.rto)} | "
        f"{'met' if result.rto_met else '**MISSED**'} |",
        f"| RPO | {_dur(result.rpo_s)} | {format_duration(result.rpo)} | "
        f"{'met' if result.rpo_met else '**MISSED**'} |",
        *data_line,
    ]


def _timeline(result: DrillResult) -> list[str]:
    lines = ["## Timeline", "", "| phase | start (+) | duration | result |", "|---|---|---|---|"]
    for p in result.phases:
        offset = format_duration((p.started_at - result.declared_at).total_seconds())
        verdict = p.verdict if p.verdict != "FAILED" else "**FAILED**"
        lines.append(f"| {_cell(p.name)} | +{offset} | {_dur(p.duration_s)} | {verdict} |")
    return lines


def _findings(result: DrillResult) -> list[str]:
    lines = [
        "## Findings",
        "",
        "| phase | check | ok | expected | observed |",
        "|---|---|---|---|---|",
    ]
    for p in result.phases:
        if p.error:
            lines.append(f"| {_cell(p.name)} | error | **NO** | - | {_cell(p.error)} |")
        for f in p.findings:
            ok = "yes" if f.ok else "**NO**"
            lines.append(
                f"| {_cell(p.name)} | {_cell(f.name)} | {ok} | {_cell(f.expected)} | "
                f"{_cell(f.observed)} |"
            )
    return lines


def _actions(result: DrillResult) -> list[str]:
    items = result.action_items()
    return ["## Action items", "", *([f"- [ ] {_cell(i)}" for i in items] or ["- none"])]


def _comparison(result: DrillResult) -> list[str]:
    before = result.previous
    if before is None:
        return ["## Previous drill", "", "- none on record: this is the first drill"]
    return [
        "## Previous drill",
        "",
        "| | previous | this drill |",
        "|---|---|---|",
        f"| date | {before['started_at'][:16].replace('T', ' ')} | "
        f"{result.declared_at:%Y-%m-%d %H:%M} |",
        f"| status | {before['status']} | {result.status} |",
        f"| RTO | {_dur(before['rto_s'])} | {_dur(result.rto_s)} |",
        f"| RPO | {_dur(before['rpo_s'])} | {_dur(result.rpo_s)} |",
    ]


def _dur(seconds: float | None) -> str:
    return "n/a" if seconds is None else format_duration(seconds)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
