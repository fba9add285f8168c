"""vigil's state as Prometheus gauges: for node_exporter's textfile collector, or pushed to a
Pushgateway, so the team's existing alerting can watch vigil's findings.

The figures are those of `vigil status` (the same indexed reads, so this is cheap enough to
run after every sweep or from cron), in base units with Prometheus names. Points in time are
`*_timestamp_seconds` (they stay true however stale the file gets); ages are also given
because they are what people alert on. A figure nobody has measured yet (no backup, no drill)
is left out rather than written as 0, which would read as a real value.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile
from prometheus_client.exposition import generate_latest

from vigil.status import (
    BAD_VERDICTS,
    DEGRADED,
    DOWN,
    ROLLBACK_FAILED,
    ROLLED_BACK,
    UP,
    BackupLine,
    DeployLine,
    DrillLine,
    MonitorLine,
    RestoreLine,
    StatusScreen,
    is_success,
)
from vigil.sweep.quorum import NO_REPORT, SEEN

JOB = "vigil"


def registry_for(screen: StatusScreen) -> CollectorRegistry:
    """A fresh registry holding every gauge for this screen (never the global one, so
    nothing of the running process leaks in)."""
    registry = CollectorRegistry(auto_describe=True)
    gauge = _gauge_factory(registry)
    _monitors(gauge, screen.monitors)
    _backups(gauge, screen.backups)
    _restores(gauge, screen.restore_tests)
    if screen.drill is not None:
        _drill(gauge, screen.drill)
    _deploys(gauge, screen.deploys)
    gauge("status_needs_attention", "1 if `vigil status` would exit 1.").set(
        int(screen.needs_attention)
    )
    gauge("metrics_generated_timestamp_seconds", "When these figures were read.").set(
        screen.now.timestamp()
    )
    return registry


GaugeFactory = Callable[..., Gauge]


def _gauge_factory(registry: CollectorRegistry) -> GaugeFactory:
    def make(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{JOB}_{name}", documentation, labels, registry=registry)

    return make


def _monitors(gauge: GaugeFactory, lines: list[MonitorLine]) -> None:
    states = {
        UP: gauge("monitor_up", "1 if the monitor is UP.", ("monitor",)),
        DEGRADED: gauge("monitor_degraded", "1 if the monitor is DEGRADED.", ("monitor",)),
        DOWN: gauge("monitor_down", "1 if the monitor is DOWN.", ("monitor",)),
    }
    maintenance = gauge("monitor_in_maintenance", "1 if in a maintenance window.", ("monitor",))
    since = gauge("monitor_state_since_timestamp_seconds", "When the state began.", ("monitor",))
    checked = gauge("monitor_last_check_timestamp_seconds", "Last check.", ("monitor",))
    latency = gauge("monitor_response_time_seconds", "Last check's response time.", ("monitor",))
    tls = gauge(
        "monitor_tls_expiry_timestamp_seconds", "When the certificate expires.", ("monitor",)
    )
    for line in lines:
        for state, metric in states.items():
            metric.labels(line.name).set(int(line.state == state))
        maintenance.labels(line.name).set(int(line.in_maintenance))
        _set(since, line.name, line.since.timestamp() if line.since else None)
        _set(checked, line.name, _ts(line.last_checked_at))
        _set(latency, line.name, None if line.latency_ms is None else line.latency_ms / 1000)
        if line.tls_days_left is not None and line.last_checked_at is not None:
            tls.labels(line.name).set(line.last_checked_at.timestamp() + line.tls_days_left * 86400)
    _locations(gauge, lines)


def _locations(gauge: GaugeFactory, lines: list[MonitorLine]) -> None:
    """What each location saw at a monitor's last check (monitors probed from several
    locations only): failing there or not, and whether its run reported at all; a silent
    location's failing is left out, as nobody knows."""
    labels = ("monitor", "location")
    failing = gauge("monitor_location_failing", "1 if the location saw it fail.", labels)
    reported = gauge("monitor_location_reported", "1 if the location's run reported.", labels)
    for line in lines:
        for location, word in line.seen.items():
            reported.labels(line.name, location).set(int(word != NO_REPORT))
            if word != NO_REPORT:
                failing.labels(line.name, location).set(int(word == SEEN["failed"]))


