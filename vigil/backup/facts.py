"""The database as of one snapshot: what the manifest records at backup time so that the
archive and every restore of it can be compared with the source, exactly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def qualified(schema: str, name: str) -> str:
    """One name for a relation, "schema.table", that reads back unambiguously: a part
    holding a dot or a double quote is double-quoted (quotes doubled, as SQL does), any
    other name PostgreSQL allows (spaces, newlines, capitals, keywords) stays as it is, so
    ordinary names read as they always have: "public.users"."""
    return f"{_part(schema)}.{_part(name)}"


def _part(part: str) -> str:
    if "." in part or '"' in part:
        return '"' + part.replace('"', '""') + '"'
    return part


def split_name(name: str) -> tuple[str, str]:
    """(schema, table) of a name made by `qualified` (or typed in the config the same
    way); a name without a schema is ("", name)."""
    first, rest = _take(name)
    if rest is None:
        return "", first
    second, _ = _take(rest, last=True)
    return first, second


def _take(text: str, *, last: bool = False) -> tuple[str, str | None]:
    """The first part of a dotted name and what follows its dot (None: nothing does)."""
    if text.startswith('"'):
        end = 1
        while (end := text.find('"', end)) >= 0 and text[end + 1 : end + 2] == '"':
            end += 2
        if end > 0 and (end + 1 == len(text) or text[end + 1] == "."):
            after = text[end + 2 :] if end + 1 < len(text) else None
            return text[1:end].replace('""', '"'), after
    if last:
        return text, None
    head, dot, tail = text.partition(".")
    return head, tail if dot else None


@dataclass(frozen=True)
class TableFacts:
    name: str  # schema-qualified by `qualified`: "public.users", "app.\"a.b\""
    rows: int
    exact: bool
    # pg_class OID in the snapshot: how the archive's listing is matched (names may hold
    # anything, and pg_restore --list prints them unquoted); None in older manifests.
    oid: int | None = None


@dataclass(frozen=True)
class Fingerprint:
    """A table's rows hashed in key order: equal counts with changed contents differ."""

    rows: int
    sha256: str


@dataclass(frozen=True)
class Contents:
    """What only reading data shows: large objects (count and a checksum of their data),
    materialized views (rows, None when not populated), the named tables' fingerprints."""

    large_objects: int
    large_objects_sha256: str
    matviews: Mapping[str, int | None]
    fingerprints: Mapping[str, Fingerprint] = field(default_factory=dict)


@dataclass(frozen=True)
class SnapshotFacts:
    """The database as of the exported snapshot, which is also the dump's."""

    snapshot_id: str
    taken_at: datetime
    server_version: str
    server_version_num: int
    database_size: int
    tables: tuple[TableFacts, ...]
    indexes: tuple[str, ...]
    constraints: tuple[str, ...]
    fingerprint: str
    # Every user object by kind, then identity, with its definition (tasks.completeness).
    objects: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Each sequence's last_value, is_called and increment.
    sequences: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    contents: Contents | None = None
    # Each partitioned table's direct partitions ("schema.table" names, as `tables`).
    partitions: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)
