"""Daily backups as the operator thinks of them: what one backup is, what it must prove before
anyone may rely on it, and which backups to keep.

A backup is a `pg_dump --format=custom` archive plus a JSON manifest written last (a dump
without its manifest is incomplete by definition) and, when configured, an archive of config
files. The manifest describes the database as of the dump's own snapshot: pg_dump imports
the snapshot that `open_snapshot` exported, so the recorded row counts and the archive can
be compared exactly, at verification time and after every restore.

Everything here is plain code: PostgreSQL reads with psycopg, decisions as pure functions
(verification checks, the retention plan), and the catalog in vigil's store. Moving bytes
(pg_dump, pg_restore, object storage) lives in `tasks.pgtools` and `tasks.storage`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import select, update

from vigil import __version__
from vigil.alert import Alert
from vigil.config import Database, Retention
from vigil.durations import format_duration, format_size
from vigil.redact import redact
from vigil.store import Backup, BackupDeletion, BackupVerification, Store

MANIFEST_FORMAT = "vigil-backup-manifest"
MANIFEST_VERSION = 1
ID_TIME = "%Y%m%dT%H%M%SZ"
_ID = re.compile(r"^(?P<database>[A-Za-z0-9_.\-]+)-(?P<stamp>\d{8}T\d{6}Z)$")
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
LOCKED = "locked"  # an outcome only: another run held the database's lock
# Unverified backups older than the newest verified one stay this long, for a look at why.
UNVERIFIED_GRACE = timedelta(days=7)
CONNECT_TIMEOUT_S = 10
# Tables of these schemas are PostgreSQL's own; pg_dump leaves them out too.
_SYSTEM_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"
# Members of an extension are created by CREATE EXTENSION on restore, not by the dump.
_NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "AND d.objid = c.oid AND d.deptype = 'e')"
)


class BackupError(Exception):
    """A backup step that failed; `retryable` is True when trying again may help (a network
    blip, a restarting server), False when only a person can fix it (a wrong password)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(redact(message))
        self.retryable = retryable


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """A Prefect `retry_condition_fn`: retry only failures that say trying again can help."""
    try:
        state.result()
    except BackupError as exc:
        return exc.retryable
    except Exception:
        return False
    return False


# --- identity and layout ---------------------------------------------------------------------


def backup_id(database: str, at: datetime) -> str:
    """`<database>-<UTC timestamp>`: sorts by time and names its database."""
    return f"{database}-{at.astimezone(UTC).strftime(ID_TIME)}"


def parse_backup_id(value: str) -> tuple[str, datetime]:
    """(database, created_at) from an id; ValueError says what an id looks like."""
    match = _ID.match(value)
    if not match:
        raise ValueError(
            f"{value!r} is not a backup id (they look like main-20240501T020000Z; "
            "`vigil backups` lists them)"
        )
    return match["database"], datetime.strptime(match["stamp"], ID_TIME).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Keys:
    """Where one backup's objects live, relative to the storage root. Retention deletes
    everything that starts with `prefix`, so the three always go together."""

    dump: str
    manifest: str
    config_archive: str

    @property
    def prefix(self) -> str:
        return self.dump.removesuffix("dump")

    @classmethod
    def of(cls, backup: str) -> Keys:
        database, _ = parse_backup_id(backup)
        base = f"{database}/{backup}."
        return cls(base + "dump", base + "manifest.json", base + "config.tar.gz")


# --- the snapshot and its facts --------------------------------------------------------------


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


