"""vigil's own database: one place where every duty records what it did and saw.

`open_store(url)` gives a ready `Store` on SQLite (the default, a file under $VIGIL_HOME) or
PostgreSQL (when several workers share one store). Opening migrates the schema to head
first; when it is already there that costs one query and Alembic is never imported, so
short-lived CLI commands stay quick. Concurrent first opens are serialized (a file lock
beside the SQLite file, an advisory lock on PostgreSQL), so parallel flow runs never race
to create tables.

The helpers here are the writes every duty shares; duties keep their own queries in their
own modules, using `store.session()` or `store.engine`. Secrets are masked by the column
types in `vigil.store.models`, so they hold for those queries too.
"""

from __future__ import annotations

import fcntl
from collections import namedtuple
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from operator import attrgetter, itemgetter
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from vigil.store.models import (
    SCHEMA_REVISION,
    Backup,
    BackupDeletion,
    BackupVerification,
    Base,
    CheckResult,
    DeployMeasurement,
    DeployVerification,
    Drill,
    HourlyRollup,
    Incident,
    MonitorState,
    Notification,
    RestoreTest,
    ShardHandoff,
    utcnow,
)

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "MIGRATIONS",
    "Backup",
    "BackupDeletion",
    "BackupVerification",
    "Base",
    "CheckResult",
    "DeployMeasurement",
    "DeployVerification",
    "Drill",
    "HourlyRollup",
    "Incident",
    "MonitorState",
    "Notification",
    "RestoreTest",
    "ShardHandoff",
    "Store",
    "alembic_config",
    "create_store_engine",
    "migrate",
    "open_store",
]

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any fixed bigint works; it only has to differ from other advisory locks in the same database.
PG_MIGRATION_LOCK_KEY = 0x5649_4749_4C00  # "VIGIL"
ROLLUP_SUMS = ("count", "successes", "degraded", "maintenance", "total_latency_ms")
# Rows per executemany when a sweep writes thousands: one transaction, bounded memory.
BATCH_ROWS = 10_000


