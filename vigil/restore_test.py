"""The weekly restore test as plain code: which backup to prove, where to restore it, and how
to judge the restored copy against the manifest recorded at backup time.

A backup that was never restored is a hope. The test restores the newest verified backup
into a throw-away scratch database and proves, with exact numbers, that it holds what the
manifest promised: every table with its rows, the same indexes and constraints, all of
them valid, and the same schema fingerprint. It also reads the newest timestamp in the
data, which is the recovery point a real restore would give.

Scratch databases are named `vigil_restore_<database>_<UTC stamp>`. Runs for one database
are serialised by a PostgreSQL advisory lock held on the scratch server for the whole run:
it dies with the process holding it, so whoever holds it may safely drop any scratch
database (and temporary folder) of that database as left behind by a crashed run.

pg_dump/pg_restore process handling and storage live in `tasks.pgtools`/`tasks.storage`;
the flow in `flows.restore_test` runs these functions as tasks.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tasks.pgtools import connection_args, find_tool, load_manifest
from tasks.storage import Storage, download
from vigil.backup import (
    CONNECT_TIMEOUT_S,
    SUCCEEDED,
    BackupError,
    CatalogEntry,
    catalog,
    describe_url,
    manifest_rows,
    read_facts,
)
from vigil.config import SqlCheck
from vigil.durations import format_duration
from vigil.redact import redact
from vigil.store import RestoreTest, Store

T = TypeVar("T")
PASSED, FAILED = "passed", "failed"
SCRATCH_PREFIX = "vigil_restore_"
STAMP = "%Y%m%d_%H%M%S"
_SCRATCH = re.compile(r"^vigil_restore_(?P<database>.+)_(?P<stamp>\d{8}_\d{6})$")
# The scratch database name must fit PostgreSQL's 63-byte identifiers with the stamp.
_MAX_NAME_PART = 30
WORKDIR_PREFIX = "vigil-restore-test-"
# Application clocks drift: data stamped a little after the snapshot still counts.
CLOCK_SKEW = timedelta(minutes=5)
# How PostgreSQL reports a full disk in the error pg_restore passes on: ENOSPC's strerror,
# or a short write when extending a file, which comes with this hint.
DISK_FULL = ("No space left on device", "Check free disk space")
_SYSTEM_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"


class RestoreTestError(BackupError):
    """The restore test could not do its work; the message says what, where and why."""


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One judged property of the restored copy, kept with both sides for the record;
    `problem` is the sentence a person reads when it failed."""

    name: str
    ok: bool
    expected: str
    observed: str
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "expected": self.expected,
            "observed": self.observed,
        }

    def line(self) -> str:
        if self.ok:
            return f"{self.name}: ok ({self.observed})"
        return self.problem or f"{self.name}: expected {self.expected}, observed {self.observed}"


@dataclass
class Result:
    """One database's restore test, for the record, the artifact, the alert and the CLI."""

    database: str
    started_at: datetime
    max_duration: timedelta
    backup_id: str | None = None
    backup_created_at: datetime | None = None
    scratch: str | None = None
    fetch_s: float | None = None
    restore_s: float | None = None
    check_s: float | None = None
    amcheck_s: float | None = None
    finished_at: datetime | None = None
    recovery_point: datetime | None = None
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    dropped_leftovers: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        """The recovery time: fetching the archive plus pg_restore, what a real restore
        needs before the database is usable (the checks are the test's own cost)."""
        if self.fetch_s is None or self.restore_s is None:
            return None
        return self.fetch_s + self.restore_s

    @property
    def rto_met(self) -> bool | None:
        seconds = self.duration_s
        return None if seconds is None else seconds <= self.max_duration.total_seconds()

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures and self.duration_s is not None

    @property
    def status(self) -> str:
        return PASSED if self.ok else FAILED

    def stage(self) -> str:
        """The step the test had reached, for a run that stopped before its end."""
        if self.backup_id is None:
            return "the choice of a backup"
        if self.fetch_s is None:
            return f"the download of {self.backup_id}"
        if self.restore_s is None:
            return "pg_restore"
        return "the comparison with the manifest"

    def problems(self) -> list[str]:
        return ([self.error] if self.error else []) + [f.line() for f in self.failures]

    def timing(self) -> str:
        if self.duration_s is None:
            return ""
        limit = format_duration(self.max_duration)
        verdict = "within" if self.rto_met else "OVER"
        return f"restored in {format_duration(self.duration_s)} ({verdict} the {limit} RTO)"

    def line(self) -> str:
        what = self.backup_id or "no backup"
        if self.ok:
            return f"{self.database}: {what} passed, {len(self.findings)} checks; {self.timing()}"
        return f"{self.database}: {what} FAILED: " + "; ".join(self.problems())

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "backup_id": self.backup_id,
            "status": self.status,
            "error": self.error,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_s": _round(self.duration_s),
            "fetch_s": _round(self.fetch_s),
            "restore_s": _round(self.restore_s),
            "check_s": _round(self.check_s),
            "amcheck_s": _round(self.amcheck_s),
            "max_duration_s": self.max_duration.total_seconds(),
            "rto_met": self.rto_met,
            "recovery_point": self.recovery_point.isoformat() if self.recovery_point else None,
            "scratch_database": self.scratch,
            "dropped_leftovers": self.dropped_leftovers,
            "checks": [f.as_json() for f in self.findings],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def interrupted(exc: BaseException, result: Result) -> str:
    """The reason recorded for a run stopped from outside: a Prefect cancellation or a
    shutdown arrives as SIGTERM (Prefect raises TerminationSignal), Ctrl-C as SIGINT."""
    number = getattr(exc, "signal", None)
    if number is None and isinstance(exc, KeyboardInterrupt):
        number = signal.SIGINT
    cause = signal.Signals(number).name if number else type(exc).__name__
    return (
        f"stopped by {cause} during {result.stage()} (cancelled or shut down) before the "
        "test could finish"
    )


