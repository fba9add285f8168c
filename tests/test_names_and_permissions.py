"""Names that become path segments are path segments, storage is a real folder or bucket, and
vigil's home and records are private to its user."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from vigil.config import ConfigError, parse_config
from vigil.paths import vigil_home
from vigil.store import open_store


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../etc", "-x", "", "x" * 64, "a b"])
def test_a_database_name_that_is_no_path_segment_is_refused(name: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(f"databases: [{{name: '{name}', url: 'postgresql://h/db'}}]")
    assert "database name" in str(refused.value.errors), refused.value.errors


@pytest.mark.parametrize("name", ["main", "shop-eu.1", "Billing_2"])
def test_ordinary_database_names_are_accepted(name: str) -> None:
    config = parse_config(f"databases: [{{name: '{name}', url: 'postgresql://h/db'}}]")
    assert config.databases[0].name == name


@pytest.mark.parametrize("storage", ["file:///", "file://", "file://otherhost/backups", "s3://"])
def test_storage_must_be_a_folder_here_or_a_bucket(storage: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(f"backup: {{storage: '{storage}'}}")
    assert "backup.storage" in " ".join(refused.value.errors), refused.value.errors


def test_a_deploy_target_name_must_be_a_path_segment() -> None:
    body = "deploys:\n  'web/1': {pages: ['http://127.0.0.1:9/']}\n"
    with pytest.raises(ConfigError) as refused:
        parse_config(body)
    assert any(e.startswith("deploys.web/1:") for e in refused.value.errors)


def test_vigils_home_and_records_are_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "fresh" / "home"))
    import os

    old = os.umask(0o022)
    try:
        home = vigil_home()
        store = open_store(f"sqlite:///{home / 'vigil.db'}")
        store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "vigil.db").stat().st_mode) == 0o600
