"""`vigil metrics`: Prometheus gauges named by convention, read back with the official
client's parser; written atomically for node_exporter's textfile collector, or pushed to a
Pushgateway."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from tests.history import END, STANDARD, Seeded, seeded_store
from vigil import metrics
from vigil.cli import app
from vigil.status import MonitorLine, StatusScreen, gather

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    with seeded_store(STANDARD, "sqlite", tmp_path_factory.mktemp("metrics"), None) as s:
        yield s


def samples(exposition: str) -> Samples:
    """Every sample, parsed by prometheus_client's own parser (which refuses bad syntax)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


@pytest.fixture(scope="module")
def found(seeded: Seeded) -> Samples:
    screen = gather(STANDARD.config(), seeded.store, END)
    return samples(metrics.text(metrics.registry_for(screen)))


def test_monitor_states_and_last_check(found: Samples) -> None:
    assert value(found, "vigil_monitor_down", monitor="web") == 1
    assert value(found, "vigil_monitor_up", monitor="web") == 0
    assert value(found, "vigil_monitor_up", monitor="api") == 1
    assert value(found, "vigil_monitor_degraded", monitor="search") == 0
    since = (END - timedelta(minutes=20)).timestamp()
    assert value(found, "vigil_monitor_state_since_timestamp_seconds", monitor="web") == since
    assert (
        value(found, "vigil_monitor_last_check_timestamp_seconds", monitor="db") == END.timestamp()
    )
    # The last sweep was one of the slow ones (every tenth): 400 ms, in seconds.
    assert value(found, "vigil_monitor_response_time_seconds", monitor="api") == 0.4
    assert ("vigil_monitor_response_time_seconds", (("monitor", "web"),)) not in found


def test_backup_age_size_and_verification(found: Samples) -> None:
    # main's newest backup started 10h before END and took 99 seconds.
    assert value(found, "vigil_backup_age_seconds", database="main") == 10 * 3600 - 99
    assert value(found, "vigil_backup_size_bytes", database="main") == 1_390_000_000
    assert value(found, "vigil_backup_verified", database="main") == 1
    assert value(found, "vigil_backup_age_seconds", database="billing") == (3 * 24 + 10) * 3600 - 30


def test_restore_test_drill_and_deploy_verdicts(found: Samples) -> None:
    assert value(found, "vigil_restore_test_success", database="main") == 1
    assert value(found, "vigil_restore_test_duration_seconds", database="main") == 650
    assert value(found, "vigil_restore_test_rto_met", database="main") == 1
    assert value(found, "vigil_restore_test_rto_seconds", database="billing") == 1800
    assert ("vigil_restore_test_success", (("database", "billing"),)) not in found  # never ran
    assert value(found, "vigil_drill_rto_met") == 1 and value(found, "vigil_drill_rpo_met") == 0
    assert value(found, "vigil_drill_rpo_seconds") == 90000
    assert value(found, "vigil_deploy_last_passed", target="web") == 0
    assert value(found, "vigil_deploy_last_rolled_back", target="web") == 1
    assert value(found, "vigil_status_needs_attention") == 1


def test_tls_expiry_is_a_timestamp() -> None:
    line = MonitorLine("api", "UP", END, END, False, 120.0, 12.5, None, None, None)
    found = samples(metrics.text(metrics.registry_for(StatusScreen(now=END, monitors=[line]))))
    expiry = value(found, "vigil_monitor_tls_expiry_timestamp_seconds", monitor="api")
    assert expiry == END.timestamp() + 12.5 * 86400


def test_the_textfile_is_replaced_atomically(seeded: Seeded, tmp_path: Path) -> None:
    config = STANDARD.write_config(tmp_path, seeded.url)
    target = tmp_path / "textfile" / "vigil.prom"
    target.parent.mkdir()
    target.write_text("stale\n")
    before = target.stat().st_ino
    result = CliRunner().invoke(app, ["metrics", "-c", str(config), "--textfile", str(target)])
    assert result.exit_code == 0, result.output
    assert target.stat().st_ino != before  # a new file renamed over the old one
    assert [p.name for p in target.parent.iterdir()] == ["vigil.prom"]  # no temp file left
    assert value(samples(target.read_text()), "vigil_monitor_down", monitor="web") == 1


def test_push_to_a_pushgateway(seeded: Seeded, tmp_path: Path, webhook_receiver) -> None:
    config = STANDARD.write_config(tmp_path, seeded.url)
    result = CliRunner().invoke(
        app, ["metrics", "-c", str(config), "--push", webhook_receiver.base_url]
    )
    assert result.exit_code == 0, result.output
    [request] = webhook_receiver.requests
    assert (request.method, request.path) == ("PUT", "/metrics/job/vigil")
    assert value(samples(request.text), "vigil_monitor_down", monitor="web") == 1


def test_a_failed_push_exits_1(seeded: Seeded, tmp_path: Path, closed_port: int) -> None:
    config = STANDARD.write_config(tmp_path, seeded.url)
    gateway = f"http://127.0.0.1:{closed_port}"
    result = CliRunner().invoke(app, ["metrics", "-c", str(config), "--push", gateway])
    assert result.exit_code == 1
    assert f"push to {gateway} failed" in result.output


def test_without_a_target_the_figures_go_to_stdout(seeded: Seeded, tmp_path: Path) -> None:
    config = STANDARD.write_config(tmp_path, seeded.url)
    result = CliRunner().invoke(app, ["metrics", "-c", str(config)])
    assert result.exit_code == 0
    assert value(samples(result.stdout), "vigil_monitor_up", monitor="api") == 1