# --- which backup --------------------------------------------------------------------------


def pick_backup(store: Store, database: str, backup: str | None = None) -> CatalogEntry:
    """The newest verified backup of `database` still in storage, or the one asked for.

    Finding none is an error with the reason: a restore test with nothing to restore must
    never pass quietly."""
    entries = catalog(store, database)
    if backup is not None:
        return _named(entries, database, backup)
    good = [e for e in entries if e.status == SUCCEEDED and e.verified and not e.deleted]
    if good:
        return good[0]
    if not entries:
        raise RestoreTestError(f"{database}: no backup on record to test (run `vigil backup`)")
    newest = entries[0]
    raise RestoreTestError(
        f"{database}: no verified backup to test; the newest, {newest.id}, is {newest.status}"
        f"{' and not verified' if not newest.verified else ''}"
        f"{' and deleted' if newest.deleted else ''}"
    )


def _named(entries: Sequence[CatalogEntry], database: str, backup: str) -> CatalogEntry:
    found = next((e for e in entries if e.id == backup), None)
    if found is None:
        raise RestoreTestError(f"{database}: no backup {backup!r} on record (`vigil backups`)")
    if found.deleted:
        raise RestoreTestError(f"{backup}: retention deleted it; pick another")
    if found.status != SUCCEEDED:
        raise RestoreTestError(f"{backup} {found.status}: {found.error or 'it never completed'}")
    return found


# --- the scratch server ----------------------------------------------------------------------


def scratch_name(database: str, at: datetime) -> str:
    """`vigil_restore_<database>_<UTC stamp>`, lower-case and short enough for PostgreSQL."""
    return f"{SCRATCH_PREFIX}{_name_part(database)}_{at.astimezone(UTC).strftime(STAMP)}"


def is_scratch_of(name: str, database: str) -> bool:
    """Only names this code makes for `database`: a restore target someone made by hand
    (`vigil_restore_anything`) is never taken for a leftover."""
    match = _SCRATCH.match(name)
    return match is not None and match["database"] == _name_part(database)


