"""The config file: discovery, interpolation, validation messages, init and check-config."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.config import ConfigError, load_config, parse_config
from vigil.durations import parse_duration, parse_size

runner = CliRunner()


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return caught.value.errors


def test_durations_and_sizes() -> None:
    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration("5m") == timedelta(minutes=5)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("250ms") == timedelta(milliseconds=250)
    assert parse_size("100MB") == 100_000_000
    assert parse_size("1GB") == 1_000_000_000
    assert parse_size("4GiB") == 4 * 1024**3
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")
    with pytest.raises(ValueError, match="not a size"):
        parse_size("big")


def test_empty_file_is_a_valid_config_with_defaults() -> None:
    config = parse_config("")
    assert config.summary() == "0 monitors, 0 databases, 0 deploy targets, 0 channels"
    assert config.store.url.startswith("sqlite:///")
    assert config.backup.storage.startswith("file:///")


def test_every_error_is_reported_at_once_with_its_key_path() -> None:
    errors = errors_of(
        """
monitors:
  - name: ok
    url: http://127.0.0.1/
  - name: no-url
  - name: bad-timeout
    url: http://127.0.0.1/
    timeout: soon
  - name: typo
    url: http://127.0.0.1/
    treshold: 3
databases:
  - name: main
    url: mysql://nope
backup:
  max_age: forever
"""
    )
    assert "monitors[1]: url is required for a http monitor" in errors
    assert any(e.startswith("monitors[2].timeout: not a duration: 'soon'") for e in errors)
    assert "monitors[3].treshold: unknown key" in errors
    assert any(e.startswith("databases[0].url: url 'mysql://nope' is not a") for e in errors)
    assert any(e.startswith("backup.max_age: not a duration") for e in errors)
    assert len(errors) == 5


def test_every_cron_in_the_config_is_checked_the_same_way() -> None:
    """One validator (vigil.cron) for the four schedules and recurring maintenance windows:
    each bad expression is named with its key path; random/hashed fields are refused."""
    errors = errors_of(
        """
backup: {schedule: "every night"}
restore_test: {schedule: "0 4 * *"}
drill: {schedule: "H 3 * * 0"}
report: {schedule: "61 8 * * 1"}
maintenance:
  - {cron: "0 25 * * *", duration: 1h}
monitors:
  - name: api
    url: http://127.0.0.1/
    maintenance: [{cron: "nope", duration: 1h}]
"""
    )
    assert sorted(errors) == [
        "backup.schedule: 'every night' is not a cron expression (e.g. '0 2 * * *')",
        "drill.schedule: 'H 3 * * 0' is not a cron expression (e.g. '0 2 * * *')",
        "maintenance[0].cron: '0 25 * * *' is not a cron expression (e.g. '0 2 * * *')",
        "monitors[0].maintenance[0].cron: 'nope' is not a cron expression (e.g. '0 2 * * *')",
        "report.schedule: '61 8 * * 1' is not a cron expression (e.g. '0 2 * * *')",
        "restore_test.schedule: '0 4 * *' is not a cron expression (e.g. '0 2 * * *')",
    ]
    good = parse_config('backup: {schedule: "30 1 * * MON-FRI"}\ndrill: {schedule: "0 3 1-7 * 0"}')
    assert (good.backup.schedule, good.drill.schedule) == ("30 1 * * MON-FRI", "0 3 1-7 * 0")


def test_bad_condition_names_monitor_and_condition() -> None:
    errors = errors_of(
        """
monitors:
  - name: api
    url: http://127.0.0.1/
    conditions: ["[STATUS] == 200", "[STATU] == 200"]
"""
    )
    assert len(errors) == 1
    assert errors[0].startswith("monitors[0].conditions: bad condition '[STATU] == 200'")


def test_unknown_section_and_channel_type() -> None:
    errors = errors_of(
        """
monitor: []
channels:
  pager:
    type: pagerduty
"""
    )
    assert "monitor: unknown key" in errors
    assert any(e.startswith("channels.pager: unknown type 'pagerduty'") for e in errors)


def test_cross_references_are_checked() -> None:
    errors = errors_of(
        """
channels:
  ops: {type: webhook, url: "http://127.0.0.1:9/hook"}
routes:
  critical: [ops, pager]
monitors:
  - {name: a, url: "http://127.0.0.1/", depends_on: [b]}
  - {name: a, url: "http://127.0.0.1/"}
drill:
  fallbacks: [nowhere]
"""
    )
    assert "routes.critical[1]: no channel named 'pager'" in errors
    assert "monitors[0].depends_on[0]: no other monitor named 'b'" in errors
    assert "monitors[1].name: 'a' is already used by monitors[0]" in errors
    assert "drill.fallbacks[0]: 'nowhere' is neither a monitor nor a URL" in errors


def test_environment_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_HOST", "api.internal")
    monkeypatch.delenv("API_PORT", raising=False)
    config = parse_config(
        """
monitors:
  - name: api
    url: http://${API_HOST}:${API_PORT:-8080}/health
    timeout: ${API_TIMEOUT:-3s}
"""
    )
    assert config.monitors[0].url == "http://api.internal:8080/health"
    assert config.monitors[0].timeout == timedelta(seconds=3)


def test_missing_variable_names_variable_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    errors = errors_of(
        """
databases:
  - name: main
    url: ${DATABASE_URL}
"""
    )
    assert errors[0] == (
        "databases[0].url: environment variable DATABASE_URL is not set (and has no default)"
    )


def test_interpolated_secrets_are_registered_for_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.redact import redact

    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example.net/very-secret-path-123")
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2hunter2")
    parse_config(
        """
