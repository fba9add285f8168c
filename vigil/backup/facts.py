"""The database as of one snapshot: what the manifest records at backup time so that the
archive and every restore of it can be compared with the source, exactly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TableFacts:
    name: str  # schema-qualified, as pg_restore --list shows it: "public.users"
    rows: int
    exact: bool


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

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)
