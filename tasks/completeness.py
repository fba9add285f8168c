"""What a restore must bring back besides rows, read from a database: the same readers
describe the source in the backup's snapshot and the restored copy, so that
`vigil.completeness` can compare them object by object.

- `read_objects`: every user object the catalogs hold, named as PostgreSQL names it
  (`pg_identify_object`: "policy tenant_isolation on app.accounts", "trigger t on s.x",
  "function app.add(integer,integer)"), each with a short definition where one matters
  (a view's query, a function's body digest, a trigger's definition and enabled state, a
  policy's roles and expressions, a partition's parent and bounds, row security flags, a
  sequence's parameters and owner, a column's type and default, grants, comments);
- `read_sequences`: each sequence's last_value and is_called (not transactional: read as
  pg_dump reads them, at the time of the read);
- `read_contents`: large objects (count, checksum of their data in OID order),
  materialized views (populated, rows), and the fingerprint of the tables a user names
  (their rows hashed in key order).

Objects that CREATE EXTENSION makes, and PostgreSQL's own (OID below 16384, system
schemas), are left out: a restore makes them, not the dump.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from tasks.pg import CONNECT_TIMEOUT_S, USER_SCHEMAS
from vigil.backup.facts import Contents, Fingerprint
from vigil.backup.identity import BackupError
from vigil.redact import error_line

FIRST_USER_OID = 16384
# Text longer than this is recorded as its digest: enough to see it changed.
SHORT = 160


def _member(catalog: str, oid: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass "
        f"AND e.objid = {oid} AND e.deptype = 'e')"
    )


# session_replication_role decides which triggers and rules fire: O origin, D disabled.
_ENABLED = (
    "CASE {} WHEN 'O' THEN '(enabled)' WHEN 'D' THEN '(disabled)' "
    "WHEN 'R' THEN '(enabled on replicas)' ELSE '(enabled always)' END"
)

# (catalog, alias, definition, extra condition): one row per object of the catalog.
_CATALOGS: tuple[tuple[str, str, str, str], ...] = (
    ("pg_namespace", "x", "''", "TRUE"),
    (
        "pg_class",
        "x",
        "CASE x.relkind WHEN 'v' THEN pg_get_viewdef(x.oid) WHEN 'm' THEN pg_get_viewdef(x.oid) "
        "WHEN 'p' THEN 'partitioned by ' || pg_get_partkeydef(x.oid) "
        "WHEN 'f' THEN (SELECT s.srvname || ' ' || coalesce((SELECT string_agg(o, ',' ORDER BY o) "
        "FROM unnest(f.ftoptions) o), '')"
        " FROM pg_foreign_table f JOIN pg_foreign_server s ON s.oid = f.ftserver "
        "WHERE f.ftrelid = x.oid) "
        "WHEN 'S' THEN (SELECT format('%s start %s increment %s min %s max %s cache %s%s', "
        "format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin, q.seqmax, "
        "q.seqcache, CASE WHEN q.seqcycle THEN ' cycle' ELSE '' END) "
        "FROM pg_sequence q WHERE q.seqrelid = x.oid) "
        "|| coalesce((SELECT ' owned by ' || d.refobjid::regclass::text || '.' "
        "|| quote_ident(a.attname) FROM pg_depend d JOIN pg_attribute a "
        "ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
        "WHERE d.classid = 'pg_class'::regclass AND d.objid = x.oid "
        "AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')), '') "
        "ELSE CASE x.relpersistence WHEN 'u' THEN 'unlogged' ELSE '' END END",
        "x.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')",
    ),
    (
        "pg_proc",
        "x",
        "CASE WHEN x.prokind = 'a' THEN '' ELSE pg_get_functiondef(x.oid) END",
        "TRUE",
    ),
    (
        "pg_type",
        "x",
        "CASE x.typtype WHEN 'e' THEN (SELECT string_agg(quote_literal(l.enumlabel), ', ' "
        "ORDER BY l.enumsortorder) FROM pg_enum l WHERE l.enumtypid = x.oid) "
        "WHEN 'd' THEN 'over ' || format_type(x.typbasetype, x.typtypmod) "
        "|| CASE WHEN x.typnotnull THEN ' not null' ELSE '' END "
        "|| coalesce(' default ' || x.typdefault, '') ELSE '' END",
        "x.typrelid = 0 AND x.typcategory <> 'A'",
    ),
    (
        "pg_trigger",
        "x",
        "pg_get_triggerdef(x.oid) || ' ' || " + _ENABLED.format("x.tgenabled"),
        "NOT x.tgisinternal",
    ),
    (
        "pg_rewrite",
        "x",
        "pg_get_ruledef(x.oid) || ' ' || " + _ENABLED.format("x.ev_enabled"),
        "x.rulename <> '_RETURN'",
    ),
    (
        "pg_policy",
        "x",
        "format('%s for %s to %s using %s with check %s', "
        "CASE WHEN x.polpermissive THEN 'permissive' ELSE 'restrictive' END, x.polcmd, "
        "(SELECT coalesce(string_agg(CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END, "
        "',' ORDER BY 1), '') FROM unnest(x.polroles) r), "
        "pg_get_expr(x.polqual, x.polrelid), pg_get_expr(x.polwithcheck, x.polrelid))",
        "TRUE",
    ),
    (
        "pg_event_trigger",
        "x",
        "x.evtevent || ' ' || x.evtfoid::regprocedure::text || ' ' || "
        + _ENABLED.format("x.evtenabled")
        + " || ' ' "
        "|| coalesce(array_to_string(x.evttags, ','), '')",
        "TRUE",
    ),
    (
        "pg_publication",
        "x",
        "format('all tables %s, insert %s, update %s, delete %s, truncate %s, via root %s', "
        "x.puballtables, x.pubinsert, x.pubupdate, x.pubdelete, x.pubtruncate, x.pubviaroot)",
        "TRUE",
    ),
    ("pg_publication_rel", "x", "''", "TRUE"),
    ("pg_extension", "x", "''", "TRUE"),
    ("pg_foreign_data_wrapper", "x", "''", "TRUE"),
    (
        "pg_foreign_server",
        "x",
        "(SELECT w.fdwname FROM pg_foreign_data_wrapper w WHERE w.oid = x.srvfdw) || ' ' "
        "|| coalesce((SELECT string_agg(o, ',' ORDER BY o) FROM unnest(x.srvoptions) o), '')",
        "TRUE",
    ),
    ("pg_user_mapping", "x", "''", "TRUE"),  # its options may hold a password
    ("pg_cast", "x", "''", "TRUE"),
    ("pg_collation", "x", "''", "TRUE"),
    ("pg_conversion", "x", "''", "TRUE"),
    ("pg_operator", "x", "''", "TRUE"),
    ("pg_opclass", "x", "''", "TRUE"),
    ("pg_opfamily", "x", "''", "TRUE"),
    ("pg_ts_config", "x", "''", "TRUE"),
    ("pg_ts_dict", "x", "''", "TRUE"),
    ("pg_statistic_ext", "x", "pg_get_statisticsobjdef(x.oid)", "TRUE"),
    ("pg_language", "x", "''", "TRUE"),
    ("pg_transform", "x", "''", "TRUE"),
    ("pg_am", "x", "''", "TRUE"),
    (
        "pg_attrdef",
        "x",
        "pg_get_expr(x.adbin, x.adrelid)",
        "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass "
        "AND e.objid = x.adrelid AND e.deptype = 'e')",
    ),
    ("pg_default_acl", "x", "array_to_string(x.defaclacl, ',')", "TRUE"),
)


# Catalogs only a superuser may read, and the public view that lists the same objects.
_READABLE = {"pg_user_mapping": ("pg_user_mappings", "umid")}


def _catalog_query(catalog: str, alias: str, definition: str, condition: str) -> str:
    source, oid = _READABLE.get(catalog, (catalog, "oid"))
    return (
        f"SELECT '{catalog}'::regclass AS classid, {alias}.{oid} AS objid, 0 AS subid, "
        f"{definition} AS definition FROM {source} {alias} WHERE {alias}.{oid} >= "
        f"{FIRST_USER_OID} AND {condition} AND NOT {_member(catalog, f'{alias}.{oid}')}"
    )


_COLUMNS = (
    "SELECT 'pg_class'::regclass, a.attrelid, a.attnum::int, "
    "format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' "
    "END || CASE a.attidentity WHEN 'a' THEN ' identity always' WHEN 'd' THEN ' identity' "
    "ELSE '' END || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END "
    "|| CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN ' collate ' "
    "|| a.attcollation::regcollation::text ELSE '' END "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_type t ON t.oid = a.atttypid "
    "WHERE a.attnum > 0 AND NOT a.attisdropped AND c.oid >= 16384 "
    "AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND NOT " + _member("pg_class", "c.oid")
)

_OBJECTS = (
    "SELECT o.type, o.identity, d.definition FROM ("
    + " UNION ALL ".join([*(_catalog_query(*each) for each in _CATALOGS), _COLUMNS])
    + ") d, pg_identify_object(d.classid, d.objid, d.subid) o "
    "WHERE o.schema IS NULL OR (o.schema NOT IN ('pg_catalog', 'information_schema') "
    "AND o.schema !~ '^pg_')"
)

# Facts named apart, with wording of their own: a partition's attachment and bounds, the
# row security flags of a table, grants (ACLs), comments.
_IDENTITY = "(pg_identify_object('pg_class'::regclass, {}, 0)).identity"
_PARTITIONS = (
    "SELECT CASE WHEN c.relkind IN ('i', 'I') THEN 'index partition' ELSE 'partition' END, "
    f"{_IDENTITY.format('c.oid')}, 'of ' || {_IDENTITY.format('i.inhparent')} "
    "|| coalesce(' ' || pg_get_expr(c.relpartbound, c.oid), '') FROM pg_class c "
    "JOIN pg_inherits i ON i.inhrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace "
    f"WHERE c.relispartition AND {USER_SCHEMAS}"
)
_ROW_SECURITY = (
    f"SELECT 'row security on', {_IDENTITY.format('c.oid')}, CASE WHEN c.relrowsecurity "
    "THEN 'enabled' ELSE 'disabled' END || CASE WHEN c.relforcerowsecurity THEN ', forced' "
    "ELSE '' END FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    f"WHERE (c.relrowsecurity OR c.relforcerowsecurity) AND {USER_SCHEMAS}"
)
_GRANTS = (
    "SELECT 'grants on ' || o.type, o.identity, array_to_string(g.acl, ',') FROM ("
    "SELECT 'pg_class'::regclass AS classid, oid AS objid, 0 AS subid, relacl AS acl "
    "FROM pg_class WHERE relacl IS NOT NULL AND oid >= 16384 "
    "UNION ALL SELECT 'pg_class'::regclass, attrelid, attnum::int, attacl FROM pg_attribute "
    "WHERE attacl IS NOT NULL AND attrelid >= 16384 "
    "UNION ALL SELECT 'pg_proc'::regclass, oid, 0, proacl FROM pg_proc "
    "WHERE proacl IS NOT NULL AND oid >= 16384 "
    "UNION ALL SELECT 'pg_namespace'::regclass, oid, 0, nspacl FROM pg_namespace "
    "WHERE nspacl IS NOT NULL AND oid >= 16384 "
    "UNION ALL SELECT 'pg_type'::regclass, oid, 0, typacl FROM pg_type "
    "WHERE typacl IS NOT NULL AND oid >= 16384 "
    "UNION ALL SELECT 'pg_foreign_server'::regclass, oid, 0, srvacl FROM pg_foreign_server "
    "WHERE srvacl IS NOT NULL AND oid >= 16384 "
    "UNION ALL SELECT 'pg_largeobject'::regclass, oid, 0, lomacl "
    "FROM pg_largeobject_metadata WHERE lomacl IS NOT NULL"
    ") g, pg_identify_object(g.classid, g.objid, g.subid) o "
    "WHERE NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = g.classid "
    "AND e.objid = g.objid AND e.deptype = 'e') "
    "AND (o.schema IS NULL OR (o.schema NOT IN ('pg_catalog', 'information_schema') "
    "AND o.schema !~ '^pg_'))"
)
_COMMENTS = (
    "SELECT 'comment on ' || o.type, o.identity, d.description FROM pg_description d, "
    "pg_identify_object(d.classoid, d.objoid, d.objsubid) o "
    "WHERE d.objoid >= 16384 AND d.classoid <> 'pg_database'::regclass "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classoid "
    "AND e.objid = d.objoid AND e.deptype = 'e') "
    "AND (o.schema IS NULL OR (o.schema NOT IN ('pg_catalog', 'information_schema') "
    "AND o.schema !~ '^pg_'))"
)


def read_objects(connection: psycopg.Connection[Any]) -> dict[str, dict[str, str]]:
    """Every user object by kind, then identity -> its definition (long ones digested)."""
    found: dict[str, dict[str, str]] = {}
    for query in (_OBJECTS, _PARTITIONS, _ROW_SECURITY, _GRANTS, _COMMENTS):
        for kind, identity, definition in connection.execute(query):
            found.setdefault(str(kind), {})[str(identity)] = _short(definition)
    return {kind: dict(sorted(found[kind].items())) for kind in sorted(found)}


def read_partitions(connection: psycopg.Connection[Any]) -> dict[str, list[str]]:
    """Each partitioned table's direct partitions, named as the manifest names tables
    ("schema.table"), so a parent can be judged through its leaves."""
    found: dict[str, list[str]] = {}
    for parent, child in connection.execute(
        "SELECT pn.nspname || '.' || p.relname, n.nspname || '.' || c.relname "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class p ON p.oid = i.inhparent "
        "JOIN pg_namespace pn ON pn.oid = p.relnamespace "
        f"WHERE p.relkind = 'p' AND c.relkind IN ('r', 'p', 'f') AND {USER_SCHEMAS} ORDER BY 1, 2"
    ):
        found.setdefault(str(parent), []).append(str(child))
    return found


def _short(text: str | None) -> str:
    text = text or ""
    if len(text) <= SHORT and "\n" not in text:
        return text
    return "md5:" + hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


_SEQUENCES = (
    "SELECT n.nspname, c.relname, q.seqincrement FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence q ON q.seqrelid = c.oid "
    f"WHERE c.relkind = 'S' AND {USER_SCHEMAS} AND NOT {_member('pg_class', 'c.oid')} "
    # One the user may not read is left for pg_dump to refuse, naming it as it does.
    "AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'SELECT') END "
    "ORDER BY 1, 2"
)


def read_sequences(
    connection: psycopg.Connection[Any], batch: int = 500
) -> dict[str, dict[str, Any]]:
    """Each sequence's last_value, is_called and increment, named "schema.sequence", in
    batches of one UNION ALL query (one query each would take seconds at thousands)."""
    names = [(str(s), str(t), int(i)) for s, t, i in connection.execute(_SEQUENCES)]
    values: dict[str, dict[str, Any]] = {}
    for start in range(0, len(names), batch):
        parts = [
            sql.SQL("SELECT {}::text, last_value, is_called, {}::bigint FROM {}.{}").format(
                sql.Literal(f"{s}.{t}"), sql.Literal(i), sql.Identifier(s), sql.Identifier(t)
            )
            for s, t, i in names[start : start + batch]
        ]
        for name, last, called, step in connection.execute(sql.SQL(" UNION ALL ").join(parts)):
            values[str(name)] = {
                "last_value": int(last),
                "is_called": bool(called),
                "increment": int(step),
            }
    return values


def read_contents(
    connection: psycopg.Connection[Any], fingerprint_tables: Iterable[str] = ()
) -> Contents:
    """Large objects, materialized views and the named tables' fingerprints."""
    count, digest = large_objects(connection)
    return Contents(
        large_objects=count,
        large_objects_sha256=digest,
        matviews=matviews(connection),
        fingerprints={
            name: found
            for name in fingerprint_tables
            if (found := fingerprint(connection, name)) is not None
        },
    )


