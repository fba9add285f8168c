"""Fetching a backup for a restore: its manifest first, then the archive, whose SHA-256 and
size are proven against the manifest (and the catalog) before anything else touches it.

The stored bytes are hashed as they arrive and written through `decoder_for(dump)` to the
local file pg_restore reads: the layers the manifest's `dump.encoding` names (zstd, age:
tasks.codec) are undone in the same pass, so the archive is downloaded once and never held
in memory. The checksum is always of the object as stored (the sealed bytes), and the
decoded file stays `.partial` until it matches: a tampered object is refused before
pg_restore ever runs, and when it also fails to decode, the checksum is what is reported.
A sealed backup without an identity that answers to its recipients is refused before
anything is downloaded. pg_restore gets a file, not a pipe: `--jobs` needs to seek, and a
pipe would start restoring before the checksum is proven.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.codec import CodecError, check_layers, decode, open_sealed
from tasks.storage import Storage, StorageError, read_bytes
from vigil.backup.identity import BackupError, Keys
from vigil.backup.manifest import check_manifest
from vigil.backup.sealing import Identities, maybe_identities, require_opener, sealed_for
from vigil.recovery import Finding

# Decodes stored chunks into `write`; returns the archive's size.
Decoder = Callable[[Iterable[bytes], Callable[[bytes | memoryview], object]], int]


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
    # The saved roles and tablespaces, read back (checksum proven, unsealed): a finding.
    globals: Finding | None = None
    # That file's SQL, unsealed, when it read back whole (what recovery applies).
    globals_sql: Path | None = None


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
    storage: Storage,
    backup: str,
    folder: Path,
    *,
    expected_sha256: str | None = None,
    identity: str | None = None,
    setting: str = "--identity",
) -> Fetched:
    """The manifest, then the archive into `folder`, proven whole; RestoreRefused when the
    catalog (`expected_sha256`), the manifest and the stored object disagree. A sealed
    backup is opened with the age identity at `identity` (a path or env:NAME, read only
    for a sealed backup; `setting` names where it was configured)."""
    started = time.monotonic()
    manifest = load_manifest(storage, backup)
    dump = manifest["dump"]
    if expected_sha256 and expected_sha256 != dump["sha256"]:
        raise RestoreRefused(
            f"{backup}: checksum mismatch: the catalog records sha256 {expected_sha256}, the "
            f"manifest {dump['sha256']}; the manifest was altered, not restoring"
        )
    try:
        sealed = sealed_for(dump)
        identities = maybe_identities(identity, setting) if sealed else None
        require_opener(sealed, identities, backup, setting)
        decoder = decoder_for(dump, identities)
    except BackupError as exc:
        raise RecoveryError(str(exc)) from None
    archive = folder / "backup.dump"
    sha256, size, problem = write_verified(storage.read(dump["key"]), decoder, archive)
    if (sha256, size) != (dump["sha256"], int(dump["size_bytes"])):
        raise RestoreRefused(
            f"{backup}: checksum mismatch: the stored archive does not match its manifest "
            f"(sha256 {sha256}, {size:,} bytes; the manifest says {dump['sha256']}, "
            f"{int(dump['size_bytes']):,} bytes): it is corrupted or truncated, not restoring"
        )
    if problem:
        raise RecoveryError(f"{backup}: {problem}; not restoring")
    path = folder / "globals.sql"
    saved = open_globals(storage, manifest, identities, path)
    sql = path if saved.ok and path.exists() else None
    return Fetched(manifest, archive, time.monotonic() - started, saved, sql)


GLOBALS_EXPECTED = "the saved roles and tablespaces read back whole (and unsealed)"


def open_globals(
    storage: Storage, manifest: dict[str, Any], identities: Identities | None, path: Path
) -> Finding:
    """The globals file saved with the backup, its checksum proven and, when sealed, opened
    with the identity at hand into `path` (what a recovery `psql -f`s after review). A
    finding: a backup whose roles cannot be read back cannot be fully recovered."""
    entry = (manifest.get("globals") or {}).get("file")
    if not entry:
        return Finding("globals", True, GLOBALS_EXPECTED, "not saved with this backup")
    where = entry.get("location") or entry["key"]
    try:
        data = read_bytes(storage, entry["key"])
    except StorageError as exc:
        return Finding.failed("globals", f"the saved globals {where} are unreadable: {exc}")
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        return Finding.failed(
            "globals", f"checksum mismatch: the saved globals {where} do not match the manifest"
        )
    sealed = sealed_for(entry)
    if sealed:
        if identities is None or not identities.opens(sealed):
            return Finding.failed(
                "globals", f"the saved globals {where} are sealed for {', '.join(sealed)}; "
                "no identity at hand opens them",
            )  # fmt: skip
        try:
            data = open_sealed(data, identities.keys)
        except CodecError as exc:
            return Finding.failed("globals", f"the saved globals {where} {exc}")
    path.write_bytes(data)
    how = "unsealed, " if sealed else ""
    return Finding("globals", True, GLOBALS_EXPECTED, f"{how}{len(data):,} bytes of SQL")


def decoder_for(dump: dict[str, Any], identities: Identities | None = None) -> Decoder:
    """How the stored bytes become the archive pg_restore reads: the layers the manifest
    names undone (none for a backup from before vigil encoded its own: gzip inside)."""
    encoding = check_layers(dump.get("encoding"))
    keys = identities.keys if identities else ()

    def decoder(chunks: Iterable[bytes], write: Callable[[bytes | memoryview], object]) -> int:
        return decode(chunks, encoding, keys, write)

    return decoder


def write_verified(
    chunks: Iterable[bytes], decode_into: Decoder, path: Path
) -> tuple[str, int, str | None]:
    """Hash the stored bytes as they pass and write them, decoded, to `path` (complete only
    on success); returns (sha256, size) of what was stored, and why it did not decode
    (after hashing all of it, so a damaged object is reported by its checksum)."""
    digest = hashlib.sha256()
    size = 0

    def hashed() -> Iterator[bytes]:
        nonlocal size
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            yield chunk

    stream = hashed()
    partial = path.with_name(path.name + ".partial")
    problem = None
    try:
        with open(partial, "wb") as out:
            decode_into(stream, out.write)
    except CodecError as exc:
        problem = str(exc)
        for _ in stream:
            pass
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise RecoveryError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if problem:
        partial.unlink(missing_ok=True)
        return digest.hexdigest(), size, problem
    partial.replace(path)
    return digest.hexdigest(), size, None