def _name_part(database: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", database.lower())[:_MAX_NAME_PART]


def database_url(server_url: str, name: str) -> str:
    """`server_url` pointing at database `name` (a libpq connection string)."""
    return make_conninfo(server_url, dbname=name)


@contextmanager
def scratch_session(
    scratch_url: str, database: str, wait: timedelta
) -> Iterator[psycopg.Connection[Any]]:
    """An admin connection to the scratch server holding this database's restore-test lock
    (waiting up to `wait` for a run already holding it)."""
    where = describe_url(scratch_url)
    try:
        admin = psycopg.connect(scratch_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise RestoreTestError(
            f"cannot connect to the scratch server {where}: {_first(exc)}"
        ) from None
    with admin:
        try:
            admin.execute(f"SET lock_timeout = {max(1, int(wait.total_seconds() * 1000))}")
            admin.execute(
                "SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                (f"vigil-restore-test:{_name_part(database)}",),
            )
        except psycopg.errors.LockNotAvailable:
            raise RestoreTestError(
                f"{database}: another restore test held the lock on {where} for "
                f"{format_duration(wait)}; not starting a second one"
            ) from None
        admin.execute("SET lock_timeout = 0")
        yield admin


def drop_leftovers(admin: psycopg.Connection[Any], database: str) -> list[str]:
    """Drop scratch databases and temporary folders of `database` that a crashed run left
    (the caller holds the lock, so none of them belongs to a live run)."""
    names = [
        str(row[0])
        for row in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'vigil\\_restore\\_%' ORDER BY 1"
        )
        if is_scratch_of(str(row[0]), database)
    ]
    for name in names:
        drop_database(admin, name)
    folders = sorted(Path(tempfile.gettempdir()).glob(f"{_workdir_prefix(database)}*"))
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return names + [str(f) for f in folders]


def create_database(admin: psycopg.Connection[Any], name: str) -> None:
    """From template0, so nothing added to template1 on the scratch server can pass for
    restored data."""
    try:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise RestoreTestError(f"cannot create scratch database {name}: {_first(exc)}") from None


def drop_database(admin: psycopg.Connection[Any], name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def workdir(database: str) -> Iterator[Path]:
    """A private temporary folder for the archive, removed whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix=_workdir_prefix(database)))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _workdir_prefix(database: str) -> str:
    return f"{WORKDIR_PREFIX}{re.sub(r'[^A-Za-z0-9_.-]', '_', database)}-"


# --- fetch and restore -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    manifest: dict[str, Any]
    archive: Path
    seconds: float


def fetch(storage: Storage, entry: CatalogEntry, folder: Path) -> Fetched:
    """Download the archive and prove its SHA-256 against the manifest (and the catalog)
    before anything else touches it."""
    started = time.monotonic()
    manifest = load_manifest(storage, entry.id)
    dump = manifest["dump"]
    if entry.sha256 and entry.sha256 != dump["sha256"]:
        raise RestoreTestError(
            f"{entry.id}: checksum mismatch: the catalog records sha256 {entry.sha256}, the "
            f"manifest {dump['sha256']}; the manifest was altered"
        )
    archive = folder / "backup.dump"
    got = download(storage, dump["key"], archive)
    if (got.sha256, got.size_bytes) != (dump["sha256"], int(dump["size_bytes"])):
        raise RestoreTestError(
            f"{entry.id}: checksum mismatch: the stored archive has sha256 {got.sha256} "
            f"({got.size_bytes:,} bytes), the manifest {dump['sha256']} "
            f"({int(dump['size_bytes']):,} bytes); it is corrupted or truncated"
        )
    return Fetched(manifest, archive, time.monotonic() - started)


def restore(archive: Path, target_url: str, *, jobs: int, timeout: float) -> float:
    """pg_restore --jobs into the empty scratch database, killed at the hard time limit.

    Owners and grants are skipped: a scratch server need not have production's roles, and a
    missing role says nothing about whether the backup is complete."""
    args = [
        find_tool("pg_restore"),
        "--exit-on-error",
        f"--jobs={jobs}",
        "--no-owner",
        "--no-privileges",
        "--no-password",
    ]
    dsn, env = connection_args(target_url)
    started = time.monotonic()
    with tempfile.TemporaryFile() as errors:
        code = _run([*args, f"--dbname={dsn}", str(archive)], env, errors, timeout)
        if code != 0:
            errors.seek(0)
            text = errors.read().decode(errors="replace")
            raise RestoreTestError(
                f"pg_restore into {describe_url(target_url)} failed (exit {code}): "
                f"{_restore_problem(text)}"
            )
    return time.monotonic() - started


def _restore_problem(stderr: str) -> str:
    """pg_restore's first error with the lines after it (the server's message, its context,
    the failed command): with --exit-on-error what follows is only its consequences. Led by
    the cause when it is one a person acts on elsewhere than in the backup."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    first = next((i for i, line in enumerate(lines) if "error:" in line), max(0, len(lines) - 6))
    message = redact(" | ".join(lines[first : first + 6])) or "no message"
    if any(sign in stderr for sign in DISK_FULL):
        return f"the scratch server ran out of disk space: {message}"
    return message


def _run(args: list[str], env: dict[str, str], errors: Any, timeout: float) -> int:
    """Run to the end, or kill it: at the time limit, and on any exception (a SIGTERM from a
    cancellation arrives as one). pg_restore --jobs forks workers, so it runs in a process
    group of its own and the whole group is killed: no worker keeps writing into a scratch
    database that is about to be dropped."""
    with subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=errors, env=env, process_group=0
    ) as process:
        try:
            return process.wait(timeout=max(timeout, 0.001))
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise RestoreTestError(
                f"pg_restore exceeded the hard time limit ({format_duration(timeout)} left of "
                "restore_test.hard_timeout) and was stopped"
            ) from None
        except BaseException:
            _kill_group(process)
            raise


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