class HeldSnapshot:
    """An open REPEATABLE READ transaction whose exported snapshot pg_dump imports.

    The snapshot exists only while this transaction is open, so hold it until pg_dump has
    finished (retries included), then close it. Exact row counts are taken in the same
    transaction, so in the same snapshot, while pg_dump runs: on a big database counting
    is a scan of every table, which would otherwise come on top of the dump's own.
    """

    def __init__(
        self, connection: psycopg.Connection[Any], facts: SnapshotFacts, database: Database
    ) -> None:
        self.connection = connection
        self.facts = facts
        self.name = database.name
        self.exact = database.exact_counts
        self._counter: threading.Thread | None = None
        self._counts: dict[str, int] = {}
        self._problem: BackupError | None = None

    def start_counting(self) -> None:
        """Count every table exactly, in the background (only for exact_counts databases)."""
        if self.exact and self._counter is None:
            self._counter = threading.Thread(target=self._count, name="vigil-count", daemon=True)
            self._counter.start()

    def counted(self) -> SnapshotFacts:
        """The facts with exact counts, once counting is done (planner estimates otherwise)."""
        if self._counter is None:
            return self.facts
        self._counter.join()
        if self._problem is not None:
            raise self._problem
        tables = tuple(
            TableFacts(t.name, self._counts[t.name], exact=True) for t in self.facts.tables
        )
        return replace(self.facts, tables=tables)

    def _count(self) -> None:
        try:
            names = [tuple(t.name.split(".", 1)) for t in self.facts.tables]
            self._counts = count_rows(self.connection, [(s, t) for s, t in names])
        except psycopg.errors.QueryCanceled:
            self._problem = BackupError(
                f"{self.name}: counting rows hit the server's statement_timeout; set "
                "exact_counts: false for this database to use planner estimates"
            )
        except psycopg.Error as exc:
            self._problem = BackupError(f"{self.name}: counting rows failed: {_first_line(exc)}")

    def close(self) -> None:
        if self._counter is not None and self._counter.is_alive():
            self.connection.cancel_safe()
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
            f"{database.name}: reading the snapshot failed: {_first_line(exc)}"
        ) from None
    return HeldSnapshot(connection, facts, database)


def connect_error(database: Database, exc: psycopg.Error) -> BackupError:
    """Name the database and where it was sought; retry only what may heal by itself."""
    reason = _first_line(exc)
    permanent = any(
        words in reason
        for words in ("authentication failed", "does not exist", "no password supplied", "denied")
    )
    return BackupError(
        f"cannot connect to database {database.name!r} at {describe_url(database.url)}: {reason}",
        retryable=not permanent,
    )


def describe_url(url: str) -> str:
    """`user@host:port/dbname` without the password, for messages about a database."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    user = f"{params['user']}@" if params.get("user") else ""
    return redact(f"{user}{host}:{port}/{params.get('dbname') or ''}")


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
        f"AND {_SYSTEM_SCHEMAS} AND {_NOT_EXTENSION}",
    )
    constraints = _strings(
        connection,
        f"SELECT n.nspname || '.' || c.relname || ' ' || k.conname || ' ' || "
        f"pg_get_constraintdef(k.oid) FROM pg_constraint k "
        f"JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE {_SYSTEM_SCHEMAS} AND {_NOT_EXTENSION}",
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
    )


def _tables(connection: psycopg.Connection[Any]) -> tuple[TableFacts, ...]:
    rows = connection.execute(
        f"SELECT n.nspname, c.relname, greatest(c.reltuples, 0)::bigint FROM pg_class c "
        f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
        f"AND {_SYSTEM_SCHEMAS} AND {_NOT_EXTENSION} ORDER BY 1, 2"
    ).fetchall()
    return tuple(TableFacts(f"{s}.{t}", int(n), exact=False) for s, t, n in rows)


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
        counts[f"{schema}.{table}"] = int(row[0]) if row else 0
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
        f"AND {_SYSTEM_SCHEMAS} AND {_NOT_EXTENSION}",
    )
    digest = hashlib.sha256()
    for line in [*columns, *indexes, *constraints]:
        digest.update(line.encode() + b"\n")
    return "sha256:" + digest.hexdigest()


def _strings(connection: psycopg.Connection[Any], query: str) -> tuple[str, ...]:
    return tuple(sorted(str(row[0]) for row in connection.execute(query)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


# --- the manifest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    """One object as written: where, how big, and its SHA-256."""

    key: str
    location: str
    size_bytes: int
    sha256: str


def build_manifest(
    *,
    backup: str,
    database: str,
    facts: SnapshotFacts,
    dump: StoredFile,
    compression: int,
    pg_dump_version: str,
    config_archive: StoredFile | None,
    config_files: Sequence[str],
    unreadable: Sequence[str],
    started_at: datetime,
    dump_seconds: float,
) -> dict[str, Any]:
    """Everything a restore needs to check itself against, as JSON-ready data."""
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "backup_id": backup,
        "database": database,
        "created_at": started_at.isoformat(),
        "completed_at": datetime.now(UTC).isoformat(),
        "vigil_version": __version__,
        "pg_dump_version": pg_dump_version,
        "server_version": facts.server_version,
        "server_version_num": facts.server_version_num,
        "database_size": facts.database_size,
        "snapshot": {"id": facts.snapshot_id, "taken_at": facts.taken_at.isoformat()},
        "tables": [asdict(t) for t in facts.tables],
        "total_rows": facts.total_rows,
        "indexes": list(facts.indexes),
        "constraints": list(facts.constraints),
        "schema_fingerprint": facts.fingerprint,
        "dump": {"format": "custom", "compression": compression, **asdict(dump)},
        "config_archive": (
            {**asdict(config_archive), "files": list(config_files), "unreadable": list(unreadable)}
            if config_archive
            else None
        ),
        "timings": {"dump_s": round(dump_seconds, 3)},
    }


def check_manifest(document: Any, backup: str) -> dict[str, Any]:
    """The manifest of `backup`, or BackupError saying why it cannot be trusted."""
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise BackupError(f"{backup}: the manifest is not a vigil backup manifest")
    if document.get("version") != MANIFEST_VERSION:
        raise BackupError(
            f"{backup}: manifest version {document.get('version')!r} is not one this vigil "
            f"({__version__}) reads; use the vigil version that wrote it"
        )
    if document.get("backup_id") != backup:
        raise BackupError(f"{backup}: the manifest describes {document.get('backup_id')!r}")
    return document


def manifest_rows(manifest: dict[str, Any]) -> dict[str, TableFacts]:
    return {
        t["name"]: TableFacts(t["name"], int(t["rows"]), bool(t["exact"]))
        for t in manifest["tables"]
    }


# --- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One verified property, kept with what was expected and what was seen."""

    name: str
    passed: bool
    expected: str
    observed: str

    def line(self) -> str:
        mark = "ok" if self.passed else "FAILED"
        return f"{self.name}: {mark} (expected {self.expected}, observed {self.observed})"


