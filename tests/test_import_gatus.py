"""`vigil import gatus`: a realistic Gatus config becomes a vigil config that loads, whose
conditions judge a real target as Gatus would, and whose leftovers are all named."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from tasks.probes import probe_all
from vigil.cli import app
from vigil.conditions import conditions_for, evaluate_all
from vigil.config import Config, Monitor, load_config
from vigil.gatus import GatusError, convert, go_duration, vigil_duration
from vigil.maintenance import window_active

runner = CliRunner()

GATUS = """
storage: {type: sqlite, path: /data/data.db}
ui: {title: Our status}
alerting:
  slack:
    webhook-url: "https://hooks.slack.com/services/T000/B000/XXXX"
    default-alert: {failure-threshold: 4, success-threshold: 3, send-on-resolved: true}
  email:
    from: gatus@example.com
    username: gatus@example.com
    password: hunter2
    host: smtp.example.com
    port: 587
    to: "oncall@example.com, ops@example.com"
  custom:
    url: "https://hooks.example.com/gatus"
    method: POST
    body: '{"text": "[ALERT_DESCRIPTION]"}'
    headers: {Authorization: Bearer abc}
  discord:
    webhook-url: "https://discord.com/api/webhooks/1/2"
maintenance:
  start: "23:00"
  duration: 1h
  timezone: Europe/Amsterdam
  every: [Monday, Thursday]
endpoints:
  - name: website
    group: core
    url: "BASE/health"
    interval: 5m
    conditions:
      - "[STATUS] == 200"
      - "[BODY].status == UP"
      - "[RESPONSE_TIME] < 3000"
      - "[DOMAIN_EXPIRATION] > 720h"
    alerts:
      - type: slack
      - type: email
        failure-threshold: 2
        success-threshold: 1
  - name: api
    group: core
    url: "BASE/items"
    method: POST
    body: '{"q": 1}'
    headers: {Content-Type: application/json}
    interval: 30s
    client: {insecure: true, timeout: 3s}
    conditions:
      - "[STATUS] == [BODY].status"
      - "len([BODY].items) == 2"
      - "[BODY].version > 0x0F"
    alerts:
      - type: custom
        failure-threshold: 5
      - type: discord
  - name: api
    group: staging
    url: "BASE/items"
    interval: 1m30s
  - name: postgres
    url: "tcp://127.0.0.1:5432"
    conditions: ["[CONNECTED] == true"]
  - name: ping
    url: "icmp://10.0.0.1"
    conditions: ["[CONNECTED] == true"]
  - name: resolver
    url: "8.8.8.8"
    dns: {query-name: example.org, query-type: A}
    conditions: ["[DNS_RCODE] == NOERROR"]
  - name: old
    enabled: false
    url: https://old.example.org
