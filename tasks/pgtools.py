"""pg_dump and pg_restore as vigil runs them: dump a snapshot straight into storage, read a
stored archive's table of contents, restore an archive and check it against its manifest.

Passwords never reach a command line (where `ps` shows them): they go to the child in
PGPASSWORD, and the connection string on the command line has none. stderr is kept for
the error message, which names the database and where it was sought, password redacted.

The restore machinery (`restore_backup`) is plain code, usable without Prefect: the real
recovery (`vigil restore`), the weekly restore test and the DR drill all call it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tasks.storage import Storage, StorageError, download, read_bytes, upload
from vigil.backup import (
    CONNECT_TIMEOUT_S,
    BackupError,
    Check,
    Keys,
    Observed,
    SnapshotFacts,
    StoredFile,
    check_manifest,
    compare_restore,
    describe_url,
    read_restored,
    restored_fingerprint,
    retry_if_transient,
)
from vigil.config import Database
from vigil.redact import redact

CHUNK = 1 << 20
# A wider pipe lets pg_dump run ahead while vigil hashes and writes; reading it in big
# batches (pausing briefly after a small read) costs far less CPU than waking for every
# few KB pg_dump writes, which matters on a 2-core machine where pg_dump is the bottleneck.
PIPE_SIZE = 1 << 20
SMALL_READ = PIPE_SIZE // 4
PAUSE_S = 0.002
F_SETPIPE_SZ = 1031  # Linux
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
# pg_dump waits this long for a table lock (a running migration), then fails and retries.
LOCK_WAIT = "5min"
LIST_TIMEOUT_S = 300
_TRANSIENT = re.compile(
    r"could not connect|connection refused|timeout expired|timed out|server closed the "
    r"connection|terminating connection|starting up|shutting down|could not receive data|"
    r"SSL SYSCALL|lock timeout|could not obtain lock|too many clients|recovery mode",
    re.IGNORECASE,
)
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.\d+)?")


# --- the tools ---------------------------------------------------------------------------------


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} not found on PATH; install the PostgreSQL client tools (at least the "
            f"server's major version, e.g. `apt install postgresql-client-15`)"
        )
    return path


def tool_version(path: str) -> tuple[int, str]:
    """(major, full text) of `<tool> --version`, e.g. (15, '15.20')."""
    try:
        text = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackupError(f"cannot run {path} --version: {exc}") from None
    match = _VERSION.search(text)
    if match is None:
        raise BackupError(f"cannot read the version of {path} from {text.strip()!r}")
    return int(match[1]), match[0].split()[-1]


def connection_args(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment carrying it.

    Unless the URL says otherwise, connecting gives up after CONNECT_TIMEOUT_S and TCP
    keepalives notice a dead peer in about a minute, so a dropped network fails (and is
    retried) instead of hanging the backup until the kernel gives up hours later."""
    params = {**KEEPALIVES, "connect_timeout": CONNECT_TIMEOUT_S, **conninfo_to_dict(url)}
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def _tail(stream: IO[bytes], lines: int = 8) -> str:
    stream.seek(0)
    text = stream.read().decode("utf-8", errors="replace").strip()
    return redact(" | ".join(text.splitlines()[-lines:]) or "no message")


def _widen(pipe: IO[bytes]) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, PIPE_SIZE)