@dataclass(frozen=True)
class Observed:
    """What reading the stored backup back showed; `error` when it could not be read."""

    exists: bool
    size_bytes: int | None = None
    sha256: str | None = None
    toc: str | None = None
    toc_error: str | None = None
    manifest_size: int | None = None
    config_archive_size: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Verification:
    backup_id: str
    verified_at: datetime
    created_at: datetime
    size_bytes: int | None
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        if self.passed:
            return f"{len(self.checks)} checks passed"
        return "; ".join(c.line() for c in self.failures)


def verify(
    manifest: dict[str, Any],
    observed: Observed,
    database: Database,
    *,
    previous_size: int | None,
    max_age: timedelta,
    now: datetime,
) -> Verification:
    """Judge a stored backup against its manifest and the database's promises."""
    dump = manifest["dump"]
    created = datetime.fromisoformat(manifest["created_at"])
    rows = manifest_rows(manifest)
    found = "found" if observed.exists else "missing"
    checks = [
        Check("exists", observed.exists, dump["location"], observed.error or found),
        Check(
            "manifest",
            bool(observed.manifest_size),
            "stored next to the dump",
            _seen(observed.manifest_size),
        ),
        *_config_archive(manifest.get("config_archive"), observed.config_archive_size),
        _equal("size", dump["size_bytes"], observed.size_bytes),
        _equal("checksum", dump["sha256"], observed.sha256),
        _min_size(observed.size_bytes, database.min_backup_size),
        _no_shrink(observed.size_bytes, previous_size),
        *_contents(observed, database, rows),
        *_min_rows(database, rows),
        _fresh(now - created, max_age),
    ]
    return Verification(manifest["backup_id"], now, created, observed.size_bytes, tuple(checks))


def _seen(size: int | None) -> str:
    return "missing" if size is None else f"{size} bytes"


def _config_archive(archive: dict[str, Any] | None, size: int | None) -> list[Check]:
    """The config files went along, all of them, and their archive is stored whole."""
    if archive is None:
        return []
    unreadable = archive.get("unreadable") or []
    return [
        _equal("config_archive", archive["size_bytes"], size),
        Check(
            "config_files",
            not unreadable,
            f"all {len(archive['files'])} config files archived",
            "; ".join(unreadable) or "all archived",
        ),
    ]


def _equal(name: str, expected: Any, observed: Any) -> Check:
    return Check(
        name,
        expected == observed,
        str(expected),
        "unreadable" if observed is None else str(observed),
    )


def _min_size(size: int | None, floor: int) -> Check:
    observed = format_size(size) if size is not None else "unreadable"
    return Check(
        "min_backup_size", size is not None and size >= floor, f">= {format_size(floor)}", observed
    )


