"""The config is found where vigil put it: after `./vigil.yaml`, `$VIGIL_HOME/vigil.yaml`
(where `./dev up` writes the example), and a missing config names every place looked."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.cli import app

runner = CliRunner()
MINIMAL = "monitors:\n  - {name: shop, url: 'http://127.0.0.1:9/'}\n"


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An empty working folder and an empty $VIGIL_HOME, no $VIGIL_CONFIG."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("VIGIL_HOME", str(home))
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    return work, home


def test_the_config_in_vigil_home_is_found(places: tuple[Path, Path]) -> None:
    _, home = places
    (home / "vigil.yaml").write_text(MINIMAL)

    result = runner.invoke(app, ["check-config"])

    assert result.exit_code == 0, result.output
    assert f"{home / 'vigil.yaml'}: ok" in result.output


def test_the_working_folder_comes_first(places: tuple[Path, Path]) -> None:
    work, home = places
    (home / "vigil.yaml").write_text("not: [valid")
    (work / "vigil.yaml").write_text(MINIMAL)

    result = runner.invoke(app, ["check-config"])

    assert result.exit_code == 0, result.output
    assert "vigil.yaml: ok" in result.output


def test_no_config_anywhere_names_every_place_looked(places: tuple[Path, Path]) -> None:
    _, home = places

    result = runner.invoke(app, ["check-config"])

    assert result.exit_code == 2
    assert f"looked at vigil.yaml, {home / 'vigil.yaml'}" in result.output, result.output
    assert "Traceback" not in result.output


def test_an_explicit_path_is_the_only_place(places: tuple[Path, Path]) -> None:
    _, home = places
    (home / "vigil.yaml").write_text(MINIMAL)

    result = runner.invoke(app, ["check-config", "-c", "elsewhere.yaml"])

    assert result.exit_code == 2
    assert "(looked at elsewhere.yaml)" in result.output, result.output
