"""Where vigil keeps its own files when the config does not say otherwise."""

from __future__ import annotations

import os
from pathlib import Path


def vigil_home(create: bool = True) -> Path:
    """`$VIGIL_HOME`, else `~/.vigil`; created on first use unless `create` is false, private
    to its user (it holds the records, the config with its secrets, local backups)."""
    home = Path(os.environ.get("VIGIL_HOME") or Path.home() / ".vigil").expanduser()
    if create and not home.is_dir():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        home.chmod(0o700)  # mkdir's mode is masked by the umask
    return home


def default_store_url() -> str:
    return f"sqlite:///{vigil_home() / 'vigil.db'}"


def default_backup_storage() -> str:
    return (vigil_home() / "backups").as_uri()