def _no_shrink(size: int | None, previous: int | None) -> Check:
    """A backup under half the previous one usually means lost data, not good compression."""
    if previous is None:
        return Check("no_sudden_shrink", True, "no previous backup to compare", "first backup")
    observed = format_size(size) if size is not None else "unreadable"
    floor = previous / 2
    return Check(
        "no_sudden_shrink",
        size is not None and size >= floor,
        f">= {format_size(int(floor))} (half the previous {format_size(previous)})",
        observed,
    )


def _contents(observed: Observed, database: Database, rows: dict[str, TableFacts]) -> list[Check]:
    """Every table of the snapshot, and each critical table with its data, in the archive."""
    if observed.toc is None:
        reason = observed.toc_error or "the archive could not be read"
        return [Check("archive_readable", False, "pg_restore --list succeeds", reason)]
    listed = archive_tables(observed.toc)
    checks = [Check("archive_readable", True, "pg_restore --list succeeds", "ok")]
    missing = sorted(set(rows) - listed["TABLE"])
    checks.append(
        Check(
            "tables_in_archive",
            not missing,
            f"all {len(rows)} tables of the snapshot",
            f"missing {', '.join(missing)}" if missing else f"{len(rows)} tables",
        )
    )
    for wanted in database.critical_tables:
        name = resolve_table(wanted, listed["TABLE DATA"])
        checks.append(
            Check(
                f"critical_table {wanted}",
                name is not None,
                "table and its data in the archive",
                f"{name} present" if name else "absent",
            )
        )
    return checks


def _min_rows(database: Database, rows: dict[str, TableFacts]) -> list[Check]:
    checks = []
    for wanted, floor in sorted(database.min_rows.items()):
        name = resolve_table(wanted, set(rows))
        facts = rows.get(name) if name else None
        if facts is None:
            observed = "table not found"
        else:
            observed = f"{facts.rows}" if facts.exact else f"~{facts.rows} (planner estimate)"
        passed = facts is not None and facts.rows >= floor
        checks.append(Check(f"min_rows {wanted}", passed, f">= {floor} rows", observed))
    return checks


def _fresh(age: timedelta, max_age: timedelta) -> Check:
    return Check(
        "max_age",
        age <= max_age,
        f"<= {format_duration(max_age)}",
        format_duration(max(age, timedelta())),
    )


def archive_tables(toc: str) -> dict[str, set[str]]:
    """Schema-qualified names of the TABLE and TABLE DATA entries of a `pg_restore --list`."""
    found: dict[str, set[str]] = {"TABLE": set(), "TABLE DATA": set()}
    for line in toc.splitlines():
        if line.startswith(";"):
            continue
        for kind in ("TABLE DATA", "TABLE"):
            marker = f" {kind} "
            if marker in line:
                # "<id>; <oid> <oid> TABLE DATA <schema> <name> <owner>"
                parts = line.split(marker, 1)[1].rsplit(" ", 1)[0].split(" ", 1)
                if len(parts) == 2:
                    found[kind].add(f"{parts[0]}.{parts[1]}")
                break
    return found


def resolve_table(wanted: str, names: Iterable[str]) -> str | None:
    """`schema.table` as is; a bare name is `public.<name>`, else the one schema having it."""
    names = set(names)
    if "." in wanted:
        return wanted if wanted in names else None
    if f"public.{wanted}" in names:
        return f"public.{wanted}"
    matches = [n for n in names if n.split(".", 1)[1] == wanted]
    return matches[0] if len(matches) == 1 else None


# --- comparing a restored database with the manifest -----------------------------------------


def compare_restore(
    manifest: dict[str, Any], restored: dict[str, int], fingerprint: str, server_version_num: int
) -> list[Check]:
    """Row counts per table, and the schema, against what the manifest recorded."""
    checks = []
    for name, facts in sorted(manifest_rows(manifest).items()):
        got = restored.get(name)
        observed = "table missing" if got is None else str(got)
        if facts.exact:
            checks.append(Check(f"rows {name}", got == facts.rows, str(facts.rows), observed))
        else:
            expected = f"table present (~{facts.rows} rows estimated at backup)"
            checks.append(Check(f"rows {name}", got is not None, expected, observed))
    backed_up_major = int(manifest["server_version_num"]) // 10000
    if backed_up_major == server_version_num // 10000:
        expected = manifest["schema_fingerprint"]
        checks.append(Check("schema_fingerprint", fingerprint == expected, expected, fingerprint))
    return checks