"""

PER_MONITOR_INTERVAL = "interval" in Monitor.model_fields


@pytest.fixture
def gatus_file(tmp_path: Path, httpserver: HTTPServer) -> Path:
    path = tmp_path / "gatus.yaml"
    path.write_text(GATUS.replace("BASE", httpserver.url_for("").rstrip("/")))
    return path


def imported(gatus_file: Path) -> tuple[Path, str]:
    target = gatus_file.parent / "vigil.yaml"
    result = runner.invoke(app, ["import", "gatus", str(gatus_file), "-o", str(target)])
    assert result.exit_code == 0, result.output
    return target, result.output


def test_converted_config_passes_check_config(gatus_file: Path) -> None:
    target, _ = imported(gatus_file)
    checked = runner.invoke(app, ["check-config", "-c", str(target)])
    assert checked.exit_code == 0, checked.output
    assert "4 monitors, 0 databases, 0 deploy targets, 3 channels" in checked.output


def test_endpoints_thresholds_and_alerting_carry_over(gatus_file: Path) -> None:
    target, _ = imported(gatus_file)
    config = load_config(target)
    names = [m.name for m in config.monitors]
    assert names == ["website", "api", "staging/api", "postgres"]
    website, api, staging, postgres = config.monitors
    assert website.conditions == [
        "[STATUS] == 200",
        "[BODY].status == UP",
        "[RESPONSE_TIME] < 3000",
    ]
    # the email alert's own 2/1 beats slack's default-alert 4/3: the lowest is used
    assert (website.failure_threshold, website.success_threshold) == (2, 1)
    assert website.severity == "high" and website.group == "core"
    assert (api.method, api.body, api.verify_tls) == ("POST", '{"q": 1}', False)
    assert api.timeout.total_seconds() == 3 and api.headers == {"Content-Type": "application/json"}
    assert (api.failure_threshold, api.success_threshold) == (5, 2)  # Gatus's default 2
    assert staging.severity == "low"  # no alerts in Gatus: nobody paged
    assert (postgres.type, postgres.host, postgres.port) == ("tcp", "127.0.0.1", 5432)
    assert set(config.channels) == {"gatus-slack", "gatus-email", "gatus-custom"}
    email = config.channels["gatus-email"]
    assert email.to == ["oncall@example.com", "ops@example.com"] and email.security == "starttls"
    assert config.routes["high"] == ["gatus-slack", "gatus-email", "gatus-custom"]
    assert "low" not in config.routes


def test_intervals_carry_over(gatus_file: Path) -> None:
    target, output = imported(gatus_file)
    config = load_config(target)
    assert config.sweep.every.total_seconds() == 30  # the shortest interval
    if PER_MONITOR_INTERVAL:
        intervals = {m.name: getattr(m, "interval", None) for m in config.monitors}
        assert intervals["website"].total_seconds() == 300
        assert intervals["staging/api"].total_seconds() == 90
        assert intervals["postgres"].total_seconds() == 60  # Gatus's default
        assert intervals["api"] is None  # = sweep.every
    else:
        assert "endpoint 'website': interval 5m (this vigil has no per-monitor interval" in output


def test_what_is_not_carried_over_is_listed(gatus_file: Path) -> None:
    target, output = imported(gatus_file)
    for line in (
        "`storage:` (Gatus's own storage settings)",
        "alerting provider 'discord'",
        "alerting.custom.body (vigil's webhook POSTs its own JSON document)",
        "endpoint 'website': condition '[DOMAIN_EXPIRATION] > 720h' (vigil does not look up",
        "endpoint 'ping': icmp:// endpoints (icmp://10.0.0.1) are not probed",
        "endpoint 'resolver': DNS endpoints (8.8.8.8) are not probed",
        "endpoint 'old': disabled in Gatus, left out",
        "endpoint 'api': alert type 'discord' has no vigil channel",
    ):
        assert line in output
        assert line in target.read_text()  # the file says so too, at its top


def test_maintenance_window_means_what_it_meant(gatus_file: Path) -> None:
    target, _ = imported(gatus_file)
    (window,) = load_config(target).maintenance
    amsterdam = ZoneInfo("Europe/Amsterdam")
    assert window_active(window, datetime(2026, 12, 7, 23, 30, tzinfo=amsterdam))  # Monday
    assert window_active(window, datetime(2026, 12, 10, 23, 0, tzinfo=amsterdam))  # Thursday
    assert not window_active(window, datetime(2026, 12, 8, 23, 30, tzinfo=amsterdam))  # Tue
    assert not window_active(window, datetime(2026, 12, 7, 22, 59, tzinfo=amsterdam))
    assert not window_active(window, datetime(2026, 12, 8, 0, 0, tzinfo=amsterdam))  # 1h ends


def probe_verdicts(config: Config) -> dict[str, list[bool]]:
    monitors = [m for m in config.monitors if m.type == "http"]
    observations = asyncio.run(probe_all(monitors))
    return {
        m.name: [r.ok for r in evaluate_all(conditions_for(m), obs)]
        for m, obs in zip(monitors, observations, strict=True)
    }


def test_converted_conditions_judge_a_real_target(gatus_file: Path, httpserver: HTTPServer) -> None:
    target, _ = imported(gatus_file)
    config = load_config(target)
    httpserver.expect_request("/health").respond_with_json({"status": "UP"})
    items = {"status": 200, "items": [1, 2], "version": "0x10"}
    httpserver.expect_request("/items").respond_with_json(items)
    assert probe_verdicts(config) == {
        "website": [True, True, True],
        "api": [True, True, True],
        "staging/api": [True, True],
    }
    httpserver.clear()
    httpserver.expect_request("/health").respond_with_json({"status": "DOWN"}, status=503)
    broken = {"status": 201, "items": [1], "version": "0x0F"}
    httpserver.expect_request("/items").respond_with_json(broken)
    assert probe_verdicts(config) == {
        "website": [False, False, True],
        "api": [False, False, False],
        "staging/api": [True, True],
    }


def test_environment_references_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "gatus.yaml"
    source.write_text(
        textwrap.dedent("""
        alerting:
          slack: {webhook-url: "${SLACK_WEBHOOK_URL}"}
        endpoints:
          - {name: site, url: "https://example.org", conditions: ["[STATUS] == 200"],
             alerts: [{type: slack}]}
        """)
    )
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    result = runner.invoke(app, ["import", "gatus", str(source)])
    assert result.exit_code == 0, result.output
    assert "webhook_url: ${SLACK_WEBHOOK_URL}" in result.stdout
    assert "set before running vigil: channels.gatus-slack.webhook_url: environment" in (
        result.output
    )


def test_bad_input_is_refused_clearly(tmp_path: Path) -> None:
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    result = runner.invoke(app, ["import", "gatus", str(listing)])
    assert result.exit_code == 2
    assert "a Gatus config is a mapping with `endpoints:`" in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("endpoints: [\n")
    result = runner.invoke(app, ["import", "gatus", str(broken)])
    assert result.exit_code == 2 and "is not YAML" in result.output
    missing = runner.invoke(app, ["import", "gatus", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    with pytest.raises(GatusError, match="`endpoints:` must be a list"):
        convert({"endpoints": {"a": 1}})


def test_existing_output_is_not_overwritten(gatus_file: Path) -> None:
    target = gatus_file.parent / "vigil.yaml"
    target.write_text("keep me\n")
    result = runner.invoke(app, ["import", "gatus", str(gatus_file), "-o", str(target)])
    assert result.exit_code == 2 and "already exists" in result.output
    assert target.read_text() == "keep me\n"
    forced = runner.invoke(app, ["import", "gatus", str(gatus_file), "-o", str(target), "--force"])
    assert forced.exit_code == 0 and "monitors:" in target.read_text()


@pytest.mark.parametrize(
    ("go", "vigil"),
    [("30s", "30s"), ("1m30s", "90s"), ("1h30m", "90m"), ("500ms", "500ms"), ("24h", "1d")],
)
def test_go_durations(go: str, vigil: str) -> None:
    assert vigil_duration(go_duration(go)) == vigil


def test_a_bad_interval_is_listed_not_fatal() -> None:
    conversion = convert({"endpoints": [{"name": "a", "url": "http://x", "interval": "often"}]})
    assert "endpoint 'a': interval 'often' is not a duration" in conversion.not_carried
    assert yaml.safe_load(conversion.to_yaml())["sweep"] == {"every": "1m"}
