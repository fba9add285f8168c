"""The deletes of a retention plan (`vigil.retention.plan`), in batches that never block a
sweep, and the vacuum that gives the space back.

Each batch is its own short transaction (`DELETE ... WHERE key IN (SELECT key ... LIMIT n)`),
with a pause between batches, so a sweep writing its checks waits at most one batch on
SQLite (one writer at a time) and never on PostgreSQL (row locks). Afterwards SQLite
returns the freed pages to the file system (`PRAGMA incremental_vacuum`, then a WAL
checkpoint that truncates the log) and PostgreSQL runs a plain `VACUUM (ANALYZE)` on the
tables that lost rows (no exclusive lock; the space is reused rather than returned).

A SQLite store made before auto_vacuum was set (`NONE`) is converted once, with a full
`VACUUM`: it rewrites the file (needs free disk about its size, and holds the write lock
while it runs), after which every prune shrinks the file incrementally.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    and_,
    delete,
    exists,
    func,
    select,
    text,
    true,
    tuple_,
)

from vigil.retention import Cut
from vigil.store import Base, Store

INCREMENTAL = 2  # PRAGMA auto_vacuum value
VACUUM_PAGES = 4096  # pages freed per incremental_vacuum step (16 MiB at 4 KiB pages)


@dataclass
class TableOutcome:
    table: str
    before: str  # ISO time: rows dated before it are eligible
    keep: str  # the horizon, as written in words
    eligible: int
    deleted: int = 0
    batches: int = 0


@dataclass
class PruneOutcome:
    dry_run: bool
    tables: list[TableOutcome] = field(default_factory=list)
    size_before: int | None = None
    size_after: int | None = None
    vacuum: str = ""  # what was done to give the space back

    @property
    def deleted(self) -> int:
        return sum(t.deleted for t in self.tables)

    @property
    def eligible(self) -> int:
        return sum(t.eligible for t in self.tables)


def condition(cut: Cut, table: Table) -> ColumnElement[bool]:
    """The rows of `cut.table` that may go: old enough and not protected by the guard."""
    rule = cut.rule
    old = table.c[rule.column] < cut.before
    tables = Base.metadata.tables
    if rule.guard == "closed_incidents":
        return and_(table.c.ended_at.is_not(None), old)
    if rule.guard == "gone_backups":
        deletions = tables["backup_deletions"]
        recorded = exists().where(deletions.c.backup_id == table.c.id)
        return and_(old, recorded | (table.c.status == "failed"))
    if rule.guard == "deletion_without_backup":
        backups = tables["backups"]
        return and_(old, ~exists().where(backups.c.id == table.c.backup_id))
    if rule.guard == "keep_newest_per":
        newest = select(func.max(table.c.id))
        if rule.per:
            newest = newest.group_by(table.c[rule.per])
        return and_(old, table.c.id.not_in(newest.scalar_subquery()))
    if rule.guard == "keep_first_per" and rule.per:
        twin = table.alias("first")
        first = (
            select(func.min(twin.c[rule.column]))
            .where(twin.c[rule.per] == table.c[rule.per])
            .scalar_subquery()
        )
        return and_(old, table.c[rule.column] > first)
    if rule.guard == "unconfigured_monitors":
        configured = table.c.monitor.in_(cut.monitors) if cut.monitors else ~true()
        return and_(
            ~configured, (table.c[rule.column] < cut.before) | table.c[rule.column].is_(None)
        )
    if rule.guard == "with_verification":
        parents = tables["deploy_verifications"]
        return ~exists().where(parents.c.id == table.c.verification_id)
    return old


def count(store: Store, cut: Cut) -> int:
    table = Base.metadata.tables[cut.table]
    with store.engine.connect() as connection:
        found = connection.scalar(
            select(func.count()).select_from(table).where(condition(cut, table))
        )
    return int(found or 0)


def delete_batch(engine: Engine, cut: Cut, size: int) -> int:
    """Delete up to `size` eligible rows in one transaction; how many went."""
    table = Base.metadata.tables[cut.table]
    keys = list(table.primary_key.columns)
    chosen = select(*keys).where(condition(cut, table)).limit(size)
    target = keys[0] if len(keys) == 1 else tuple_(*keys)
    with engine.begin() as connection:
        result = connection.execute(delete(table).where(target.in_(chosen)))
    return int(result.rowcount or 0)


def prune(
    store: Store,
    cuts: list[Cut],
    *,
    dry_run: bool = False,
    batch_size: int = 2000,
    pause: float = 0.02,
    on_batch: Callable[[str, int], None] | None = None,
) -> PruneOutcome:
    """Count (dry run) or delete what the plan says, table by table, then vacuum."""
    outcome = PruneOutcome(dry_run=dry_run, size_before=store_size(store))
    for cut in cuts:
        line = TableOutcome(
            cut.table, cut.before.isoformat(timespec="seconds"), _words(cut), count(store, cut)
        )
        outcome.tables.append(line)
        if dry_run or not line.eligible:
            continue
        while True:
            gone = delete_batch(store.engine, cut, batch_size)
            line.deleted += gone
            line.batches += 1 if gone else 0
            if on_batch and gone:
                on_batch(cut.table, gone)
            if gone < batch_size:
                break
            time.sleep(pause)  # let a waiting writer (a sweep) in between batches
    if not dry_run:
        touched = [t.table for t in outcome.tables if t.deleted]
        outcome.vacuum = give_space_back(store, touched)
    outcome.size_after = store_size(store)
    return outcome


def give_space_back(store: Store, tables: list[str]) -> str:
    if store.engine.dialect.name == "sqlite":
        return sqlite_vacuum(store.engine)
    if not tables:
        return "nothing deleted: no VACUUM needed"
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for name in tables:
            connection.execute(text(f'VACUUM (ANALYZE) "{name}"'))
    return f"VACUUM (ANALYZE) on {len(tables)} table(s): freed space is reused"


def sqlite_vacuum(engine: Engine) -> str:
    """Return free pages to the file system; convert an old store to incremental first."""
    if _sqlite_memory(engine):
        return "in-memory store"
    done = ""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        mode = connection.exec_driver_sql("PRAGMA auto_vacuum").scalar()
        if mode != INCREMENTAL:
            connection.exec_driver_sql(f"PRAGMA auto_vacuum = {INCREMENTAL}")
            connection.exec_driver_sql("VACUUM")  # one time: rewrites the file
            done = "converted to auto_vacuum=INCREMENTAL (one full VACUUM); "
        freed, free = 0, _free_pages(connection)
        while free:  # a step at a time: each is a short write transaction
            # It frees one page per step, and Python's sqlite3 steps a row-less statement
            # once: only executescript runs it to the end.
            raw: Any = connection.connection.driver_connection
            raw.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES});")
            left = _free_pages(connection)
            if left >= free:
                break  # no progress (another connection holds the file): next prune
            freed, free = freed + free - left, left
            time.sleep(0.01)
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return f"{done}incremental vacuum returned {freed} page(s)"


def _free_pages(connection: Any) -> int:
    return int(connection.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)


def ensure_incremental(engine: Engine) -> bool:
    """Whether an SQLite store shrinks on its own after deletes (auto_vacuum=INCREMENTAL)."""
    with engine.connect() as connection:
        return connection.exec_driver_sql("PRAGMA auto_vacuum").scalar() == INCREMENTAL


def store_size(store: Store) -> int | None:
    """Bytes on disk: the SQLite file with its WAL, or the PostgreSQL database."""
    engine = store.engine
    if engine.dialect.name == "sqlite":
        if _sqlite_memory(engine):
            return None
        path = Path(str(engine.url.database))
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with engine.connect() as connection:
        size: Any = connection.scalar(text("SELECT pg_database_size(current_database())"))
    return int(size)


def _sqlite_memory(engine: Engine) -> bool:
    database = engine.url.database
    return not database or database == ":memory:" or database.startswith("file:")


def _words(cut: Cut) -> str:
    days = cut.keep.total_seconds() / 86400
    if days >= 1 and days == int(days):
        return f"{int(days)}d"
    from vigil.durations import format_duration

    return format_duration(cut.keep.total_seconds())
