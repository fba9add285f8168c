"""What a stored backup must prove before anyone may rely on it: it is there whole (size and
checksum as written), its archive is readable and holds every table of the snapshot with
the critical ones' data, it is not suspiciously small, and it is fresh. Each check keeps
what was expected next to what was seen, for the record and the alert."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vigil.backup.facts import TableFacts, split_name
from vigil.backup.listing import archive_tables
from vigil.backup.manifest import (
    leaf_tables,
    manifest_rows,
    partition_tree,
    rows_through_leaves,
)
from vigil.config import Database
from vigil.durations import format_duration, format_size


@dataclass(frozen=True)
class VerificationCheck:
    """One verified property, kept with what was expected and what was seen."""

    name: str
    passed: bool
    expected: str
    observed: str

    def line(self) -> str:
        mark = "ok" if self.passed else "FAILED"
        return f"{self.name}: {mark} (expected {self.expected}, observed {self.observed})"


@dataclass(frozen=True)
class ReadBack:
    """What reading the stored backup back showed; `error` when it could not be read."""

    exists: bool
    size_bytes: int | None = None
    sha256: str | None = None
    toc: str | None = None
    toc_error: str | None = None
    manifest_size: int | None = None
    config_archive_size: int | None = None
    error: str | None = None
    globals_size: int | None = None
    # The archive's size after undoing vigil's encoding (zstd, age); None when not decoded.
    decoded_bytes: int | None = None


@dataclass(frozen=True)
class Verification:
    backup_id: str
    verified_at: datetime
    created_at: datetime
    size_bytes: int | None
    checks: tuple[VerificationCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    @property
    def failures(self) -> list[VerificationCheck]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        if self.passed:
            return f"{len(self.checks)} checks passed"
        return "; ".join(c.line() for c in self.failures)


def verify(
    manifest: dict[str, Any],
    observed: ReadBack,
    database: Database,
    *,
    previous_size: int | None,
    max_age: timedelta,
    now: datetime,
) -> Verification:
    """Judge a stored backup against its manifest and the database's promises."""
    dump = manifest["dump"]
    created = datetime.fromisoformat(manifest["created_at"])
    rows = manifest_rows(manifest)
    found = "found" if observed.exists else "missing"
    checks = [
        VerificationCheck("exists", observed.exists, dump["location"], observed.error or found),
        VerificationCheck(
            "manifest",
            bool(observed.manifest_size),
            "stored next to the dump",
            _seen(observed.manifest_size),
        ),
        *_config_archive(manifest.get("config_archive"), observed.config_archive_size),
        *_globals(manifest.get("globals"), observed.globals_size),
        _equal("size", dump["size_bytes"], observed.size_bytes),
        _equal("checksum", dump["sha256"], observed.sha256),
        _min_size(observed.size_bytes, database.min_backup_size),
        _no_shrink(observed.size_bytes, previous_size),
        *_decoded(dump, observed),
        *_contents(observed, database, manifest),
        *_min_rows(database, rows, manifest),
        _fresh(now - created, max_age),
    ]
    return Verification(manifest["backup_id"], now, created, observed.size_bytes, tuple(checks))


def _decoded(dump: dict[str, Any], observed: ReadBack) -> list[VerificationCheck]:
    """An encoded archive (zstd, age) decodes to the size pg_dump wrote; shown only when it
    was decoded here (a sealed backup on a host without its identity is not)."""
    if not dump.get("encoding") or "archive_bytes" not in dump or observed.decoded_bytes is None:
        return []
    return [_equal("archive_decodes", dump["archive_bytes"], observed.decoded_bytes)]


def _seen(size: int | None) -> str:
    return "missing" if size is None else f"{size} bytes"


def _config_archive(archive: dict[str, Any] | None, size: int | None) -> list[VerificationCheck]:
    """The config files went along, all of them, and their archive is stored whole."""
    if archive is None:
        return []
    unreadable = archive.get("unreadable") or []
    return [
        _equal("config_archive", archive["size_bytes"], size),
        VerificationCheck(
            "config_files",
            not unreadable,
            f"all {len(archive['files'])} config files archived",
            "; ".join(unreadable) or "all archived",
        ),
    ]


def _globals(entry: dict[str, Any] | None, size: int | None) -> list[VerificationCheck]:
    """The server's roles and tablespaces were saved, and are stored whole (nothing to
    check for a manifest written before they were)."""
    if entry is None:
        return []
    if entry.get("file") is None:
        reason = entry.get("error") or "not saved"
        return [VerificationCheck("globals", False, "roles and tablespaces saved", reason)]
    return [_equal("globals", entry["file"]["size_bytes"], size)]