# --- comparing the restored copy with the manifest ------------------------------------------


def connect(url: str, timeout: float) -> psycopg.Connection[Any]:
    """A connection whose every statement stops at the hard time limit."""
    millis = max(1, int(timeout * 1000))
    try:
        return psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            options=f"-c statement_timeout={millis} -c TimeZone=UTC",
        )
    except psycopg.Error as exc:
        raise RestoreTestError(f"cannot connect to {describe_url(url)}: {_first(exc)}") from None


@contextmanager
def connect_all(url: str, timeout: float, count: int) -> Iterator[list[psycopg.Connection[Any]]]:
    """`count` connections (at least one) to the restored copy, to share its checks."""
    with ExitStack() as stack:
        yield [stack.enter_context(connect(url, timeout)) for _ in range(max(1, count))]


@dataclass(frozen=True)
class Comparison:
    findings: list[Finding]
    recovery_point: datetime | None
    # amcheck is work a bare restore never does: its time (summed over the connections
    # that shared it) is kept apart to be seen.
    amcheck_s: float | None = None


def compare(
    manifest: dict[str, Any],
    connection: psycopg.Connection[Any],
    *,
    amcheck: bool,
    helpers: Sequence[psycopg.Connection[Any]] = (),
) -> Comparison:
    """Everything the manifest promised, checked on the restored copy. Table scans and
    index checks are independent, so they are shared out over `connection` and `helpers`
    (the flow opens as many as pg_restore's jobs): the checks of a big database take about
    its largest table's scan, not the sum of all of them."""
    facts = read_facts(connection, "", datetime.now(UTC))
    taken = datetime.fromisoformat(manifest["snapshot"]["taken_at"])
    skipped = install_amcheck(connection) if amcheck else None
    indexes = btree_indexes(connection) if amcheck and skipped is None else []
    tables = [t.name for t in facts.tables]
    scans, checks = scan_and_check(connection, helpers, tables, indexes, taken + CLOCK_SKEW)
    newest = max((s.newest for s in scans if s.newest is not None), default=None)
    findings = compare_rows(manifest, {s.name: s.rows for s in scans})
    findings.append(compare_set("indexes", manifest["indexes"], facts.indexes, words=1))
    findings.append(compare_set("constraints", manifest["constraints"], facts.constraints, words=2))
    findings.append(valid_indexes(connection))
    findings.append(compare_fingerprint(manifest, facts.fingerprint, facts.server_version_num))
    amcheck_s = None
    if amcheck:
        findings.append(btree_finding(checks, skipped))
        amcheck_s = sum(c.seconds for c in checks)
    findings.append(freshness(newest, taken))
    return Comparison(findings, newest, amcheck_s)


@dataclass(frozen=True)
class TableScan:
    name: str
    rows: int
    newest: datetime | None


@dataclass(frozen=True)
class IndexCheck:
    name: str
    problem: str | None
    seconds: float


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
    schema, table = name.split(".", 1)
    maxima = [
        sql.SQL("max({c}) FILTER (WHERE {c} <= %(cutoff)s)").format(c=sql.Identifier(c))
        for c in columns
    ]
    query = sql.SQL("SELECT {} FROM ONLY {}.{}").format(
        sql.SQL(", ").join([sql.SQL("count(*)"), *maxima]),
        sql.Identifier(schema),
        sql.Identifier(table),
    )
    found = connection.execute(query, {"cutoff": cutoff}).fetchone()
    assert found is not None
    stamps = [stamp for stamp in map(_utc, found[1:]) if stamp is not None]
    return TableScan(name, int(found[0]), max(stamps, default=None))