def read_restored(connection: psycopg.Connection[Any], tables: Iterable[str]) -> dict[str, int]:
    """Exact counts of the manifest's tables that exist in the restored database."""
    present = {
        f"{s}.{t}"
        for s, t in connection.execute(
            f"SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
            f"ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND {_SYSTEM_SCHEMAS}"
        )
    }
    wanted = [tuple(name.split(".", 1)) for name in tables if name in present]
    return count_rows(connection, [(s, t) for s, t in wanted])


def restored_fingerprint(connection: psycopg.Connection[Any]) -> tuple[str, int]:
    """The restored schema's fingerprint and the server's version number."""
    facts = read_facts(connection, "", datetime.now(UTC))
    return facts.fingerprint, facts.server_version_num


# --- retention -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One catalogued backup, as retention sees it."""

    id: str
    created_at: datetime
    status: str
    verified: bool


@dataclass(frozen=True)
class Decision:
    backup_id: str
    created_at: datetime
    keep: bool
    reasons: tuple[str, ...]

    def line(self) -> str:
        verb = "keep  " if self.keep else "delete"
        return f"{verb} {self.backup_id}: {', '.join(self.reasons)}"


_PERIODS = (
    ("keep_daily", "daily", lambda at: at.strftime("%Y-%m-%d")),
    ("keep_weekly", "weekly", lambda at: "{}-W{:02d}".format(*at.isocalendar()[:2])),
    ("keep_monthly", "monthly", lambda at: at.strftime("%Y-%m")),
)


def plan_retention(
    backups: Sequence[Candidate], retention: Retention, now: datetime
) -> list[Decision]:
    """Grandfather-father-son over verified backups, newest first.

    Each rule keeps the newest verified backup of each of its N most recent periods (UTC
    days, ISO weeks, months) that have one, so a gap in the backups never shortens history.
    Unverified and failed backups fill no bucket; they stay while newer than the newest
    verified backup or younger than UNVERIFIED_GRACE, then go. A running backup is never
    touched, and the newest verified backup is kept whatever the rules say.
    """
    ordered = sorted(backups, key=lambda b: b.created_at, reverse=True)
    verified = [b for b in ordered if b.verified and b.status == SUCCEEDED]
    reasons: dict[str, list[str]] = {b.id: [] for b in ordered}
    if verified:
        reasons[verified[0].id].append("newest verified backup")
    for b in verified[: retention.keep_last]:
        reasons[b.id].append(f"keep_last {retention.keep_last}")
    for setting, label, period_of in _PERIODS:
        wanted = getattr(retention, setting)
        seen: set[str] = set()
        for b in verified:
            period = period_of(b.created_at.astimezone(UTC))
            if period not in seen and len(seen) < wanted:
                seen.add(period)
                reasons[b.id].append(f"{label} {period}")
    newest_verified = verified[0].created_at if verified else None
    for b in ordered:
        if b in verified:
            continue
        if b.status == RUNNING:
            reasons[b.id].append("still running")
        elif newest_verified is None or b.created_at > newest_verified:
            reasons[b.id].append("not verified, but newer than any verified backup")
        elif now - b.created_at < UNVERIFIED_GRACE:
            reasons[b.id].append(
                f"not verified; kept {format_duration(UNVERIFIED_GRACE)} to inspect"
            )
    rules = (
        f"keep_last={retention.keep_last}, keep_daily={retention.keep_daily}, "
        f"keep_weekly={retention.keep_weekly}, keep_monthly={retention.keep_monthly}"
    )
    return [
        Decision(b.id, b.created_at, True, tuple(reasons[b.id]))
        if reasons[b.id]
        else Decision(b.id, b.created_at, False, (_why_delete(b, rules),))
        for b in ordered
    ]


def _why_delete(backup: Candidate, rules: str) -> str:
    if backup.verified and backup.status == SUCCEEDED:
        return f"outside {rules}"
    what = "failed" if backup.status == FAILED else "not verified"
    return f"{what}, superseded by a newer verified backup"


# --- the catalog -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    database: str
    created_at: datetime
    size_bytes: int | None
    sha256: str | None
    location: str | None
    status: str
    verified: bool
    deleted: bool
    duration_s: float | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "created_at": self.created_at.isoformat()}