def _equal(name: str, expected: Any, observed: Any) -> VerificationCheck:
    return VerificationCheck(
        name,
        expected == observed,
        str(expected),
        "unreadable" if observed is None else str(observed),
    )


def _min_size(size: int | None, floor: int) -> VerificationCheck:
    observed = format_size(size) if size is not None else "unreadable"
    return VerificationCheck(
        "min_backup_size", size is not None and size >= floor, f">= {format_size(floor)}", observed
    )


def _no_shrink(size: int | None, previous: int | None) -> VerificationCheck:
    """A backup under half the previous one usually means lost data, not good compression."""
    if previous is None:
        return VerificationCheck(
            "no_sudden_shrink", True, "no previous backup to compare", "first backup"
        )
    observed = format_size(size) if size is not None else "unreadable"
    floor = previous / 2
    return VerificationCheck(
        "no_sudden_shrink",
        size is not None and size >= floor,
        f">= {format_size(int(floor))} (half the previous {format_size(previous)})",
        observed,
    )


def _contents(
    observed: ReadBack, database: Database, manifest: dict[str, Any]
) -> list[VerificationCheck]:
    """Every table of the snapshot, and each critical table with its data, in the archive,
    matched by catalog OID (`vigil.backup.listing`); a partitioned table's data is its
    leaves'."""
    if observed.toc is None:
        reason = observed.toc_error or "the archive could not be read"
        return [VerificationCheck("archive_readable", False, "pg_restore --list succeeds", reason)]
    listed = archive_tables(observed.toc)
    oids = {str(t["name"]): t.get("oid") for t in manifest["tables"]}
    checks = [VerificationCheck("archive_readable", True, "pg_restore --list succeeds", "ok")]
    missing = sorted(n for n, oid in oids.items() if not listed.has_table(oid, *split_name(n)))
    checks.append(
        VerificationCheck(
            "tables_in_archive",
            not missing,
            f"all {len(oids)} tables of the snapshot",
            f"missing {', '.join(missing)}" if missing else f"{len(oids)} tables",
        )
    )
    for wanted in database.critical_tables:
        name = resolve_table(wanted, set(oids) | set(manifest.get("partitions") or {}))
        present = name is not None and listed.has_data(oids.get(name), *split_name(name))
        leaves = leaf_tables(partition_tree(manifest), name) if name and not present else []
        if leaves:
            present = all(listed.has_data(oids.get(leaf), *split_name(leaf)) for leaf in leaves)
        checks.append(
            VerificationCheck(
                f"critical_table {wanted}",
                present,
                "table and its data in the archive",
                f"{name} present" if present else "absent",
            )
        )
    return checks


def _min_rows(
    database: Database, rows: dict[str, TableFacts], manifest: dict[str, Any]
) -> list[VerificationCheck]:
    checks = []
    for wanted, floor in sorted(database.min_rows.items()):
        name = resolve_table(wanted, set(rows))
        facts = rows_through_leaves(manifest, name) if name else None
        if facts is None:
            observed = "table not found"
        else:
            observed = f"{facts.rows}" if facts.exact else f"~{facts.rows} (planner estimate)"
        passed = facts is not None and facts.rows >= floor
        checks.append(VerificationCheck(f"min_rows {wanted}", passed, f">= {floor} rows", observed))
    return checks


def _fresh(age: timedelta, max_age: timedelta) -> VerificationCheck:
    return VerificationCheck(
        "max_age",
        age <= max_age,
        f"<= {format_duration(max_age)}",
        format_duration(max(age, timedelta())),
    )


def resolve_table(wanted: str, names: Iterable[str]) -> str | None:
    """The table `wanted` names: `schema.table` as is (a part holding a dot in double
    quotes, as `qualified` writes it); a bare name is `public.<name>`, else the one schema
    having it."""
    names = set(names)
    if wanted in names:
        return wanted
    schema, table = split_name(wanted)
    parts = {name: split_name(name) for name in names}
    if schema:
        matches = [n for n, p in parts.items() if p == (schema, table)]
    else:
        public = [n for n, p in parts.items() if p == ("public", table)]
        matches = public or [n for n, p in parts.items() if p[1] == table]
    return matches[0] if len(matches) == 1 else None
