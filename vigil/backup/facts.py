"""The database as of one snapshot: what the manifest records at backup time so that the
archive and every restore of it can be compared with the source, exactly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class TableFacts:
    name: str  # schema-qualified, as pg_restore --list shows it: "public.users"
    rows: int
    exact: bool


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