def catalog(store: Store, database: str | None = None) -> list[CatalogEntry]:
    """Every recorded backup, newest first, with whether retention has deleted it."""
    with store.session() as session:
        gone = set(session.scalars(select(BackupDeletion.backup_id)))
        query = select(Backup).order_by(Backup.created_at.desc())
        if database is not None:
            query = query.where(Backup.database == database)
        return [
            CatalogEntry(
                id=b.id,
                database=b.database,
                created_at=b.created_at,
                size_bytes=b.size_bytes,
                sha256=b.sha256,
                location=b.location,
                status=b.status,
                verified=b.verified,
                deleted=b.id in gone,
                duration_s=b.duration_s,
                error=b.error,
            )
            for b in session.scalars(query)
        ]


def candidates(store: Store, database: str) -> list[Candidate]:
    """The backups of `database` still in storage, for retention."""
    return [
        Candidate(e.id, e.created_at, e.status, e.verified)
        for e in catalog(store, database)
        if not e.deleted
    ]


def find_backup(store: Store, backup: str) -> Backup | None:
    with store.session() as session:
        return session.get(Backup, backup)


def find_deletion(store: Store, backup: str) -> BackupDeletion | None:
    with store.session() as session:
        query = select(BackupDeletion).where(BackupDeletion.backup_id == backup)
        return session.scalars(query.limit(1)).first()


def start_record(
    store: Store, *, backup: str, database: str, created_at: datetime, flow_run_id: str | None
) -> None:
    with store.session() as session:
        session.add(
            Backup(id=backup, database=database, created_at=created_at, flow_run_id=flow_run_id)
        )


def finish_record(store: Store, backup: str, **values: Any) -> None:
    """Set the outcome columns of a backup (status, verified, size_bytes, sha256, ...)."""
    with store.session() as session:
        session.execute(update(Backup).where(Backup.id == backup).values(**values))


def mark_interrupted(store: Store, database: str) -> list[str]:
    """Runs of `database` still marked running when its lock is free died half-way: say so."""
    with store.session() as session:
        stale = list(
            session.scalars(
                select(Backup.id).where(Backup.database == database, Backup.status == RUNNING)
            )
        )
        if stale:
            session.execute(
                update(Backup)
                .where(Backup.id.in_(stale))
                .values(status=FAILED, error="interrupted: the run stopped before it finished")
            )
    return stale


def running_backup(store: Store, database: str) -> Backup | None:
    with store.session() as session:
        query = select(Backup).where(Backup.database == database, Backup.status == RUNNING)
        return session.scalars(query.order_by(Backup.created_at.desc()).limit(1)).first()


def previous_size(store: Store, database: str, before: datetime) -> int | None:
    """Size of the newest earlier backup of `database` that completed, for the shrink check."""
    with store.session() as session:
        query = (
            select(Backup.size_bytes)
            .where(
                Backup.database == database,
                Backup.status == SUCCEEDED,
                Backup.created_at < before,
                Backup.size_bytes.is_not(None),
            )
            .order_by(Backup.created_at.desc())
            .limit(1)
        )
        return session.scalars(query).first()


def record_verification(store: Store, verification: Verification) -> None:
    age = verification.verified_at - verification.created_at
    size = verification.size_bytes
    with store.session() as session:
        session.add(
            BackupVerification(
                verified_at=verification.verified_at,
                backup_id=verification.backup_id,
                backup_age_hours=round(age.total_seconds() / 3600, 3),
                backup_size_mb=round(size / 1_000_000, 3) if size is not None else None,
                status=verification.status,
                checks_passed=sum(c.passed for c in verification.checks),
                checks_failed=len(verification.failures),
                error_details="\n".join(c.line() for c in verification.failures) or None,
                verification_details={"checks": [asdict(c) for c in verification.checks]},
            )
        )


def record_deletion(
    store: Store, *, backup: str, database: str, reason: str, location: str | None
) -> None:
    with store.session() as session:
        session.add(
            BackupDeletion(
                backup_id=backup,
                database=database,
                deleted_at=datetime.now(UTC),
                reason=reason,
                location=location,
            )
        )