def _backups(gauge: GaugeFactory, lines: list[BackupLine]) -> None:
    labels = ("database",)
    age = gauge("backup_age_seconds", "Age of the newest successful backup.", labels)
    when = gauge("backup_last_success_timestamp_seconds", "Newest successful backup.", labels)
    size = gauge("backup_size_bytes", "Size of the newest successful backup.", labels)
    verified = gauge("backup_verified", "1 if the newest successful backup is verified.", labels)
    last_ok = gauge("backup_last_run_success", "1 if the newest backup run succeeded.", labels)
    for line in lines:
        _set(age, line.database, line.age_s)
        _set(when, line.database, _ts(line.last_ok_at))
        _set(size, line.database, line.size_bytes)
        _set(verified, line.database, None if line.verified is None else int(line.verified))
        ran = line.last_status
        _set(last_ok, line.database, None if ran in (None, "running") else int(is_success(ran)))


def _restores(gauge: GaugeFactory, lines: list[RestoreLine]) -> None:
    labels = ("database",)
    success = gauge("restore_test_success", "1 if the last restore test succeeded.", labels)
    duration = gauge("restore_test_duration_seconds", "How long the last restore took.", labels)
    rto = gauge("restore_test_rto_seconds", "The restore test's objective (max_duration).", labels)
    met = gauge("restore_test_rto_met", "1 if the last restore met its RTO.", labels)
    when = gauge("restore_test_timestamp_seconds", "When the last restore test started.", labels)
    for line in lines:
        rto.labels(line.database).set(line.rto_s)
        if line.started_at is None:
            continue
        _set(success, line.database, None if line.status == "running" else _flag(line.status))
        _set(duration, line.database, line.duration_s)
        _set(met, line.database, None if line.rto_met is None else int(line.rto_met))
        when.labels(line.database).set(line.started_at.timestamp())


def _drill(gauge: GaugeFactory, line: DrillLine) -> None:
    if line.started_at is None:
        return
    gauge("drill_timestamp_seconds", "When the last DR drill started.").set(
        line.started_at.timestamp()
    )
    values = {
        "drill_success": (_flag(line.status), "1 if the last drill completed."),
        "drill_rto_seconds": (line.rto_s, "Recovery time the last drill achieved."),
        "drill_rpo_seconds": (line.rpo_s, "Data loss window the last drill found."),
        "drill_rto_met": (_bool(line.rto_met), "1 if the last drill met its RTO."),
        "drill_rpo_met": (_bool(line.rpo_met), "1 if the last drill met its RPO."),
    }
    for name, (value, documentation) in values.items():
        if value is not None:
            gauge(name, documentation).set(value)


def _deploys(gauge: GaugeFactory, lines: list[DeployLine]) -> None:
    labels = ("target",)
    passed = gauge("deploy_last_passed", "1 if the last verification passed.", labels)
    bad = gauge("deploy_last_failed", "1 if it failed or was rolled back.", labels)
    rolled = gauge("deploy_last_rolled_back", "1 if the last release was rolled back.", labels)
    when = gauge("deploy_last_timestamp_seconds", "When the last verification started.", labels)
    for line in lines:
        if line.started_at is None or line.verdict == "running":
            continue
        passed.labels(line.target).set(int(line.verdict == "passed"))
        bad.labels(line.target).set(int(line.verdict in BAD_VERDICTS))
        rolled.labels(line.target).set(int(line.verdict in (ROLLED_BACK, ROLLBACK_FAILED)))
        when.labels(line.target).set(line.started_at.timestamp())


def _set(metric: Gauge, label: str, value: float | None) -> None:
    if value is not None:
        metric.labels(label).set(value)


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def _flag(status: str | None) -> int | None:
    return None if status is None else int(is_success(status))


def _bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


# --- where the figures go -------------------------------------------------------------------


def text(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def write_textfile(registry: CollectorRegistry, path: Path) -> None:
    """Replace `path` atomically (a temporary file beside it, then a rename), so the
    collector never reads half a file. node_exporter only reads files ending in .prom."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)


def push(registry: CollectorRegistry, url: str, timeout: float = 10.0) -> None:
    """PUT every figure to the Pushgateway under job="vigil", replacing the last push."""
    push_to_gateway(url, job=JOB, registry=registry, timeout=timeout)