@contextlib.contextmanager
def _running(args: list[str], **options: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A child process that is killed if the block leaves before it exits."""
    process = subprocess.Popen(args, **options)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


# --- dump --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dumped:
    file: StoredFile
    seconds: float
    pg_dump_version: str


def dump_database(
    database: Database, facts: SnapshotFacts, compression: int, storage: Storage, key: str
) -> Dumped:
    """pg_dump of the exported snapshot, streamed into storage under `key` while hashed.

    Nothing is committed unless pg_dump exits 0: an early EOF must not pass for a dump.
    """
    tool = find_tool("pg_dump")
    major, version = tool_version(tool)
    server_major = facts.server_version_num // 10000
    if major < server_major:
        raise BackupError(
            f"pg_dump {version} at {tool} is older than the server of database "
            f"{database.name!r} (PostgreSQL {facts.server_version}); pg_dump must be at least "
            f"the server's version: install postgresql-client-{server_major}"
        )
    dsn, env = connection_args(database.url)
    args = [
        tool,
        "--format=custom",
        f"--compress={compression}",
        f"--snapshot={facts.snapshot_id}",
        f"--lock-wait-timeout={LOCK_WAIT}",
        "--no-password",
        f"--dbname={dsn}",
    ]
    started = time.monotonic()
    with (
        tempfile.TemporaryFile() as errors,
        _running(args, stdout=subprocess.PIPE, stderr=errors, env=env, bufsize=0) as process,
        upload(storage, key) as out,
    ):
        assert process.stdout is not None
        _widen(process.stdout)
        copy_pipe(process.stdout, out.write)
        code = process.wait()
        if code != 0:
            detail = _tail(errors)
            raise BackupError(
                f"pg_dump of database {database.name!r} at {describe_url(database.url)} "
                f"failed (exit {code}): {detail}",
                retryable=bool(_TRANSIENT.search(detail)),
            )
        stored = out.commit()
    return Dumped(stored, time.monotonic() - started, version)


def copy_pipe(source: IO[bytes], write: Callable[[memoryview], object]) -> None:
    """Move everything from an unbuffered pipe to `write`, in batches of up to CHUNK."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while count := source.readinto(view):  # type: ignore[attr-defined]
        write(view[:count])
        if count < SMALL_READ:
            time.sleep(PAUSE_S)


# --- reading an archive back -------------------------------------------------------------------


def read_back(storage: Storage, keys: Keys) -> Observed:
    """Read the stored archive once: hash all of it and feed pg_restore --list its start,
    so the checksum and the table of contents both describe the object as stored."""
    manifest_size = storage.size(keys.manifest)
    archive_size = storage.size(keys.config_archive)
    if storage.size(keys.dump) is None:
        return Observed(False, manifest_size=manifest_size, config_archive_size=archive_size)
    tool = find_tool("pg_restore")
    digest = hashlib.sha256()
    size = 0
    with (
        tempfile.TemporaryFile() as listing,
        tempfile.TemporaryFile() as errors,
        _running([tool, "--list"], stdin=subprocess.PIPE, stdout=listing, stderr=errors) as process,
    ):
        assert process.stdin is not None
        feeding = True
        for chunk in storage.read(keys.dump):
            digest.update(chunk)
            size += len(chunk)
            if feeding:
                feeding = _feed(process.stdin, chunk)
        _feed(process.stdin, None)
        try:
            code = process.wait(timeout=LIST_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BackupError(
                f"pg_restore --list of {storage.location(keys.dump)} did not finish in "
                f"{LIST_TIMEOUT_S}s",
                retryable=True,
            ) from None
        listing.seek(0)
        toc = listing.read().decode("utf-8", errors="replace") if code == 0 else None
        problem = None if code == 0 else f"pg_restore --list failed (exit {code}): {_tail(errors)}"
    return Observed(True, size, digest.hexdigest(), toc, problem, manifest_size, archive_size)


def _feed(stdin: IO[bytes], chunk: bytes | None) -> bool:
    """Write to pg_restore until it stops reading (it has the TOC); None closes its input."""
    try:
        if chunk is None:
            stdin.close()
        else:
            stdin.write(chunk)
    except BrokenPipeError:
        return False
    return True


# --- restore -----------------------------------------------------------------------------------


class RestoreRefused(BackupError):
    """The restore did not start because going ahead could harm data or mislead."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass
class RestoreReport:
    backup_id: str
    database: str
    target: str
    created_at: str
    size_bytes: int
    sha256: str
    jobs: int
    download_s: float = 0.0
    restore_s: float = 0.0
    total_s: float = 0.0
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def mismatches(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def load_manifest(storage: Storage, backup: str) -> dict[str, Any]:
    """The manifest stored next to the dump; a backup without one is incomplete."""
    key = Keys.of(backup).manifest
    try:
        document = json.loads(read_bytes(storage, key))
    except StorageError as exc:
        raise BackupError(
            f"{backup}: no readable manifest at {storage.location(key)} ({exc}); a backup "
            "without its manifest is incomplete and cannot be restored with checks"
        ) from None
    except ValueError:
        raise BackupError(
            f"{backup}: the manifest at {storage.location(key)} is not JSON"
        ) from None
    return check_manifest(document, backup)


def restore_backup(
    storage: Storage,
    manifest: dict[str, Any],
    target_url: str,
    *,
    clean: bool = False,
    jobs: int = 2,
    no_owner: bool = False,
    expected_sha256: str | None = None,
    workdir: Path | None = None,
) -> RestoreReport:
    """Fetch, prove the checksum, pg_restore, and compare with the manifest.

    Refuses (RestoreRefused) a non-empty target unless `clean`, and an archive whose
    checksum differs from the manifest's (or the catalog's, `expected_sha256`).
    """
    started = time.monotonic()
    dump = manifest["dump"]
    target = describe_url(target_url)
    if expected_sha256 and expected_sha256 != dump["sha256"]:
        raise RestoreRefused(
            f"{manifest['backup_id']}: the manifest's checksum {dump['sha256']} differs from "
            f"the catalog's {expected_sha256}; the manifest was altered, not restoring"
        )
    allowed = check_target(target_url, clean=clean, jobs=jobs)
    report = RestoreReport(
        backup_id=manifest["backup_id"],
        database=manifest["database"],
        target=target,
        created_at=manifest["created_at"],
        size_bytes=int(dump["size_bytes"]),
        sha256=dump["sha256"],
        jobs=allowed,
    )
    with tempfile.TemporaryDirectory(prefix="vigil-restore-", dir=workdir) as folder:
        archive = Path(folder) / "backup.dump"
        fetched = download(storage, dump["key"], archive)
        report.download_s = time.monotonic() - started
        if (fetched.sha256, fetched.size_bytes) != (dump["sha256"], dump["size_bytes"]):
            raise RestoreRefused(
                f"{manifest['backup_id']}: the stored archive does not match its manifest "
                f"(sha256 {fetched.sha256}, {fetched.size_bytes} bytes; expected {dump['sha256']}, "
                f"{dump['size_bytes']} bytes): it is corrupted or truncated, not restoring"
            )
        report.restore_s = restore_archive(
            archive, target_url, jobs=allowed, clean=clean, no_owner=no_owner
        )
    report.checks = compare_target(manifest, target_url)
    report.total_s = time.monotonic() - started
    return report


def check_target(target_url: str, *, clean: bool, jobs: int) -> int:
    """Refuse a target holding objects (unless `clean`); return how many jobs it can take."""
    with _connect(target_url) as connection:
        found = [
            str(row[0])
            for row in connection.execute(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname !~ '^pg_' ORDER BY 1 LIMIT 6"
            )
        ]
        free = connection.execute(
            "SELECT current_setting('max_connections')::int "
            "- current_setting('superuser_reserved_connections')::int "
            "- (SELECT count(*) FROM pg_stat_activity)"
        ).fetchone()
    if found and not clean:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise RestoreRefused(
            f"the target {describe_url(target_url)} is not empty ({shown}); restore into an "
            "empty database, or pass --clean to drop and recreate the archive's objects there",
            usage=True,
        )
    return max(1, min(jobs, int(free[0]) if free else 1))


def restore_archive(
    archive: Path, target_url: str, *, jobs: int, clean: bool, no_owner: bool
) -> float:
    """pg_restore, parallel; stops at the first error so a partial restore cannot pass."""
    tool = find_tool("pg_restore")
    dsn, env = connection_args(target_url)
    args = [tool, "--exit-on-error", f"--jobs={jobs}", "--no-password", f"--dbname={dsn}"]
    args += ["--clean", "--if-exists"] if clean else []
    args += ["--no-owner", "--no-privileges"] if no_owner else []
    started = time.monotonic()
    with tempfile.TemporaryFile() as errors:
        code = subprocess.run([*args, str(archive)], stderr=errors, env=env, check=False).returncode
        if code != 0:
            raise BackupError(
                f"pg_restore into {describe_url(target_url)} failed (exit {code}): {_tail(errors)}"
                " (if roles are missing on this server, try --no-owner)"
            )
    return time.monotonic() - started


def compare_target(manifest: dict[str, Any], target_url: str) -> list[Check]:
    """Count every table of the manifest in the restored database and compare."""
    with _connect(target_url) as connection:
        counts = read_restored(connection, [t["name"] for t in manifest["tables"]])
        fingerprint, version = restored_fingerprint(connection)
    return compare_restore(manifest, counts, fingerprint, version)


def _connect(url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
    except psycopg.Error as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackupError(f"cannot connect to {describe_url(url)}: {redact(text)}") from None


# --- Prefect tasks ------------------------------------------------------------------------------


@task(
    name="dump database",
    task_run_name="dump {database.name}",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def dump(
    database: Database, facts: SnapshotFacts, compression: int, storage: Storage, key: str
) -> Dumped:
    """Each attempt dumps the same snapshot again, so a retry after an outage describes the
    same instant as the recorded counts."""
    for leftover in storage.clean_incomplete(key.rsplit("/", 1)[0] + "/"):
        get_run_logger().warning("removed %s, left unfinished by an earlier attempt", leftover)
    return dump_database(database, facts, compression, storage, key)


@task(
    name="read back",
    task_run_name="read back {keys.dump}",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def read_stored(storage: Storage, keys: Keys) -> Observed:
    return read_back(storage, keys)