class Store:
    """An engine plus the shared reads and writes; cheap to keep for a process's lifetime."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Objects stay readable after the session closes: helpers hand them back to callers.
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def record_notification(
        self,
        *,
        channel: str,
        channel_type: str,
        severity: str,
        title: str,
        status: str,
        subject: str | None = None,
        attempts: int = 1,
        error: str | None = None,
        sent_at: datetime | None = None,
    ) -> int:
        """Keep one delivery attempt's outcome; returns the new row's id."""
        row = Notification(
            sent_at=sent_at or utcnow(),
            channel=channel,
            channel_type=channel_type,
            severity=severity,
            title=title,
            subject=subject,
            status=status,
            attempts=attempts,
            error=error,
        )
        with self.session() as session:
            session.add(row)
            session.flush()
            return row.id

    def get_monitor_states(self) -> dict[str, MonitorState]:
        """Every monitor's remembered state, by monitor name (detached, free to modify)."""
        with self.session() as session:
            return {s.monitor: s for s in session.scalars(select(MonitorState))}

    def monitor_state_rows(self) -> dict[str, Any]:
        """Every monitor's remembered state as read-only rows (attributes named like
        MonitorState's), by monitor name: what a sweep reads, without building an ORM
        object per monitor (for 100,000 monitors ~2 s of CPU)."""
        table = Base.metadata.tables["monitor_states"]
        with self.engine.connect() as connection:
            rows = _read_all(connection, table)
        return {row.monitor: row for row in rows}

    def save_monitor_states(self, states: Mapping[str, Any] | Iterable[Any]) -> None:
        """Insert or overwrite each state by monitor (one executemany, no read-back to merge).

        Any object with the monitor_states columns as attributes will do: the sweep passes
        `vigil.monitoring.MonitorState` dataclasses."""
        items = states.values() if isinstance(states, Mapping) else states
        names = list(MonitorState.__table__.columns.keys())
        ordered = sorted(items, key=lambda state: state.monitor)
        read = _reader(attrgetter, names)
        with self.engine.begin() as connection:
            # A batch of rows at a time, in key order: 100,000 rows at once would cost
            # ~70 MB more at the sweep's peak.
            for start in range(0, len(ordered), BATCH_ROWS):
                rows = [read(state) for state in ordered[start : start + BATCH_ROWS]]
                _upsert(connection, "monitor_states", names, rows, overwrite=names[1:])

    def add_check_results(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Bulk-insert check results (dicts keyed by column) as one executemany.

        Every row must carry the same keys: SQLAlchemy compiles the statement from the first
        row, and would silently drop a column only later rows have.
        """
        if not rows:
            return
        _check_keys("check_results", rows)
        table = Base.metadata.tables["check_results"]
        keys = list(rows[0].keys())
        read = _reader(itemgetter, keys)
        with self.engine.begin() as connection:
            for start in range(0, len(rows), BATCH_ROWS):
                batch = [read(row) for row in rows[start : start + BATCH_ROWS]]
                _executemany(connection, table.insert(), table, keys, batch)

    def add_rollups(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add each row's counts to its (monitor, UTC hour) totals, creating the hour if new.

        Adding rather than replacing lets every sweep (and every shard) write its own results
        without reading the hour first; rows for the same key are summed before writing.
        """
        totals: dict[tuple[str, datetime], dict[str, Any]] = {}
        known = frozenset({"monitor", "hour", *ROLLUP_SUMS})
        hours: dict[datetime, datetime] = {}  # a sweep's rows share one time: one conversion
        for row in rows:
            if not known.issuperset(row):
                raise ValueError(f"unknown hourly_rollups columns: {sorted(set(row) - known)}")
            at = row["hour"]
            hour = hours.get(at)
            if hour is None:
                hour = hours[at] = _utc_hour(at)
            key = (row["monitor"], hour)
            total = totals.get(key)
            if total is None:
                total = totals[key] = {"monitor": row["monitor"], "hour": hour}
                for name in ROLLUP_SUMS:
                    total[name] = 0 + row.get(name, 0)
            else:
                for name in ROLLUP_SUMS:
                    total[name] += row.get(name, 0)
        names = ["monitor", "hour", *ROLLUP_SUMS]
        read = _reader(itemgetter, names)
        ordered = sorted(totals.items())  # in key order: see _upsert
        with self.engine.begin() as connection:
            for start in range(0, len(ordered), BATCH_ROWS):
                batch = [read(total) for _, total in ordered[start : start + BATCH_ROWS]]
                _upsert(connection, "hourly_rollups", names, batch, add=ROLLUP_SUMS)


def open_store(url: str) -> Store:
    """Connect, migrate to head if needed, and return the store."""
    engine = create_store_engine(url)
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)


def create_store_engine(url: str) -> Engine:
    """An engine tuned per backend: SQLite waits for locks, PostgreSQL survives restarts."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    path = _sqlite_path(parsed.database)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _private_file(path)
        parsed = parsed.set(database=str(path))  # absolute: a later chdir must not move it
    engine = create_engine(parsed)
    event.listen(engine, "connect", _sqlite_pragmas)
    if path is not None:
        # The first connection switches a new file to WAL, which takes an exclusive lock
        # that busy_timeout does not wait for: processes racing to do it would fail.
        with _file_lock(path), engine.connect():
            pass
    return engine


def migrate(engine: Engine) -> None:
    """Upgrade the schema to head, one process at a time; a no-op query when already there."""
    if _recorded_revision(engine) == SCHEMA_REVISION:
        return
    from alembic import command

    with _migration_lock(engine) as connection:
        command.upgrade(alembic_config(connection), "head")


def alembic_config(connection: Connection) -> Config:
    """Alembic's config built in code: migrations ship inside the package, no alembic.ini.

    env.py runs on `connection`; if it is already in a transaction, Alembic leaves the
    commit to the caller.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that only one process at a time can hold.

    Whoever waits here re-checks the version under the lock (Alembic does), so the loser of
    a race finds the schema at head and does nothing.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection, connection.begin():
            # Transaction-scoped: released by the commit, or the rollback if migrating fails.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK_KEY}
            )
            yield connection
        return
    path = _sqlite_path(engine.url.database)
    with _file_lock(path), engine.connect() as connection, connection.begin():
        yield connection