def large_objects(connection: psycopg.Connection[Any]) -> tuple[int, str]:
    """How many, and a SHA-256 over each one's OID and data digest in OID order (pg_dump
    keeps OIDs, so a restore must bring back the same pairs)."""
    digest, count = hashlib.sha256(), 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT oid::bigint, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid"
        )
        for oid, md5 in cursor:
            digest.update(f"{oid} {md5}\n".encode())
            count += 1
    return count, "sha256:" + digest.hexdigest()


def matviews(connection: psycopg.Connection[Any]) -> dict[str, int | None]:
    """Each materialized view's rows, or None when it is not populated (WITH NO DATA)."""
    found: dict[str, int | None] = {}
    for schema, name, populated in connection.execute(
        "SELECT n.nspname, c.relname, c.relispopulated FROM pg_class c "
        f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'm' AND {USER_SCHEMAS} "
        f"AND NOT {_member('pg_class', 'c.oid')} ORDER BY 1, 2"
    ).fetchall():
        rows = None
        if populated:
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(name)
            )
            row = connection.execute(query).fetchone()
            rows = int(row[0]) if row else 0
        found[f"{schema}.{name}"] = rows
    return found


# The text of a row depends on these settings: fixed, so both sides print rows alike.
_STABLE_TEXT = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 3",
    "SET bytea_output = 'hex'",
)


