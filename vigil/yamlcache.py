"""Parse a large config file once, not on every sweep.

A scheduled sweep starts a fresh process every minute and reads the same file each time.
For 10,000 monitors PyYAML takes ~0.3-1 s even with libyaml's C parser (node construction
and tag resolution are Python), while reloading the parsed data from a pickle takes
~10 ms. So a big file's parsed form is kept under `$VIGIL_HOME/cache`, one slot per config
path, and used only when the text's SHA-256 matches: any edit, however quick, is a miss.

What is kept is the YAML data as written, before `${VAR}` interpolation: secrets from the
environment never reach the disk, and validation still runs on every load. The file is
private to its owner, and unpickling accepts nothing but the types safe YAML produces, so
a tampered cache can fail a load but never run code.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import yaml

# Below this a parse costs a few milliseconds: not worth a file.
MIN_CACHED_BYTES = 64 * 1024
_SAFE_TYPES = {
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "date"): datetime.date,
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
}


def load_yaml(text: str, where: Path | None, loader: Any) -> Any:
    """`yaml.load(text, Loader=loader)`, from the cache when this exact text was parsed
    before for the file `where`. YAML errors are raised as yaml.load raises them."""
    if where is None or len(text) < MIN_CACHED_BYTES:
        return yaml.load(text, Loader=loader)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    slot = _slot(where)
    cached = _read(slot, digest)
    if cached is not None:
        return cached[0]
    data = yaml.load(text, Loader=loader)
    _write(slot, digest, data)
    return data


def _slot(where: Path) -> Path:
    from vigil.paths import vigil_home

    name = hashlib.sha256(str(where.expanduser().absolute()).encode()).hexdigest()[:32]
    return vigil_home() / "cache" / f"config-{name}.pickle"


def _read(slot: Path, digest: str) -> tuple[Any] | None:
    """`(data,)` on a hit; None when missing, stale or unreadable (then the file is parsed)."""
    try:
        with open(slot, "rb") as handle:
            stored_digest, data = _SafeUnpickler(handle).load()
    except Exception:  # a missing, truncated or foreign cache file is only a miss
        return None
    return (data,) if stored_digest == digest else None


def _write(slot: Path, digest: str, data: Any) -> None:
    """Best effort: a read-only or full disk costs the next run a parse, nothing more."""
    with contextlib.suppress(OSError, pickle.PicklingError, RecursionError):
        slot.parent.mkdir(parents=True, exist_ok=True)
        partial = slot.with_name(f"{slot.name}.{os.getpid()}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            pickle.dump((digest, data), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, slot)  # atomic: a concurrent reader sees the old or the new file


class _SafeUnpickler(pickle.Unpickler):
    """Only builtins and the datetime types YAML timestamps become; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        found = _SAFE_TYPES.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a config cache")
        return found
