"""The manifest: a JSON document written next to the dump, last (a dump without its
manifest is incomplete by definition). It holds what a restore must bring back, as of the
dump's own snapshot, and where the backup's objects are with their sizes and checksums."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from vigil import __version__, clock
from vigil.backup.facts import Contents, SnapshotFacts, TableFacts
from vigil.backup.identity import BackupError

MANIFEST_FORMAT = "vigil-backup-manifest"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class StoredFile:
    """One object as written: where, how big, and its SHA-256."""

    key: str
    location: str
    size_bytes: int
    sha256: str


def build_manifest(
    *,
    backup: str,
    database: str,
    facts: SnapshotFacts,
    dump: StoredFile,
    compression: Any,
    pg_dump_version: str,
    config_archive: StoredFile | None,
    config_files: Sequence[str],
    unreadable: Sequence[str],
    started_at: datetime,
    dump_seconds: float,
    encoding: Sequence[str] = (),
    archive_bytes: int | None = None,
    sealed_for: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything a restore needs to check itself against, as JSON-ready data.

    `compression` is the `backup.compression` setting (an int is pg_dump's gzip level, as
    before); `encoding` the layers vigil applied over pg_dump's bytes (tasks.codec), and
    `sealed_for` the age recipients of a sealed backup (its config archive is sealed too)."""
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "backup_id": backup,
        "database": database,
        "created_at": started_at.isoformat(),
        "completed_at": clock.now().isoformat(),
        "vigil_version": __version__,
        "pg_dump_version": pg_dump_version,
        "server_version": facts.server_version,
        "server_version_num": facts.server_version_num,
        "database_size": facts.database_size,
        "snapshot": {"id": facts.snapshot_id, "taken_at": facts.taken_at.isoformat()},
        "tables": [asdict(t) for t in facts.tables],
        "total_rows": facts.total_rows,
        "indexes": list(facts.indexes),
        "constraints": list(facts.constraints),
        "schema_fingerprint": facts.fingerprint,
        # What a restore must bring back besides rows (vigil.completeness); a manifest
        # without these sections is judged without them.
        "objects": {kind: dict(found) for kind, found in facts.objects.items()},
        "sequences": {name: dict(value) for name, value in facts.sequences.items()},
        "contents": contents_json(facts.contents),
        "partitions": {parent: list(children) for parent, children in facts.partitions.items()},
        "dump": {
            **_dump_encoding(compression, encoding, archive_bytes, sealed_for),
            **asdict(dump),
        },
        "config_archive": (
            {
                **asdict(config_archive),
                "files": list(config_files),
                "unreadable": list(unreadable),
                **({"encoding": ["age"], "recipients": list(sealed_for)} if sealed_for else {}),
            }
            if config_archive
            else None
        ),
        "timings": {"dump_s": round(dump_seconds, 3)},
    }


def _dump_encoding(
    compression: Any, encoding: Sequence[str], archive_bytes: int | None, sealed: Sequence[str]
) -> dict[str, Any]:
    """How the dump is stored: pg_dump's own `compression` level (0 unless gzip), the codec,
    the layers over pg_dump's bytes, the archive's own size, and whom it is sealed for."""
    if isinstance(compression, int):
        return {"format": "custom", "compression": compression}
    entry: dict[str, Any] = {
        "format": "custom",
        "compression": compression.pg_dump_level,
        "codec": compression.label,
        "encoding": list(encoding),
    }
    if archive_bytes is not None:
        entry["archive_bytes"] = archive_bytes
    if sealed:
        entry["recipients"] = list(sealed)
    return entry


def check_manifest(document: Any, backup: str) -> dict[str, Any]:
    """The manifest of `backup`, or BackupError saying why it cannot be trusted."""
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise BackupError(f"{backup}: the manifest is not a vigil backup manifest")
    if document.get("version") != MANIFEST_VERSION:
        raise BackupError(
            f"{backup}: manifest version {document.get('version')!r} is not one this vigil "
            f"({__version__}) reads; use the vigil version that wrote it"
        )
    if document.get("backup_id") != backup:
        raise BackupError(f"{backup}: the manifest describes {document.get('backup_id')!r}")
    return document


def manifest_rows(manifest: dict[str, Any]) -> dict[str, TableFacts]:
    return {
        t["name"]: TableFacts(t["name"], int(t["rows"]), bool(t["exact"]))
        for t in manifest["tables"]
    }


def leaf_tables(partitions: Mapping[str, Sequence[str]], name: str) -> list[str]:
    """The tables holding a partitioned table's rows (its leaves, through sub-partitions),
    in the tree `partitions` (parent -> direct partitions); [name] for a table of its own."""
    children = partitions.get(name)
    if not children:
        return [name]
    return [leaf for child in children for leaf in leaf_tables(partitions, child)]


def partition_tree(manifest: Mapping[str, Any]) -> Mapping[str, Sequence[str]]:
    """The manifest's partition tree (empty in a manifest written before it was recorded)."""
    return manifest.get("partitions") or {}


def rows_through_leaves(manifest: dict[str, Any], name: str) -> TableFacts | None:
    """A table's rows, a partitioned table's summed over its leaves (exact if all are)."""
    rows = manifest_rows(manifest)
    leaves = [rows.get(leaf) for leaf in leaf_tables(partition_tree(manifest), name)]
    if name not in rows or any(leaf is None for leaf in leaves):
        return None
    found = [leaf for leaf in leaves if leaf is not None]
    return TableFacts(name, sum(f.rows for f in found), all(f.exact for f in found))


def contents_json(contents: Contents | None) -> dict[str, Any] | None:
    """The manifest's record of what only reading data shows."""
    if contents is None:
        return None
    return {
        "large_objects": {
            "count": contents.large_objects,
            "sha256": contents.large_objects_sha256,
        },
        "matviews": dict(contents.matviews),
        "fingerprints": {
            name: {"rows": f.rows, "sha256": f.sha256} for name, f in contents.fingerprints.items()
        },
    }