def fingerprint(connection: psycopg.Connection[Any], name: str) -> Fingerprint | None:
    """A table's rows (partitions included) hashed one by one in primary-key order (in the
    order of the rows' own digests without a key), streamed with COPY: memory stays flat
    whatever the table's size. None when no table has that name."""
    found = find_table(connection, name)
    if found is None:
        return None
    schema, table = found
    for setting in _STABLE_TEXT:
        connection.execute(setting)
    key = _primary_key(connection, schema, table)
    relation = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    order = (
        sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in key)
        if key
        else sql.SQL("1")
    )
    query = sql.SQL("COPY (SELECT md5(t::text) FROM {} t ORDER BY {}) TO STDOUT").format(
        relation, order
    )
    digest, rows = hashlib.sha256(), 0
    with connection.cursor() as cursor, cursor.copy(query) as copy:
        for chunk in copy:
            digest.update(chunk)
            rows += bytes(chunk).count(b"\n")
    return Fingerprint(rows=rows, sha256="sha256:" + digest.hexdigest())


def find_table(connection: psycopg.Connection[Any], name: str) -> tuple[str, str] | None:
    """(schema, table) of "schema.table", or of a bare name in public or in its one schema
    (dots and spaces in either part allowed: the catalog is asked, no text is split)."""
    rows = connection.execute(
        "SELECT n.nspname, c.relname, n.nspname || '.' || c.relname = %(name)s AS exact "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMAS} "
        "AND (n.nspname || '.' || c.relname = %(name)s OR c.relname = %(name)s) "
        "ORDER BY exact DESC, n.nspname <> 'public'",
        {"name": name},
    ).fetchall()
    if not rows:
        return None
    if rows[0][2] or rows[0][0] == "public" or len(rows) == 1:
        return str(rows[0][0]), str(rows[0][1])
    return None


