"""pg_restore's table of contents (`pg_restore --list`), read by its fields, never by
splitting names on spaces: each entry line is `<dump id>; <catalog table oid> <object oid>
<kind> <schema> <name> <owner>`, and a schema, name or owner may hold spaces (newlines
come out as spaces), so only the three numbers lead reliably. Entries are matched to the
snapshot's tables by catalog OID: a TABLE entry carries the table's own (pg_class) OID,
and its TABLE DATA entry the same OID with catalog table 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# The kinds pg_dump writes that hold a space, longest first so "TABLE DATA" is not read
# as a "TABLE" entry of a schema called "DATA".
_KINDS_WITH_SPACES = (
    "TABLE DATA",
    "SEQUENCE SET",
    "SEQUENCE OWNED BY",
    "MATERIALIZED VIEW DATA",
    "MATERIALIZED VIEW",
    "FOREIGN TABLE",
    "FOREIGN DATA WRAPPER",
    "FOREIGN SERVER",
    "USER MAPPING",
    "DEFAULT ACL",
    "LARGE OBJECT",
    "BLOB METADATA",
    "BLOBS",
    "EVENT TRIGGER",
    "FK CONSTRAINT",
    "CHECK CONSTRAINT",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH PARSER",
    "TEXT SEARCH TEMPLATE",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "PUBLICATION TABLE",
    "PUBLICATION TABLES IN SCHEMA",
    "ROW SECURITY",
    "TABLE ATTACH",
    "INDEX ATTACH",
    "SHELL TYPE",
    "DATABASE PROPERTIES",
    "ACCESS METHOD",
)
_ENTRY = re.compile(r"^(\d+); (\d+) (\d+) (.*)$")
PG_CLASS = 1259


@dataclass(frozen=True)
class TocEntry:
    dump_id: int
    catalog: int  # the catalog table the object lives in (pg_class = 1259), 0 for data
    oid: int
    kind: str
    rest: str  # "<schema> <name> <owner>" as pg_restore prints them (not split: see above)


def toc_entries(toc: str) -> Iterator[TocEntry]:
    """Every entry line of a listing (comments and blank lines skipped)."""
    for line in toc.splitlines():
        found = _ENTRY.match(line)
        if found is None:
            continue
        tail = found[4]
        kind = next(
            (k for k in _KINDS_WITH_SPACES if tail == k or tail.startswith(k + " ")),
            tail.split(" ", 1)[0],
        )
        rest = tail[len(kind) + 1 :]
        yield TocEntry(int(found[1]), int(found[2]), int(found[3]), kind, rest)


@dataclass(frozen=True)
class ArchiveTables:
    """The OIDs of the tables an archive creates and of those whose rows it holds, and
    the entries' printed rests, for manifests recorded before tables carried OIDs."""

    tables: frozenset[int]
    data: frozenset[int]
    table_rests: tuple[str, ...] = ()
    data_rests: tuple[str, ...] = ()

    def has_table(self, oid: int | None, schema: str, name: str) -> bool:
        if oid is not None:
            return oid in self.tables
        return _printed(schema, name, self.table_rests)

    def has_data(self, oid: int | None, schema: str, name: str) -> bool:
        if oid is not None:
            return oid in self.data
        return _printed(schema, name, self.data_rests)


def archive_tables(toc: str) -> ArchiveTables:
    tables, data, table_rests, data_rests = set(), set(), [], []
    for entry in toc_entries(toc):
        if entry.kind == "TABLE" and entry.catalog == PG_CLASS:
            tables.add(entry.oid)
            table_rests.append(entry.rest)
        elif entry.kind == "TABLE DATA":
            data.add(entry.oid)
            data_rests.append(entry.rest)
    return ArchiveTables(frozenset(tables), frozenset(data), tuple(table_rests), tuple(data_rests))


def _printed(schema: str, name: str, rests: tuple[str, ...]) -> bool:
    """Whether pg_restore printed "<schema> <name> <owner>" for this table (newlines in
    names become spaces there): the best an OID-less manifest allows."""
    prefix = f"{_flat(schema)} {_flat(name)} "
    return any(rest.startswith(prefix) for rest in rests)


def _flat(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")
