"""Reading a restored copy for its judgement (`vigil.recovery.judge`): every table scanned
for its exact rows and newest timestamp, the schema's facts as the snapshot reads them,
invalid indexes, `bt_index_check` of every B-tree index, the configured SQL checks.

Table scans and index checks are independent, so they are shared out over as many
connections as pg_restore had jobs, largest first: the checks of a big database take about
its largest table's scan, not the sum of all of them. Every statement stops at the hard
time limit, and on an error or a stop the statements still running are cancelled, so the
copy can be dropped at once.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from tasks.completeness import read_contents
from tasks.globals import roles_on
from tasks.pg import CONNECT_TIMEOUT_S, USER_SCHEMAS, connect
from tasks.snapshot import read_facts
from vigil.backup.facts import qualified, split_name
from vigil.backup.globals import missing_roles, roles_finding
from vigil.config import SqlCheck
from vigil.recovery import (
    CLOCK_SKEW,
    Comparison,
    Finding,
    IndexCheck,
    RestoredFacts,
    TableScan,
    judge,
    sql_check,
)
from vigil.redact import error_line

T = TypeVar("T")
# The earliest instant a Python datetime holds (year 1, UTC).
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)


def inspect(
    url: str,
    manifest: dict[str, Any],
    *,
    timeout: float,
    jobs: int,
    amcheck: bool,
    checks: Sequence[SqlCheck] = (),
    database: str = "",
    privileges: bool = False,
) -> Comparison:
    """The manifest's promises, then the configured SQL checks, on the restored copy
    (`privileges`: whether the restore brought grants back, so they can be compared)."""
    with connect_all(url, timeout, jobs) as (connection, *helpers):
        restored = read_restored(manifest, connection, amcheck=amcheck, helpers=helpers)
        restored = replace(restored, privileges=privileges)
        configured = run_sql_checks(checks, database, connection)
        present = roles_on(connection)
    compared = judge(manifest, restored)
    roles = roles_finding(manifest, missing_roles(manifest, present))
    findings = [*compared.findings, roles, *configured]
    return Comparison(findings, compared.recovery_point, compared.amcheck_s)


def read_restored(
    manifest: dict[str, Any],
    connection: psycopg.Connection[Any],
    *,
    amcheck: bool,
    helpers: Sequence[psycopg.Connection[Any]] = (),
) -> RestoredFacts:
    """Everything the judgement compares, read from the restored copy."""
    schema = read_facts(connection, "", datetime.now(UTC))
    taken = datetime.fromisoformat(manifest["snapshot"]["taken_at"])
    skipped, created = install_amcheck(connection) if amcheck else (None, False)
    indexes = btree_indexes(connection) if amcheck and skipped is None else []
    tables = [t.name for t in schema.tables]
    scans, checks = scan_and_check(connection, helpers, tables, indexes, taken + CLOCK_SKEW)
    if created:
        connection.execute("DROP EXTENSION amcheck")
    return RestoredFacts(
        schema=schema,
        scans=scans,
        invalid_indexes=invalid_indexes(connection),
        amcheck=checks if amcheck else None,
        amcheck_skipped=skipped,
        contents=read_contents(connection, list(fingerprinted(manifest))),
    )


def fingerprinted(manifest: dict[str, Any]) -> dict[str, Any]:
    """The tables the backup fingerprinted (none in a manifest without contents)."""
    return dict((manifest.get("contents") or {}).get("fingerprints") or {})


@contextmanager
def connect_all(url: str, timeout: float, count: int) -> Iterator[list[psycopg.Connection[Any]]]:
    """`count` connections (at least one) to the restored copy, to share its checks."""
    with ExitStack() as stack:
        yield [stack.enter_context(connect(url, timeout=timeout)) for _ in range(max(1, count))]


def scan_and_check(
    connection: psycopg.Connection[Any],
    helpers: Sequence[psycopg.Connection[Any]],
    tables: Sequence[str],
    indexes: Sequence[tuple[str, int]],
    cutoff: datetime,
) -> tuple[list[TableScan], list[IndexCheck]]:
    """Scan every table and check every (name, oid) index, largest first, each on whichever
    connection is free."""
    stamps = _timestamp_columns(connection)
    sizes = _relation_sizes(connection)
    units: list[tuple[int, Callable[[psycopg.Connection[Any]], TableScan | IndexCheck]]] = [
        (sizes.get(t, 0), partial(scan_table, name=t, columns=stamps.get(t, []), cutoff=cutoff))
        for t in tables
    ]
    units += [(sizes.get(n, 0), partial(check_index, name=n, oid=oid)) for n, oid in indexes]
    units.sort(key=lambda unit: -unit[0])
    done = spread([connection, *helpers], [work for _, work in units])
    scans = [d for d in done if isinstance(d, TableScan)]
    return scans, [d for d in done if isinstance(d, IndexCheck)]


def spread(
    connections: Sequence[psycopg.Connection[Any]],
    units: Sequence[Callable[[psycopg.Connection[Any]], T]],
) -> list[T]:
    """Each unit on whichever connection is free, in order; the results in that order.
    On an error or a stop (SIGTERM) the statements still running are cancelled, so no query
    outlives the call and the scratch database can be dropped at once."""
    if len(connections) == 1:
        return [unit(connections[0]) for unit in units]
    free: queue.SimpleQueue[psycopg.Connection[Any]] = queue.SimpleQueue()
    for each in connections:
        free.put(each)

    def run(unit: Callable[[psycopg.Connection[Any]], T]) -> T:
        taken = free.get()
        try:
            return unit(taken)
        finally:
            free.put(taken)

    executor = ThreadPoolExecutor(len(connections), thread_name_prefix="restore-check")
    try:
        futures = [executor.submit(run, unit) for unit in units]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            future.result()  # the first failure, raised at once, not after the others end
        return [future.result() for future in futures]
    except BaseException:
        for each in connections:
            with suppress(psycopg.Error):
                each.cancel_safe(timeout=CONNECT_TIMEOUT_S)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def scan_table(
    connection: psycopg.Connection[Any], name: str, columns: Sequence[str], cutoff: datetime
) -> TableScan:
    """Exact rows of a table and the newest timestamp in it, in one pass (the count reads
    every row anyway, so the recovery point costs nothing extra). Timestamps after the
    snapshot (expiry dates, schedules) are not data the backup could lose."""
    schema, table = split_name(name)
    # Only finite stamps from year 1 on: '-infinity', BC dates and stamps before year 1
    # are not instants Python (or a recovery point) can hold, and never the newest data.
    maxima = [
        sql.SQL("max({c}) FILTER (WHERE {c} <= %(cutoff)s AND {c} >= %(floor)s)").format(
            c=sql.Identifier(c)
        )
        for c in columns
    ]
    query = sql.SQL("SELECT {} FROM ONLY {}.{}").format(
        sql.SQL(", ").join([sql.SQL("count(*)"), *maxima]),
        sql.Identifier(schema),
        sql.Identifier(table),
    )
    found = connection.execute(query, {"cutoff": cutoff, "floor": EARLIEST}).fetchone()
    assert found is not None
    stamps = [stamp for stamp in map(_utc, found[1:]) if stamp is not None]
    return TableScan(name, int(found[0]), max(stamps, default=None))


def _relation_sizes(connection: psycopg.Connection[Any]) -> dict[str, int]:
    """Bytes on disk of each table and index: a fresh restore has no statistics yet."""
    return {
        qualified(schema, name): int(size)
        for schema, name, size in connection.execute(
            f"SELECT n.nspname, c.relname, pg_relation_size(c.oid) FROM pg_class c "
            f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'i') "
            f"AND {USER_SCHEMAS}"
        )
    }


def _timestamp_columns(connection: psycopg.Connection[Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for schema, table, column in connection.execute(
        f"SELECT n.nspname, c.relname, a.attname FROM pg_attribute a "
        f"JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
        f"AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype) AND {USER_SCHEMAS} "
        f"ORDER BY 1, 2, a.attnum"
    ):
        found.setdefault(qualified(schema, table), []).append(str(column))
    return found


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def install_amcheck(connection: psycopg.Connection[Any]) -> tuple[str | None, bool]:
    """(None once amcheck is there, else why it is not; whether this call created it, so
    it can be dropped again and the copy holds only what the backup held)."""
    present = connection.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'")
    if present.fetchone() is not None:
        return None, False
    try:
        connection.execute("CREATE EXTENSION amcheck")
    except psycopg.Error as exc:
        return f"skipped: amcheck unavailable ({error_line(exc)})", False
    return None, True


def btree_indexes(connection: psycopg.Connection[Any]) -> list[tuple[str, int]]:
    """(name, oid) of every B-tree index with storage that bt_index_check can read: not a
    partitioned table's parent index (relkind 'I', no storage of its own), not one left
    invalid or not ready by a failed CREATE INDEX CONCURRENTLY, not another session's
    temporary index, not an unlogged one on a standby (its storage is empty there)."""
    return [
        (qualified(schema, name), int(oid))
        for schema, name, oid in connection.execute(
            f"SELECT n.nspname, c.relname, c.oid FROM pg_index i "
            f"JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.amname = 'btree' "
            f"AND c.relkind = 'i' AND i.indisvalid AND i.indisready AND i.indislive "
            f"AND c.relpersistence <> 't' "
            f"AND (c.relpersistence <> 'u' OR NOT pg_is_in_recovery()) "
            f"AND {USER_SCHEMAS} ORDER BY 1, 2"
        )
    ]


# What amcheck raises when it finds an index inconsistent (ERRCODE_INDEX_CORRUPTED, and
# ERRCODE_DATA_CORRUPTED for a damaged page). Any other error (a refusal, a lock, a missing
# permission, an index dropped meanwhile) says nothing about the index's integrity.
CORRUPTION = frozenset({"XX001", "XX002"})


def check_index(connection: psycopg.Connection[Any], name: str, oid: int) -> IndexCheck:
    """bt_index_check of one index; an error is corruption only when amcheck says so."""
    started = time.monotonic()
    try:
        connection.execute("SELECT bt_index_check(%s::oid::regclass)", (oid,))
        problem, corrupt = None, False
    except psycopg.errors.QueryCanceled:
        raise
    except psycopg.Error as exc:
        problem, corrupt = f"{name} ({error_line(exc)})", exc.sqlstate in CORRUPTION
    return IndexCheck(name, problem, time.monotonic() - started, corrupt=corrupt)


def invalid_indexes(connection: psycopg.Connection[Any]) -> list[str]:
    """Indexes a failed CREATE INDEX CONCURRENTLY (or a broken restore) left unusable."""
    return [
        qualified(schema, name)
        for schema, name in connection.execute(
            f"SELECT n.nspname, c.relname FROM pg_index i "
            f"JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n "
            f"ON n.oid = c.relnamespace WHERE NOT i.indisvalid AND {USER_SCHEMAS} ORDER BY 1, 2"
        )
    ]


def run_sql_checks(
    checks: Sequence[SqlCheck], database: str, connection: psycopg.Connection[Any]
) -> list[Finding]:
    """Each configured check for this database, judged by `vigil.recovery.sql_check`."""
    found = []
    for check in checks:
        if check.database not in (None, database):
            continue
        try:
            row, error = connection.execute(check.sql.encode()).fetchone(), None
        except psycopg.errors.QueryCanceled:
            raise
        except psycopg.Error as exc:
            row, error = None, error_line(exc)
        found.append(sql_check(check.name, check.sql, row, error))
    return found
