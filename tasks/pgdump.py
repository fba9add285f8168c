"""pg_dump as vigil runs it: dump the snapshot straight into storage while hashing it, and
read a stored archive back (its checksum and pg_restore's table of contents in one pass)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from tasks.pg import connection_args, find_tool, running, tail, tool_version
from tasks.storage import Storage, upload
from vigil.backup.facts import SnapshotFacts
from vigil.backup.identity import BackupError, Keys, describe_url, retry_if_transient
from vigil.backup.manifest import StoredFile
from vigil.backup.verification import ReadBack
from vigil.config import Database

CHUNK = 1 << 20
# A wider pipe lets pg_dump run ahead while vigil hashes and writes; reading it in big
# batches (pausing briefly after a small read) costs far less CPU than waking for every
# few KB pg_dump writes, which matters on a 2-core machine where pg_dump is the bottleneck.
PIPE_SIZE = 1 << 20
SMALL_READ = PIPE_SIZE // 4
PAUSE_S = 0.002
F_SETPIPE_SZ = 1031  # Linux
# pg_dump waits this long for a table lock (a running migration), then fails and retries.
LOCK_WAIT = "5min"
LIST_TIMEOUT_S = 300
_TRANSIENT = re.compile(
    r"could not connect|connection refused|timeout expired|timed out|server closed the "
    r"connection|terminating connection|starting up|shutting down|could not receive data|"
    r"SSL SYSCALL|lock timeout|could not obtain lock|too many clients|recovery mode",
    re.IGNORECASE,
)


def _widen(pipe: IO[bytes]) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, PIPE_SIZE)


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
        running(args, stdout=subprocess.PIPE, stderr=errors, env=env, bufsize=0) as process,
        upload(storage, key) as out,
    ):
        assert process.stdout is not None
        _widen(process.stdout)
        copy_pipe(process.stdout, out.write)
        code = process.wait()
        if code != 0:
            detail = tail(errors)
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


def read_back(storage: Storage, keys: Keys) -> ReadBack:
    """Read the stored archive once: hash all of it and feed pg_restore --list its start,
    so the checksum and the table of contents both describe the object as stored."""
    manifest_size = storage.size(keys.manifest)
    archive_size = storage.size(keys.config_archive)
    if storage.size(keys.dump) is None:
        return ReadBack(False, manifest_size=manifest_size, config_archive_size=archive_size)
    tool = find_tool("pg_restore")
    digest = hashlib.sha256()
    size = 0
    with (
        tempfile.TemporaryFile() as listing,
        tempfile.TemporaryFile() as errors,
        running([tool, "--list"], stdin=subprocess.PIPE, stdout=listing, stderr=errors) as process,
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
        problem = None if code == 0 else f"pg_restore --list failed (exit {code}): {tail(errors)}"
    return ReadBack(
        True,
        size,
        digest.hexdigest(),
        toc,
        problem,
        manifest_size,
        archive_size,
        globals_size=storage.size(keys.globals),
    )


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
def read_stored(storage: Storage, keys: Keys) -> ReadBack:
    return read_back(storage, keys)