@contextmanager
def _file_lock(db_path: Path | None) -> Iterator[None]:
    """Exclusive flock on `<db>.lock`; the OS drops it if the process dies."""
    if db_path is None:
        yield
        return
    with open(f"{db_path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _recorded_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        try:
            revision = connection.execute(text("SELECT version_num FROM alembic_version"))
            return revision.scalar()
        except (OperationalError, ProgrammingError):  # no version table: a fresh database
            return None


def _private_file(path: Path) -> None:
    """The records hold what every duty learnt (hosts, errors, incident history): readable by
    vigil's user only. SQLite creates its -wal and -shm files with the database's mode."""
    import os

    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Per connection: wait for locks instead of failing, let readers run beside a writer
    (WAL; a new file gets incremental auto-vacuum first), fsync less (safe under WAL), and
    enforce foreign keys."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # WAL persists in the file
        # A new file: incremental auto-vacuum must be chosen before WAL writes the header,
        # so retention's deletes can shrink the file (vigil.store.prune).
        if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
            cursor.execute("PRAGMA auto_vacuum = INCREMENTAL")
        cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_path(database: str | None) -> Path | None:
    """The database file, or None for in-memory databases (nothing to create or lock)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().absolute()


def _upsert(
    connection: Connection,
    table_name: str,
    names: list[str],
    rows: list[tuple[Any, ...]],
    *,
    overwrite: Iterable[str] = (),
    add: Iterable[str] = (),
) -> None:
    """INSERT ... ON CONFLICT DO UPDATE, which both backends speak with the same syntax, of
    `rows` (tuples of the columns `names`, the table's key first).

    Callers give the rows in key order, so concurrent upserts of overlapping keys lock rows
    in the same order and cannot deadlock on PostgreSQL.
    """
    if not rows:
        return
    table = Base.metadata.tables[table_name]
    keys = [column.name for column in table.primary_key.columns]
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table)
    changes: dict[str, Any] = {name: statement.excluded[name] for name in overwrite}
    changes |= {name: table.c[name] + statement.excluded[name] for name in add}
    upsert = statement.on_conflict_do_update(index_elements=keys, set_=changes)
    _executemany(connection, upsert, table, names, rows)


def _executemany(
    connection: Connection,
    statement: Any,
    table: Any,
    names: list[str],
    rows: list[tuple[Any, ...]],
) -> None:
    """Run an INSERT of the columns `names` once per row in `rows` (tuples in that order)
    as the driver's own executemany.

    SQLAlchemy's own executemany handles each row's parameters one by one in Python (at
    100,000 rows seconds of a sweep's CPU); here the statement is compiled once, each
    column's bind processing (the redacting and UTC types of vigil.store.models, the
    dialect's own conversions) applied to its values, and the rows go to the DBAPI cursor
    as they are. A column not in `names` gets its Python-side default, as SQLAlchemy gives
    it (`insert_default=list`: a new list per row).
    """
    if not rows:
        return
    dialect = connection.dialect
    missing = [
        column
        for column in table.columns
        if column.name not in names and column.default is not None
    ]
    columns = [table.c[name] for name in names] + missing
    keys = [c.key for c in columns]
    compiled = statement.compile(dialect=dialect, column_keys=keys)
    # Column by column: a sweep's rows share most values (its time, `[]`, None), so each
    # distinct value is processed once.
    values = [list(column) for column in zip(*rows, strict=True)]
    values += [[make() for _ in rows] for make in map(_default_of, missing)]
    for i, column in enumerate(columns):
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            values[i] = list(map(_memoized(process), values[i]))
    if compiled.positional:
        order = [keys.index(name) for name in compiled.positiontup or ()]
        batch: list[Any] = list(zip(*(values[i] for i in order), strict=True))
    else:
        batch = [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]
    connection.exec_driver_sql(compiled.string, batch)


def _read_all(connection: Connection, table: Any) -> list[Any]:
    """Every row of `table` as named tuples (fields named like its columns), read through
    the driver's cursor with each column's result processing (the UTC type's, the JSON
    decoding) done column by column, once per distinct value where the result cannot be
    modified (a time, a word), so 100,000 rows take a fraction of SQLAlchemy's per-row cost.
    """
    dialect = connection.dialect
    columns = list(table.columns)
    compiled = select(table).compile(dialect=dialect)
    raw = connection.exec_driver_sql(compiled.string).fetchall()
    values = [list(column) for column in zip(*raw, strict=True)] or [[] for _ in columns]
    for i, column in enumerate(columns):
        kind = column.type.dialect_impl(dialect)
        process = kind.result_processor(dialect, None)
        if process is not None:
            values[i] = list(map(_decoder(process), values[i]))
    row_type = _row_type(table.name, tuple(c.key for c in columns))
    return [row_type._make(row) for row in zip(*values, strict=True)]


@cache
def _row_type(name: str, fields: tuple[str, ...]) -> Any:
    return namedtuple(f"{name}_row", fields)


def _decoder(process: Any) -> Any:
    """`process` (a column's result processing), remembering its result for each distinct
    value the driver returned when the result cannot be changed by its user (a time, a
    word); an empty JSON list or object is a new one each time."""
    memo: dict[Any, Any] = {}

    def run(value: Any) -> Any:
        key = value if type(value) is str else (type(value), value)
        found = memo.get(key, _UNSET)
        if found is _UNSET:
            found = process(value)
            if type(found) in _SCALARS:
                memo[key] = found
            elif found in ([], {}) and type(found) in (list, dict):
                memo[key] = _Empty(type(found))
        elif type(found) is _Empty:
            return found.kind()
        return found

    return run


class _Empty:
    """A remembered empty list or dict: each row gets its own."""

    __slots__ = ("kind",)

    def __init__(self, kind: type) -> None:
        self.kind = kind


def _memoized(process: Any) -> Any:
    """`process`, remembering its result for each distinct scalar value (by type, value and
    zone: True and 1 stay apart) and each list of scalars."""
    memo: dict[Any, Any] = {}

    def run(value: Any) -> Any:
        kind = type(value)
        if kind is list:
            if not all(type(v) in _SCALARS for v in value):
                return process(value)
            key: Any = (list, *((type(v), v, _zone(v)) for v in value))
        elif kind is datetime:
            key = (kind, value, value.tzinfo)
        elif kind in _SCALARS:
            key = (kind, value)
        else:
            return process(value)
        found = memo.get(key, _UNSET)
        if found is _UNSET:
            found = memo[key] = process(value)
        return found

    return run


_SCALARS = frozenset({str, int, float, bool, type(None), datetime})


def _zone(value: Any) -> Any:
    """A datetime's zone: equal instants in different zones may be stored apart."""
    return value.tzinfo if isinstance(value, datetime) else None


_UNSET = object()


def _reader(getter: Any, names: list[str]) -> Any:
    """`getter(*names)`, a tuple even for one name."""
    if len(names) == 1:
        one = getter(names[0])
        return lambda item: (one(item),)
    return getter(*names)


def _default_of(column: Any) -> Any:
    """A maker of `column`'s Python-side insert default (called once per row)."""
    default = column.default
    if default.is_callable:
        return lambda: default.arg(None)
    return lambda: default.arg


def _check_keys(table_name: str, rows: Sequence[Mapping[str, Any]]) -> None:
    keys = rows[0].keys()
    unknown = set(keys) - set(Base.metadata.tables[table_name].columns.keys())
    if unknown:
        raise ValueError(f"unknown {table_name} columns: {sorted(unknown)}")
    if any(row.keys() != keys for row in rows):
        raise ValueError(f"every {table_name} row must have the same keys as the first")


def _utc_hour(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} given; use an aware UTC time")
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