def _relation_sizes(connection: psycopg.Connection[Any]) -> dict[str, int]:
    """Bytes on disk of each table and index: a fresh restore has no statistics yet."""
    return {
        str(name): int(size)
        for name, size in connection.execute(
            f"SELECT n.nspname || '.' || c.relname, pg_relation_size(c.oid) FROM pg_class c "
            f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'i') "
            f"AND {_SYSTEM_SCHEMAS}"
        )
    }


def _timestamp_columns(connection: psycopg.Connection[Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for table, column in connection.execute(
        f"SELECT n.nspname || '.' || c.relname, a.attname FROM pg_attribute a "
        f"JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
        f"AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype) AND {_SYSTEM_SCHEMAS} "
        f"ORDER BY 1, a.attnum"
    ):
        found.setdefault(str(table), []).append(str(column))
    return found


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def compare_rows(manifest: dict[str, Any], restored: dict[str, int]) -> list[Finding]:
    """One finding per table of the manifest: present, with exactly its recorded rows."""
    findings = []
    for name, facts in sorted(manifest_rows(manifest).items()):
        got = restored.get(name)
        expected = f"{facts.rows:,}" if facts.exact else f"~{facts.rows:,} (estimate)"
        if got is None:
            problem = f"{name}: {expected} rows in the manifest, table missing from the restore"
            findings.append(Finding(f"rows {name}", False, expected, "missing", problem))
        elif facts.exact and got != facts.rows:
            problem = f"{name}: {facts.rows:,} rows in the manifest, {got:,} restored"
            findings.append(Finding(f"rows {name}", False, expected, f"{got:,}", problem))
        else:
            findings.append(Finding(f"rows {name}", True, expected, f"{got:,}"))
    extra = sorted(set(restored) - set(manifest_rows(manifest)))
    if extra:
        problem = f"tables: restored tables not in the manifest: {', '.join(extra)}"
        findings.append(Finding("tables", False, "only the manifest's tables", problem, problem))
    return findings


def compare_set(
    what: str, recorded: Sequence[str], restored: Sequence[str], *, words: int
) -> Finding:
    """Indexes or constraints, by full definition: a changed definition shows as one
    missing and one unexpected. Messages name each by its first `words` words
    (`schema.index`, or `schema.table constraint`)."""
    missing = sorted(set(recorded) - set(restored))
    extra = sorted(set(restored) - set(recorded))
    expected, observed = f"{len(recorded)} as in the manifest", f"{len(restored)} restored"
    if not missing and not extra:
        return Finding(what, True, expected, observed)
    parts = [f"{what}: {len(recorded)} in the manifest, {len(restored)} restored"]
    parts += [f"missing {_names(missing, words)}"] if missing else []
    parts += [f"unexpected {_names(extra, words)}"] if extra else []
    return Finding(what, False, expected, observed, "; ".join(parts))


def _names(definitions: Sequence[str], words: int) -> str:
    return ", ".join(" ".join(d.split(" ")[:words]) for d in definitions)


def valid_indexes(connection: psycopg.Connection[Any]) -> Finding:
    invalid = [
        str(row[0])
        for row in connection.execute(
            f"SELECT n.nspname || '.' || c.relname FROM pg_index i "
            f"JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n "
            f"ON n.oid = c.relnamespace WHERE NOT i.indisvalid AND {_SYSTEM_SCHEMAS} ORDER BY 1"
        )
    ]
    if not invalid:
        return Finding("valid_indexes", True, "no invalid index", "all valid")
    names = ", ".join(invalid)
    return Finding(
        "valid_indexes",
        False,
        "no invalid index",
        f"invalid: {names}",
        f"valid_indexes: {len(invalid)} invalid index(es) in the restore (pg_index.indisvalid "
        f"false): {names}",
    )


def compare_fingerprint(manifest: dict[str, Any], fingerprint: str, version_num: int) -> Finding:
    """Equal on the same major version; across majors the catalog spells defaults and
    types differently, so only the other checks apply."""
    expected = str(manifest["schema_fingerprint"])
    backed_up = int(manifest["server_version_num"]) // 10000
    if backed_up != version_num // 10000:
        observed = (
            f"not compared: backed up on PostgreSQL {backed_up}, restored on {version_num // 10000}"
        )
        return Finding("schema_fingerprint", True, expected, observed)
    if fingerprint == expected:
        return Finding("schema_fingerprint", True, expected, fingerprint)
    problem = f"schema_fingerprint: {expected} in the manifest, {fingerprint} restored"
    return Finding("schema_fingerprint", False, expected, fingerprint, problem)


def install_amcheck(connection: psycopg.Connection[Any]) -> str | None:
    """None once amcheck is there, else why it is not (the check is then skipped)."""
    try:
        connection.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
    except psycopg.Error as exc:
        return f"skipped: amcheck unavailable ({_first(exc)})"
    return None


def btree_indexes(connection: psycopg.Connection[Any]) -> list[tuple[str, int]]:
    """(name, oid) of every B-tree index bt_index_check can read."""
    return [
        (str(name), int(oid))
        for name, oid in connection.execute(
            f"SELECT n.nspname || '.' || c.relname, c.oid FROM pg_index i "
            f"JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.amname = 'btree' "
            f"AND i.indisvalid AND i.indisready AND c.relpersistence <> 't' "
            f"AND {_SYSTEM_SCHEMAS} ORDER BY 1"
        )
    ]


def check_index(connection: psycopg.Connection[Any], name: str, oid: int) -> IndexCheck:
    started = time.monotonic()
    try:
        connection.execute("SELECT bt_index_check(%s::oid::regclass)", (oid,))
        problem = None
    except psycopg.errors.QueryCanceled:
        raise
    except psycopg.Error as exc:
        problem = f"{name} ({_first(exc)})"
    return IndexCheck(name, problem, time.monotonic() - started)


def check_btrees(connection: psycopg.Connection[Any]) -> Finding:
    """`bt_index_check` on every valid B-tree index, when amcheck can be installed."""
    skipped = install_amcheck(connection)
    indexes = btree_indexes(connection) if skipped is None else []
    return btree_finding([check_index(connection, n, oid) for n, oid in indexes], skipped)


def btree_finding(checks: Sequence[IndexCheck], skipped: str | None) -> Finding:
    expected = "bt_index_check passes on every B-tree index"
    if skipped is not None:
        return Finding("amcheck", True, expected, skipped)
    broken = [c.problem for c in checks if c.problem is not None]
    if not broken:
        return Finding("amcheck", True, expected, f"{len(checks)} indexes checked")
    problem = f"amcheck: {len(broken)} of {len(checks)} B-tree indexes corrupt: " + "; ".join(
        sorted(broken)
    )
    return Finding("amcheck", False, expected, f"{len(broken)} corrupt", problem)


def freshness(newest: datetime | None, taken: datetime) -> Finding:
    """The real recovery point: informative, since the backup's age is judged elsewhere."""
    expected = f"data up to the snapshot at {taken.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if newest is None:
        return Finding("recovery_point", True, expected, "no timestamp column holds data")
    lag = max(taken - newest, timedelta())
    observed = f"newest row {newest:%Y-%m-%d %H:%M:%S} UTC, {format_duration(lag)} before it"
    return Finding("recovery_point", True, expected, observed)


# --- configured SQL checks -------------------------------------------------------------------


def sql_checks(
    checks: Sequence[SqlCheck], database: str, connection: psycopg.Connection[Any]
) -> list[Finding]:
    """Each configured check for this database: its first value must be true (or non-zero)."""
    return [_sql_check(c, connection) for c in checks if c.database in (None, database)]


def _sql_check(check: SqlCheck, connection: psycopg.Connection[Any]) -> Finding:
    name = f"check {check.name}"
    try:
        row = connection.execute(check.sql.encode()).fetchone()
    except psycopg.errors.QueryCanceled:
        raise
    except psycopg.Error as exc:
        failed = f"{name}: the query failed: {_first(exc)}"
        return Finding(name, False, "true", f"error: {_first(exc)}", failed)
    value = row[0] if row else None
    ok = bool(value)
    observed = "no rows" if row is None else repr(value)
    problem = None if ok else f"{name}: expected true, got {observed} ({check.sql})"
    return Finding(name, ok, "true", observed, problem)


# --- the record ------------------------------------------------------------------------------


def record(store: Store, result: Result, flow_run_id: str | None) -> None:
    recovery = result.recovery_point
    with store.session() as session:
        session.add(
            RestoreTest(
                backup_id=result.backup_id,
                database=result.database,
                started_at=result.started_at,
                finished_at=result.finished_at,
                duration_s=_round(result.duration_s),
                status=result.status,
                rto_met=result.rto_met,
                recovery_point=recovery,
                checks=[f.as_json() for f in result.findings],
                error="\n".join(result.problems()) or None,
                flow_run_id=flow_run_id,
            )
        )


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)