channels:
  slack: {type: slack, webhook_url: "${SLACK_WEBHOOK_URL}"}
  mail:
    type: email
    host: 127.0.0.1
    from: vigil@example.com
    to: [ops@example.com]
    password: ${SMTP_PASSWORD}
"""
    )
    text = "posting to https://hooks.example.net/very-secret-path-123 with hunter2hunter2"
    assert "very-secret" not in redact(text)
    assert "hunter2" not in redact(text)


def test_config_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vigil.yaml").write_text("monitors: [{name: here, url: 'http://127.0.0.1/'}]")
    (tmp_path / "env.yaml").write_text("monitors: []")
    (tmp_path / "flag.yaml").write_text("databases: []")
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    assert load_config().monitors[0].name == "here"
    monkeypatch.setenv("VIGIL_CONFIG", str(tmp_path / "env.yaml"))
    assert load_config().monitors == []
    assert load_config(tmp_path / "flag.yaml").databases == []


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vigil init"):
        load_config(tmp_path / "absent.yaml")


def test_yaml_syntax_error_has_a_line_number() -> None:
    errors = errors_of("monitors:\n  - name: [unclosed\n")
    assert errors[0].startswith("line ")


def test_init_writes_a_config_that_passes_check_config(tmp_path: Path) -> None:
    target = tmp_path / "vigil.yaml"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("# vigil configuration")
    checked = runner.invoke(app, ["check-config", "-c", str(target)])
    assert checked.exit_code == 0, checked.output
    assert "4 monitors, 1 databases, 0 deploy targets, 1 channels" in checked.output


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "vigil.yaml"
    target.write_text("# mine\n")
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 2
    assert target.read_text() == "# mine\n"


def test_check_config_exits_2_and_lists_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("monitors:\n  - name: x\n  - name: y\n    type: tcp\n")
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "check-config", "-c", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "monitors[0]: url is required for a http monitor" in result.stderr
    assert "monitors[1]: host and port are required for a tcp monitor" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_deploy_process_check_is_a_command_or_pm2_and_release_conditions_parse() -> None:
    from vigil.config import DeployTarget

    both = {"process": {"command": "true", "pm2": {"app": "web"}}}
    with pytest.raises(ValueError, match="either `command` or `pm2`, exactly one"):
        DeployTarget.model_validate(both)
    with pytest.raises(ValueError, match="either `command` or `pm2`"):
        DeployTarget.model_validate({"process": {}})
    target = DeployTarget.model_validate(
        {
            "process": {"pm2": {"app": "web", "home": "/srv/web/.pm2", "max_restarts": 1}},
            "health": {"url": "http://x/health", "conditions": ["[BODY].release == [RELEASE]"]},
        }
    )
    assert target.process is not None and target.process.pm2 is not None
    assert target.process.pm2.max_restarts == 1
    with pytest.raises(ValueError, match="unknown placeholder"):
        DeployTarget.model_validate(
            {"health": {"url": "http://x/", "conditions": ["[BODY].v == [RELEASSE]"]}}
        )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cr@t-Pw9@db.example:5432/app",
        "https://ops:s3cr@t-Pw9@status.example/health",
    ],
)
def test_an_unencoded_at_sign_in_a_password_is_refused_without_showing_it(url: str) -> None:
    """libpq splits such a URL at the first '@' and Python at the last: it connects nowhere,
    and a backup of it spent a minute retrying an unknown host before saying so."""
    kind = "postgres" if url.startswith("postgresql") else "http"
    errors = errors_of(
        f"monitors:\n  - name: m\n    type: {kind}\n    url: '{url}'\n"
        if kind == "http"
        else f"databases:\n  - name: app\n    url: '{url}'\n"
    )
    text = " ".join(errors)
    assert "%40" in text, errors
    assert "s3cr" not in text and "t-Pw9" not in text, errors
    encoded = url.replace("s3cr@t", "s3cr%40t")
    parse_config(
        f"databases:\n  - name: app\n    url: '{encoded}'\n"
        if kind == "postgres"
        else f"monitors:\n  - name: m\n    type: http\n    url: '{encoded}'\n"
    )


def test_interpolation_fills_every_depth_and_names_the_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Variables deep in lists of mappings are filled and their places named; everything
    around them (kept as it is, not copied) comes through unchanged."""
    monkeypatch.setenv("VIGIL_T_STATUS", "ok")
    monkeypatch.delenv("VIGIL_T_MISSING", raising=False)
    config = parse_config(
        """
monitors:
  - {name: a, url: "https://a.example.com/", conditions: ["[STATUS] == 200"]}
  - name: b
    url: https://b.example.com/
    headers: {X-Mode: plain, X-Status: "${VIGIL_T_STATUS}"}
    conditions: ["[STATUS] == 200", "[BODY].status == ${VIGIL_T_STATUS}"]
"""
    )
    a, b = config.monitors
    assert a.conditions == ["[STATUS] == 200"] and a.headers == {}
    assert b.headers == {"X-Mode": "plain", "X-Status": "ok"}
    assert list(b.headers) == ["X-Mode", "X-Status"]
    assert b.conditions == ["[STATUS] == 200", "[BODY].status == ok"]
    errors = errors_of(
        """
monitors:
  - {name: a, url: "https://a.example.com/"}
  - name: b
    url: https://b.example.com/
    conditions: ["[STATUS] == 200", "[BODY].status == ${VIGIL_T_MISSING}"]
"""
    )
    assert errors[0] == (
        "monitors[1].conditions[1]: environment variable VIGIL_T_MISSING is not set"
        " (and has no default)"
    )
