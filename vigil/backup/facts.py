"""The database as of one snapshot: what the manifest records at backup time so that the
archive and every restore of it can be compared with the source, exactly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