def _primary_key(connection: psycopg.Connection[Any], schema: str, table: str) -> Sequence[str]:
    row = connection.execute(
        "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass "
        "AND i.indisprimary",
        (schema, table),
    ).fetchone()
    return [str(c) for c in row[0]] if row and row[0] else []


class ContentsReader:
    """`read_contents` in a snapshot another transaction exported, on a connection of its
    own and in a thread of its own: it runs while pg_dump does, in the dump's snapshot,
    and takes locks only on the large objects' catalog, the materialized views and the
    tables named for a fingerprint."""

    def __init__(self, url: str, snapshot_id: str, tables: Sequence[str], name: str) -> None:
        self.url, self.snapshot_id, self.tables, self.name = url, snapshot_id, tables, name
        self._thread: threading.Thread | None = None
        self._connection: psycopg.Connection[Any] | None = None
        self._result: Contents | None = None
        self._problem: BackupError | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._read, name="vigil-contents", daemon=True)
        self._thread.start()

    def result(self) -> Contents | None:
        """The contents once read (None if never started); BackupError if reading failed."""
        if self._thread is None:
            return None
        self._thread.join()
        if self._problem is not None:
            raise self._problem
        return self._result

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._connection:
            with contextlib.suppress(psycopg.Error):
                self._connection.cancel_safe()
            self._thread.join()

    def _read(self) -> None:
        try:
            with psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S) as connection:
                self._connection = connection
                connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                connection.read_only = True
                connection.execute(
                    sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.snapshot_id))
                )
                self._result = read_contents(connection, self.tables)
        except psycopg.Error as exc:
            self._problem = BackupError(
                f"{self.name}: reading large objects, materialized views and fingerprints "
                f"failed: {error_line(exc)}"
            )
