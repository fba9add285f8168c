"""A big config's parsed YAML is reused across runs, never stale, never a secret on disk."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from vigil import yamlcache
from vigil.config import WebhookChannel, forget_parsed, load_config


def big_config(path: Path, *, monitors: int = 2000, token: str = "${HOOK_TOKEN}") -> Path:
    lines = [
        "channels:",
        "  hook: {type: webhook, url: 'http://127.0.0.1:9/hook',",
        f"         headers: {{X-Token: '{token}'}}}}",
        "maintenance:",
        "  - {from: 2024-05-01 02:00, to: 2024-05-01 04:00}",
        "monitors:",
    ]
    lines += [f"  - {{name: m{i}, url: 'http://127.0.0.1:9/ok/{i}'}}" for i in range(monitors)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOOK_TOKEN", "s3cr3t-from-the-environment")
    return tmp_path / "home"


def cache_files(home: Path) -> list[Path]:
    return sorted((home / "cache").glob("config-*.pickle"))


def test_a_second_load_reads_the_cache_and_gives_the_same_config(
    tmp_path: Path, home: Path
) -> None:
    path = big_config(tmp_path / "vigil.yaml")
    first = load_config(path)
    [slot] = cache_files(home)
    assert load_config(path) is first  # the same file and environment: validated once
    forget_parsed()
    assert load_config(path) == first  # from the YAML cache
    assert first.maintenance[0].start is not None  # YAML timestamps survive the round trip
    assert slot.stat().st_mode & 0o077 == 0, "the cache is private to its owner"


def test_an_edit_is_never_hidden_by_the_cache(tmp_path: Path, home: Path) -> None:
    path = big_config(tmp_path / "vigil.yaml")
    assert len(load_config(path).monitors) == 2000
    big_config(path, monitors=2001)
    assert len(load_config(path).monitors) == 2001


def test_secrets_from_the_environment_never_reach_the_cache(tmp_path: Path, home: Path) -> None:
    path = big_config(tmp_path / "vigil.yaml")
    config = load_config(path)
    hook = config.channels["hook"]
    assert isinstance(hook, WebhookChannel)
    assert hook.headers["X-Token"] == "s3cr3t-from-the-environment"
    [slot] = cache_files(home)
    assert b"s3cr3t" not in slot.read_bytes()
    assert b"${HOOK_TOKEN}" in slot.read_bytes()


def test_a_tampered_cache_is_ignored_not_executed(tmp_path: Path, home: Path) -> None:
    path = big_config(tmp_path / "vigil.yaml")
    load_config(path)
    [slot] = cache_files(home)
    digest, _ = pickle.loads(slot.read_bytes())
    marker = tmp_path / "pwned"
    slot.write_bytes(pickle.dumps((digest, _Evil(str(marker)))))
    forget_parsed()
    assert len(load_config(path).monitors) == 2000
    assert not marker.exists()


def test_a_changed_environment_is_validated_again(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = big_config(tmp_path / "vigil.yaml", monitors=3)
    first = load_config(path)
    monkeypatch.setenv("HOOK_TOKEN", "another-token")
    again = load_config(path)
    assert again is not first
    hook = again.channels["hook"]
    assert isinstance(hook, WebhookChannel) and hook.headers["X-Token"] == "another-token"


def test_small_configs_are_not_cached(tmp_path: Path, home: Path) -> None:
    path = big_config(tmp_path / "vigil.yaml", monitors=3)
    assert len(path.read_bytes()) < yamlcache.MIN_CACHED_BYTES
    load_config(path)
    assert cache_files(home) == []


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (Path(self.marker),))  # type: ignore[return-value]
