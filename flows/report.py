"""The weekly report: compute last week's figures, publish them where the team looks (the
`weekly-report` artifact), and send the summary to the report's channels.

The numbers come from `vigil.report`; this flow only sequences the runbook. A week in which
an SLO was missed ends FAILED-typed, named `SLOMissed`, so the runs list shows it red.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from tasks.notify import Delivery, send_alert
from vigil import boundary, clock
from vigil.alert import Alert, Severity
from vigil.config import Config, load_config
from vigil.report import Report, build_report
from vigil.report_render import budget_text, headline, minutes, pct, to_html, to_markdown
from vigil.runtime import outcome
from vigil.store import open_store

ARTIFACT_KEY = "weekly-report"
MAX_DETAILS = 20


@dataclass(frozen=True)
class ReportSettings:
    """The `report:` config section, with these defaults while it is absent: a week, sent
    as a low-severity message to the channels routed for `low` (or `channels`, if given)."""

    days: int = 7
    severity: Severity = "low"
    channels: list[str] | None = None

    @classmethod
    def of(cls, config: Config) -> ReportSettings:
        section = config.report
        return cls(days=section.days, severity=section.severity, channels=section.channels or None)


def _run_name() -> str:
    return "report " + clock.now().strftime("%Y-%m-%d")


@task(name="compute the report", cache_policy=NO_CACHE)
def compute_report(config: Config, days: int) -> Report:
    with open_store(config.store.url) as store:
        return build_report(config, store, clock.now(), days)


@task(name="publish the report artifact", cache_policy=NO_CACHE)
def publish_report(report: Report) -> None:
    boundary.publish_markdown(ARTIFACT_KEY, to_markdown(report), headline(report))


@task(name="send the report", cache_policy=NO_CACHE)
def send_report(config: Config, report: Report, settings: ReportSettings) -> list[Delivery]:
    with open_store(config.store.url) as store:
        return send_alert(config, store, report_alert(report, settings), settings.channels)


def report_alert(report: Report, settings: ReportSettings) -> Alert:
    """The summary every channel renders: the headline, then one line per monitor that
    lost time or missed its SLO, and the duties that failed."""
    period = report.period
    return Alert(
        title=f"vigil report: {pct(report.overall_uptime_pct)} uptime",
        severity=settings.severity,
        duty="weekly-report",
        subject=f"{len(report.monitors)} monitors, {len(report.backups)} databases",
        summary=headline(report),
        details=_details(report)[:MAX_DETAILS],
        kind="info",
        fields={"Period": f"{period.start:%Y-%m-%d %H:%M} – {period.end:%Y-%m-%d %H:%M} UTC"},
        html=to_html(report),
    )


def _details(report: Report) -> list[str]:
    lines = [
        f"{m.name}: {pct(m.uptime_pct)} up, {minutes(m.downtime_minutes)} down, "
        f"{m.incidents} incidents, SLO {budget_text(m.slo)}"
        for m in report.monitors
        if m.downtime_minutes or (m.slo is not None and not m.slo.met)
    ]
    lines += [
        f"backup {b.database}: {b.failures} failed, {b.verification_failures} failed verification"
        for b in report.backups
        if b.failures or b.verification_failures
    ]
    lines += [
        f"restore test {r.database}: {r.failures} failed, {r.rto_missed} over RTO"
        for r in report.restore_tests
        if r.failures or r.rto_missed
    ]
    lines += [
        f"deploy {d.target}: {d.rolled_back} rolled back, {d.rollback_failures} rollbacks failed"
        for d in report.deploys
        if d.rolled_back
    ]
    return lines


@flow(name="weekly-report", flow_run_name=_run_name, log_prints=False)
def weekly_report(config_path: str | None = None, days: int | None = None) -> Any:
    """Compute the report, publish it as the `weekly-report` artifact, send the summary."""
    config = load_config(config_path)
    settings = ReportSettings.of(config)
    report = compute_report(config, days or settings.days)
    publish_report(report)
    deliveries = send_report(config, report, settings)
    missed = [m.name for m in report.slo_missed]
    summary = {
        "headline": headline(report),
        "overall_uptime_pct": report.overall_uptime_pct,
        "slo_missed": missed,
        "sent": sum(d.status == "sent" for d in deliveries),
    }
    return outcome("SLOMissed" if missed else None, summary, headline(report))
