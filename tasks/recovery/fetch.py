"""Fetching a backup for a restore: its manifest first, then the archive, whose SHA-256 and
size are proven against the manifest (and the catalog) before anything else touches it.

The stored bytes are hashed as they arrive and written through `decoder_for(dump)` to the
local file pg_restore reads: today every archive is stored as pg_dump wrote it (the
identity), and a stored encoding (compression, encryption) slots in there, named by the
manifest's `dump` entry, without changing what is proven: the checksum is always of the
object as stored.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.storage import Storage, StorageError, read_bytes
from vigil.backup.identity import BackupError, Keys
from vigil.backup.manifest import check_manifest

Decoder = Callable[[Iterable[bytes]], Iterator[bytes]]


class RecoveryError(BackupError):
    """A recovery step could not do its work; the message says what, where and why."""


class RestoreRefused(RecoveryError):
    """The restore did not start because going ahead could harm data or mislead; `usage`
    when the person asked for something that cannot be (a non-empty target)."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True)
class Fetched:
    manifest: dict[str, Any]
    archive: Path
    seconds: float


def load_manifest(storage: Storage, backup: str) -> dict[str, Any]:
    """The manifest stored next to the dump; a backup without one is incomplete."""
    key = Keys.of(backup).manifest
    try:
        document = json.loads(read_bytes(storage, key))
    except StorageError as exc:
        raise RecoveryError(
            f"{backup}: no readable manifest at {storage.location(key)} ({exc}); a backup "
            "without its manifest is incomplete and cannot be restored with checks"
        ) from None
    except ValueError:
        raise RecoveryError(
            f"{backup}: the manifest at {storage.location(key)} is not JSON"
        ) from None
    return check_manifest(document, backup)


def fetch(
    storage: Storage, backup: str, folder: Path, *, expected_sha256: str | None = None
) -> Fetched:
    """The manifest, then the archive into `folder`, proven whole; RestoreRefused when the
    catalog (`expected_sha256`), the manifest and the stored object disagree."""
    started = time.monotonic()
    manifest = load_manifest(storage, backup)
    dump = manifest["dump"]
    if expected_sha256 and expected_sha256 != dump["sha256"]:
        raise RestoreRefused(
            f"{backup}: checksum mismatch: the catalog records sha256 {expected_sha256}, the "
            f"manifest {dump['sha256']}; the manifest was altered, not restoring"
        )
    archive = folder / "backup.dump"
    sha256, size = write_verified(storage.read(dump["key"]), decoder_for(dump), archive)
    if (sha256, size) != (dump["sha256"], int(dump["size_bytes"])):
        raise RestoreRefused(
            f"{backup}: checksum mismatch: the stored archive does not match its manifest "
            f"(sha256 {sha256}, {size:,} bytes; the manifest says {dump['sha256']}, "
            f"{int(dump['size_bytes']):,} bytes): it is corrupted or truncated, not restoring"
        )
    return Fetched(manifest, archive, time.monotonic() - started)


def decoder_for(dump: dict[str, Any]) -> Decoder:
    """How the stored bytes become the archive pg_restore reads (the identity today)."""
    encoding = dump.get("encoding")
    if encoding not in (None, "none"):
        raise RecoveryError(
            f"the archive is stored with encoding {encoding!r}, which this vigil cannot read"
        )
    return iter


def write_verified(chunks: Iterable[bytes], decode: Decoder, path: Path) -> tuple[str, int]:
    """Hash the stored bytes as they pass and write them, decoded, to `path` (complete only
    on success); returns (sha256, size) of what was stored."""
    digest = hashlib.sha256()
    size = 0

    def hashed() -> Iterator[bytes]:
        nonlocal size
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            yield chunk

    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as out:
            for piece in decode(hashed()):
                out.write(piece)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise RecoveryError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return digest.hexdigest(), size
