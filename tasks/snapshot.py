"""The snapshot a backup describes: an open REPEATABLE READ transaction whose exported
snapshot pg_dump imports, and the facts of the database read in it (versions, size, tables
with their rows, indexes, constraints, a schema fingerprint), so that the manifest and the
archive describe the same instant. The same readers describe a restored copy."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import psycopg
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff
from psycopg import sql

from tasks.completeness import ContentsReader, read_objects, read_partitions, read_sequences
from tasks.pg import CONNECT_TIMEOUT_S, NOT_EXTENSION_MEMBER, USER_SCHEMAS
from vigil.backup.facts import SnapshotFacts, TableFacts, qualified, split_name
from vigil.backup.identity import BackupError, describe_url, retry_if_transient
from vigil.config import Database
from vigil.redact import error_line

# Tables counted per transaction: each holds a lock on its tables (and, while planning,
# their indexes) until it ends, so a batch adds at most a few hundred locks to pg_dump's.
COUNT_BATCH = 100


class HeldSnapshot:
    """An open REPEATABLE READ transaction whose exported snapshot pg_dump imports.

    The snapshot exists only while this transaction is open, so hold it until pg_dump has
    finished (retries included), then close it. Exact row counts are taken in the same
    snapshot while pg_dump runs (on a big database counting is a scan of every table, which
    would otherwise come on top of the dump's own), on a connection of their own, in
    batches of COUNT_BATCH tables, each batch a transaction importing the snapshot: its
    locks go when the batch ends, so counting never doubles the locks pg_dump holds (one
    per table), and where a bare pg_dump fits in the server's lock table, so does a backup.
    """

    def __init__(
        self, connection: psycopg.Connection[Any], facts: SnapshotFacts, database: Database
    ) -> None:
        self.connection = connection
        self.facts = facts
        self.name = database.name
        self.url = database.url
        self.exact = database.exact_counts
        self._counter: threading.Thread | None = None
        self._counting: psycopg.Connection[Any] | None = None
        self._counts: dict[str, int] = {}
        self._problem: BackupError | None = None
        self._contents = ContentsReader(
            database.url, facts.snapshot_id, database.fingerprint_tables, database.name
        )

    def start_counting(self) -> None:
        """Count every table exactly, in the background (only for exact_counts databases);
        read large objects, materialized views and fingerprints in the background too."""
        self._contents.start()
        if self.exact and self._counter is None:
            self._counter = threading.Thread(target=self._count, name="vigil-count", daemon=True)
            self._counter.start()

    def counted(self) -> SnapshotFacts:
        """The facts with exact counts, once counting is done (planner estimates otherwise)."""
        contents = self._contents.result()
        if self._counter is None:
            return replace(self.facts, contents=contents)
        self._counter.join()
        if self._problem is not None:
            raise self._problem
        tables = tuple(replace(t, rows=self._counts[t.name], exact=True) for t in self.facts.tables)
        return replace(self.facts, tables=tables, contents=contents)

    def _count(self) -> None:
        try:
            self._counting = psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S)
            with self._counting:
                names = [split_name(t.name) for t in self.facts.tables]
                self._counts = count_in_snapshot(self._counting, self.facts.snapshot_id, names)
        except psycopg.errors.QueryCanceled:
            self._problem = BackupError(
                f"{self.name}: counting rows hit the server's statement_timeout; set "
                "exact_counts: false for this database to use planner estimates"
            )
        except psycopg.Error as exc:
            self._problem = BackupError(f"{self.name}: counting rows failed: {error_line(exc)}")

    def close(self) -> None:
        self._contents.stop()
        if self._counter is not None and self._counter.is_alive():
            if self._counting is not None:
                with suppress(psycopg.Error):
                    self._counting.cancel_safe()
            self._counter.join()
        self.connection.close()

    def __enter__(self) -> HeldSnapshot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_snapshot(database: Database) -> HeldSnapshot:
    """Connect, export a snapshot and record its schema facts; counts come with
    `start_counting` (exact) or are planner estimates (exact_counts: false)."""
    try:
        connection = psycopg.connect(database.url, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as exc:
        raise connect_error(database, exc) from None
    # Every later query of this transaction sees the snapshot its first statement takes.
    connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    connection.read_only = True
    try:
        row = connection.execute("SELECT pg_export_snapshot(), now()").fetchone()
        assert row is not None
        # A server-wide idle timeout would kill the snapshot while pg_dump runs.
        connection.execute("SET idle_in_transaction_session_timeout = 0")
        facts = read_facts(connection, str(row[0]), row[1])
    except psycopg.Error as exc:
        connection.close()
        raise BackupError(
            f"{database.name}: reading the snapshot failed: {error_line(exc)}"
        ) from None
    return HeldSnapshot(connection, facts, database)


def connect_error(database: Database, exc: psycopg.Error) -> BackupError:
    """Name the database and where it was sought; retry only what may heal by itself."""
    reason = error_line(exc)
    permanent = any(
        words in reason
        for words in ("authentication failed", "does not exist", "no password supplied", "denied")
    )
    return BackupError(
        f"cannot connect to database {database.name!r} at {describe_url(database.url)}: {reason}",
        retryable=not permanent,
    )


def read_facts(
    connection: psycopg.Connection[Any], snapshot_id: str, taken_at: datetime
) -> SnapshotFacts:
    """Versions, sizes, tables (with planner estimates), indexes, constraints, fingerprint."""
    version = connection.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int, "
        "pg_database_size(current_database())"
    ).fetchone()
    assert version is not None
    tables = _tables(connection)
    indexes = _strings(
        connection,
        f"SELECT n.nspname || '.' || c.relname || ' ' || pg_get_indexdef(c.oid) FROM pg_class c "
        f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('i', 'I') "
        f"AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}",
    )
    constraints = _strings(
        connection,
        f"SELECT n.nspname || '.' || c.relname || ' ' || k.conname || ' ' || "
        f"pg_get_constraintdef(k.oid) FROM pg_constraint k "
        f"JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}",
    )
    return SnapshotFacts(
        snapshot_id=snapshot_id,
        taken_at=taken_at.astimezone(UTC),
        server_version=str(version[0]),
        server_version_num=int(version[1]),
        database_size=int(version[2]),
        tables=tables,
        indexes=indexes,
        constraints=constraints,
        fingerprint=schema_fingerprint(connection, indexes, constraints),
        objects=read_objects(connection),
        sequences=read_sequences(connection),
        partitions=read_partitions(connection),
    )


def _tables(connection: psycopg.Connection[Any]) -> tuple[TableFacts, ...]:
    rows = connection.execute(
        f"SELECT n.nspname, c.relname, greatest(c.reltuples, 0)::bigint, c.oid FROM pg_class c "
        f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
        f"AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER} ORDER BY 1, 2"
    ).fetchall()
    return tuple(
        TableFacts(qualified(s, t), int(n), exact=False, oid=int(oid)) for s, t, n, oid in rows
    )


def count_in_snapshot(
    connection: psycopg.Connection[Any],
    snapshot_id: str,
    tables: Sequence[tuple[str, str]],
    batch: int = COUNT_BATCH,
) -> dict[str, int]:
    """Exact rows of each (schema, table) as of the exported snapshot, `batch` tables per
    transaction (each importing the snapshot), so the locks counting takes are released as
    it goes instead of piling up until the end."""
    connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    connection.read_only = True
    counts: dict[str, int] = {}
    for start in range(0, len(tables), batch):
        with connection.transaction():
            connection.execute(
                sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_id))
            )
            counts.update(count_rows(connection, tables[start : start + batch]))
    return counts


def count_rows(
    connection: psycopg.Connection[Any], tables: Sequence[tuple[str, str]]
) -> dict[str, int]:
    """Exact rows of each (schema, table), ONLY its own: partitions are counted as tables."""
    counts: dict[str, int] = {}
    for schema, table in tables:
        query = sql.SQL("SELECT count(*) FROM ONLY {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        row = connection.execute(query).fetchone()
        counts[qualified(schema, table)] = int(row[0]) if row else 0
    return counts


def schema_fingerprint(
    connection: psycopg.Connection[Any], indexes: Sequence[str], constraints: Sequence[str]
) -> str:
    """A hash of columns, indexes and constraints: equal fingerprints mean the same schema,
    so a restore can prove it rebuilt what was backed up."""
    columns = _strings(
        connection,
        f"SELECT n.nspname || '.' || c.relname || '.' || a.attname || ' ' || "
        f"format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' "
        f"ELSE '' END || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') "
        f"FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        f"JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        f"WHERE c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped "
        f"AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}",
    )
    digest = hashlib.sha256()
    for line in [*columns, *indexes, *constraints]:
        digest.update(line.encode() + b"\n")
    return "sha256:" + digest.hexdigest()


def _strings(connection: psycopg.Connection[Any], query: str) -> tuple[str, ...]:
    return tuple(sorted(str(row[0]) for row in connection.execute(query)))


@task(
    name="take snapshot",
    task_run_name="snapshot {database.name}",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def take_snapshot(database: Database) -> HeldSnapshot:
    """Export a snapshot and record its facts; the caller holds it open through the dump."""
    return open_snapshot(database)