@dataclass
class Outcome:
    """One database's backup in one run, for the artifact, the alert and the CLI."""

    database: str
    backup_id: str | None = None
    status: str = FAILED
    error: str | None = None
    size_bytes: int | None = None
    seconds: float | None = None
    rows: int | None = None
    location: str | None = None
    verification: Verification | None = None
    deleted: list[str] = field(default_factory=list)
    retention_error: str | None = None

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.passed

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED and self.verified

    def throughput(self) -> str:
        if not (self.size_bytes and self.seconds):
            return ""
        return f"{format_size(int(self.size_bytes / self.seconds))}/s"

    def verdict(self) -> str:
        if self.error:
            return f"FAILED: {self.error}"
        if self.verification is None:
            return "not verified"
        return (
            "verified" if self.verified else f"FAILED verification: {self.verification.summary()}"
        )

    def row(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "backup": self.backup_id or "",
            "status": self.status,
            "size": format_size(self.size_bytes) if self.size_bytes is not None else "",
            "duration": format_duration(self.seconds) if self.seconds is not None else "",
            "throughput": self.throughput(),
            "rows": self.rows if self.rows is not None else "",
            "verification": self.verdict(),
            "deleted by retention": len(self.deleted),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "backup_id": self.backup_id,
            "status": self.status,
            "verified": self.verified,
            "error": self.error,
            "size_bytes": self.size_bytes,
            "duration_s": self.seconds,
            "rows": self.rows,
            "location": self.location,
            "checks": [asdict(c) for c in self.verification.checks] if self.verification else [],
            "deleted": self.deleted,
            "retention_error": self.retention_error,
        }

    def line(self) -> str:
        what = self.backup_id or "no backup"
        facts = ", ".join(
            x
            for x in (
                format_size(self.size_bytes) if self.size_bytes is not None else "",
                format_duration(self.seconds) if self.seconds is not None else "",
                f"{self.rows} rows" if self.rows is not None else "",
            )
            if x
        )
        return (
            f"{self.database}: {what}" + (f" ({facts})" if facts else "") + f" — {self.verdict()}"
        )


# --- telling people ---------------------------------------------------------------------------

DUTY = "daily-backup"


def alerts_for(outcomes: Sequence[Outcome], storage_url: str) -> list[Alert]:
    """`critical` for each backup that failed or failed verification, `high` for a retention
    that failed, and one `low` summary of the good backups."""
    alerts = [_problem(o, storage_url) for o in outcomes if not o.ok]
    alerts += [
        Alert(
            title=f"Retention of {o.database} backups failed",
            severity="high",
            duty=DUTY,
            subject=o.database,
            summary=o.retention_error,
            details=[
                "The new backup is verified; old backups were not pruned and will be next run."
            ],
            fields={"storage": redact(storage_url)},
        )
        for o in outcomes
        if o.retention_error
    ]
    good = [o for o in outcomes if o.ok]
    if good:
        alerts.append(
            Alert(
                title="Backups verified: " + ", ".join(o.database for o in good),
                severity="low",
                duty=DUTY,
                subject=", ".join(o.database for o in good),
                summary=f"{len(good)} backup(s) written, read back and verified.",
                details=[o.line() for o in good],
                kind="info",
                fields={"storage": redact(storage_url)},
            )
        )
    return alerts


def _problem(outcome: Outcome, storage_url: str) -> Alert:
    if outcome.status == LOCKED:
        title = f"Backup of {outcome.database} did not run"
        summary = outcome.error or ""
        details = ["No backup was taken in this run."]
    elif outcome.error:
        title = f"Backup of {outcome.database} failed"
        summary = outcome.error
        details = ["Nothing was counted as a good backup; retention did not run."]
    else:
        failures = outcome.verification.failures if outcome.verification else []
        title = f"Backup of {outcome.database} failed verification"
        summary = (
            f"{len(failures)} check(s) failed; the backup is not counted as good and "
            "retention did not run."
        )
        details = [c.line() for c in failures]
    fields = {"storage": redact(outcome.location or storage_url)}
    if outcome.backup_id:
        fields["backup"] = outcome.backup_id
    return Alert(
        title=title,
        severity="critical",
        duty=DUTY,
        subject=outcome.database,
        summary=summary,
        details=details,
        fields=fields,
    )


def run_state(outcomes: Sequence[Outcome]) -> tuple[str | None, str]:
    """(problem name or None, message) for the run, worst problem first."""
    lines = "; ".join(o.line() for o in outcomes)
    if any(o.error and o.status != LOCKED for o in outcomes):
        return "BackupFailed", lines
    if any(o.status == SUCCEEDED and not o.verified for o in outcomes):
        return "VerificationFailed", lines
    if any(o.status == LOCKED for o in outcomes):
        return "BackupLocked", lines
    if any(o.retention_error for o in outcomes):
        return "RetentionFailed", lines
    return None, lines
