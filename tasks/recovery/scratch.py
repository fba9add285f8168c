"""The servers a recovery is rehearsed on: the restore test's scratch server and the
drill's rehearsal server. One run at a time holds an advisory lock there for its whole run
(it dies with the process holding it), so the holder may drop whatever a crashed run left:
its databases and temporary folders. Databases are created from template0, so nothing
added to template1 on that server can pass for restored data.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tasks.pg import CONNECT_TIMEOUT_S
from tasks.recovery.fetch import RecoveryError
from vigil.backup.identity import describe_url
from vigil.drill import DRILL_DATABASE, DrillError
from vigil.durations import format_duration
from vigil.redact import error_line
from vigil.restore_test import RestoreTestError, is_scratch_of, name_part, workdir_prefix

DRILL_LOCK = "vigil-drill"


def _admin(url: str, role: str, error: type[Exception]) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise error(
            f"cannot connect to the {role} {describe_url(url)}: {error_line(exc)}"
        ) from None


@contextmanager
def scratch_session(
    scratch_url: str, database: str, wait: timedelta
) -> Iterator[psycopg.Connection[Any]]:
    """An admin connection to the scratch server holding this database's restore-test lock
    (waiting up to `wait` for a run already holding it)."""
    with _admin(scratch_url, "scratch server", RestoreTestError) as admin:
        try:
            admin.execute(f"SET lock_timeout = {max(1, int(wait.total_seconds() * 1000))}")
            admin.execute(
                "SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                (f"vigil-restore-test:{name_part(database)}",),
            )
        except psycopg.errors.LockNotAvailable:
            raise RestoreTestError(
                f"{database}: another restore test held the lock on "
                f"{describe_url(scratch_url)} for {format_duration(wait)}; not starting a "
                "second one"
            ) from None
        admin.execute("SET lock_timeout = 0")
        yield admin


@contextmanager
def rehearsal_session(target_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An admin connection to the rehearsal server holding the drill lock: one drill at a
    time, and the holder may drop what a crashed drill left."""
    with _admin(target_url, "rehearsal server", DrillError) as admin:
        got = admin.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (DRILL_LOCK,))
        if not got.fetchone()[0]:  # type: ignore[index]
            raise DrillError(
                f"another drill is running on {describe_url(target_url)}; not starting a second one"
            )
        yield admin


def create_database(admin: psycopg.Connection[Any], name: str) -> None:
    try:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise RecoveryError(f"cannot create database {name}: {error_line(exc)}") from None


def drop_database(admin: psycopg.Connection[Any], name: str) -> None:
    """Drop a scratch or rehearsal database, its subscriptions first: PostgreSQL refuses
    to drop a database a subscription lives in, even WITH (FORCE)."""
    drop_subscriptions(admin, name)
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def drop_subscriptions(admin: psycopg.Connection[Any], name: str) -> list[str]:
    """Drop every subscription living in database `name` (one an older vigil restored, or
    put there by hand), without touching its publisher: disabled, detached from its slot
    (`slot_name = NONE`, so dropping it never connects to the publisher), then dropped.
    Returns their names."""
    found = [
        str(row[0])
        for row in admin.execute(
            "SELECT s.subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
            "WHERE d.datname = %s ORDER BY 1",
            (name,),
        )
    ]
    if not found:
        return []
    url = make_conninfo(admin.info.dsn, dbname=name, password=admin.info.password or None)
    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as inside:
        for subscription in found:
            named = sql.Identifier(subscription)
            inside.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(named))
            inside.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(named))
            inside.execute(sql.SQL("DROP SUBSCRIPTION {}").format(named))
    return found


def drop_all(admin: psycopg.Connection[Any], names: Sequence[str]) -> list[str]:
    """Drop each database; returns the problems (each one a finding)."""
    problems = []
    for name in names:
        try:
            drop_database(admin, name)
        except psycopg.Error as exc:
            problems.append(f"could not drop {name}: {error_line(exc)}")
    return problems


def scratch_leftovers(admin: psycopg.Connection[Any], database: str) -> list[str]:
    """Scratch databases of `database` on this server (only names the test makes)."""
    rows = admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE 'vigil\\_restore\\_%' ORDER BY 1"
    )
    return [str(r[0]) for r in rows if is_scratch_of(str(r[0]), database)]


def drill_databases(admin: psycopg.Connection[Any]) -> list[str]:
    rows = admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE 'vigil\\_drill\\_%' ORDER BY 1"
    )
    return [str(r[0]) for r in rows if DRILL_DATABASE.match(str(r[0]))]


def drop_leftovers(admin: psycopg.Connection[Any], database: str) -> list[str]:
    """Drop scratch databases and temporary folders of `database` that a crashed run left
    (the caller holds the lock, so none of them belongs to a live run)."""
    names = scratch_leftovers(admin, database)
    for name in names:
        drop_database(admin, name)
    folders = sorted(Path(tempfile.gettempdir()).glob(f"{workdir_prefix(database)}*"))
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return names + [str(f) for f in folders]


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A private temporary folder for the archive, removed whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
