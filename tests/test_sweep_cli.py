"""`vigil sweep`: the same flow, run by hand; exit code and JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import write_config
from vigil.cli import app

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_sweep_exit_codes_and_json(tmp_path: Path, http_target) -> None:
    up = http_target.set("/up")
    down = http_target.set("/down", status=500)
    path = write_config(
        tmp_path,
        f"""
        monitors:
          - {{name: up, url: "{up}"}}
          - {{name: down, url: "{down}", failure_threshold: 1}}
        """,
    )
    result = CliRunner().invoke(app, ["sweep", "-c", str(path), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["down_monitors"] == ["down"]
    assert report["up"] == 1

    http_target.set("/down", status=200)
    result = CliRunner().invoke(app, ["sweep", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 up" in result.stdout


def test_sweep_with_bad_config_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text("monitors:\n  - name: x\n")
    result = CliRunner().invoke(app, ["sweep", "-c", str(path)])
    assert result.exit_code == 2
    assert "monitors[0]: url is required" in result.output
