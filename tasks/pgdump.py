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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from tasks.codec import CodecError, check_layers, decode, encode
from tasks.pg import connection_args, find_tool, running, tail, tool_version
from tasks.storage import Storage, upload
from vigil.backup.facts import SnapshotFacts
from vigil.backup.identity import BackupError, Keys, describe_url, retry_if_transient
from vigil.backup.manifest import StoredFile
from vigil.backup.sealing import AGE, Identities
from vigil.backup.verification import ReadBack
from vigil.config import Compression, Database

# A wider pipe lets pg_dump run ahead while vigil compresses, seals and writes (tasks.codec
# reads it in big batches), which matters on a 2-core machine.
PIPE_SIZE = 1 << 20
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
    # What pg_dump wrote before vigil's own encoding (zstd, age): a decode must give it back.
    archive_bytes: int = 0
    # pg_restore --list of the archive as it was sealed, for a host that cannot unseal it.
    sealed_toc: str | None = None


def dump_database(
    database: Database,
    facts: SnapshotFacts,
    compression: Compression,
    storage: Storage,
    key: str,
    recipients: Sequence[str] = (),
) -> Dumped:
    """pg_dump of the exported snapshot, encoded (tasks.codec) and streamed into storage
    under `key` while hashed.

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
        f"--compress={compression.pg_dump_level}",
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
        _lister(bool(recipients)) as lister,
    ):
        assert process.stdout is not None
        _widen(process.stdout)
        tee = lister.feed if lister else None
        archive_bytes = encode(process.stdout, out.write, compression, recipients, tee=tee)
        code = process.wait()
        if code != 0:
            detail = tail(errors)
            raise BackupError(
                f"pg_dump of database {database.name!r} at {describe_url(database.url)} "
                f"failed (exit {code}): {detail}",
                retryable=bool(_TRANSIENT.search(detail)),
            )
        toc = lister.finish() if lister else None
        stored = out.commit()
    return Dumped(stored, time.monotonic() - started, version, archive_bytes, toc)


class _Lister:
    """pg_restore --list fed the archive's first bytes as pg_dump writes them: the table of
    contents of what is sealed, for a backup host that holds no identity to unseal it."""

    def __init__(self, process: subprocess.Popen[bytes], listing: IO[bytes]) -> None:
        self.process = process
        self.listing = listing
        self.feeding = True

    def feed(self, chunk: bytes | memoryview) -> None:
        if self.feeding:
            assert self.process.stdin is not None
            self.feeding = _feed(self.process.stdin, bytes(chunk))

    def finish(self) -> str | None:
        assert self.process.stdin is not None
        _feed(self.process.stdin, None)
        code = self.process.wait(timeout=LIST_TIMEOUT_S)
        self.listing.seek(0)
        return self.listing.read().decode("utf-8", errors="replace") if code == 0 else None


@contextlib.contextmanager
def _lister(wanted: bool) -> Iterator[_Lister | None]:
    if not wanted:
        yield None
        return
    tool = find_tool("pg_restore")
    with (
        tempfile.TemporaryFile() as listing,
        running(
            [tool, "--list"],
            stdin=subprocess.PIPE,
            stdout=listing,
            stderr=subprocess.DEVNULL,
        ) as process,
    ):
        yield _Lister(process, listing)


# --- reading an archive back -------------------------------------------------------------------


def read_back(
    storage: Storage,
    keys: Keys,
    dump: dict[str, Any] | None = None,
    identities: Identities | None = None,
    sealed_toc: str | None = None,
) -> ReadBack:
    """Read the stored archive once: hash all of it, decode it (decompress, and unseal when
    an identity is at hand) without writing it anywhere, and feed pg_restore --list its
    start, so the checksum, the decoding and the table of contents all describe the object
    as stored. A sealed backup on a host without its identity is hashed only, its table of
    contents the one listed while it was sealed (`sealed_toc`)."""
    manifest_size = storage.size(keys.manifest)
    archive_size = storage.size(keys.config_archive)
    globals_size = storage.size(keys.globals)
    if storage.size(keys.dump) is None:
        return ReadBack(False, manifest_size=manifest_size, config_archive_size=archive_size)
    encoding = check_layers((dump or {}).get("encoding"))
    sealed = list((dump or {}).get("recipients") or [])
    can_open = AGE not in encoding or (identities is not None and identities.opens(sealed))
    digest = hashlib.sha256()
    size = 0

    def hashed() -> Iterator[bytes]:
        nonlocal size
        for chunk in storage.read(keys.dump):
            digest.update(chunk)
            size += len(chunk)
            yield chunk

    if not can_open:
        for _ in hashed():
            pass
        problem = None if sealed_toc else "sealed, and no table of contents was listed"
        sizes = (manifest_size, archive_size)
        return ReadBack(
            True,
            size,
            digest.hexdigest(),
            sealed_toc,
            problem,
            *sizes,
            globals_size=globals_size,
        )
    toc, problem, decoded = _list_decoded(storage, keys, hashed(), encoding, identities)
    return ReadBack(
        True,
        size,
        digest.hexdigest(),
        toc,
        problem,
        manifest_size,
        archive_size,
        decoded_bytes=decoded,
        globals_size=globals_size,
    )


def _list_decoded(
    storage: Storage,
    keys: Keys,
    chunks: Iterator[bytes],
    encoding: list[str],
    identities: Identities | None,
) -> tuple[str | None, str | None, int | None]:
    """(toc, problem, decoded size): the stored chunks decoded to their end, the start of
    the archive fed to pg_restore --list."""
    tool = find_tool("pg_restore")
    with (
        tempfile.TemporaryFile() as listing,
        tempfile.TemporaryFile() as errors,
        running([tool, "--list"], stdin=subprocess.PIPE, stdout=listing, stderr=errors) as process,
    ):
        assert process.stdin is not None
        stdin = process.stdin
        feeding = True

        def feed(piece: bytes | memoryview) -> None:
            nonlocal feeding
            if feeding:
                feeding = _feed(stdin, bytes(piece))

        decoded: int | None = None
        codec_problem = None
        try:
            decoded = decode(chunks, encoding, identities.keys if identities else (), feed)
        except CodecError as exc:
            codec_problem = str(exc)
            for _ in chunks:  # the checksum still covers the whole stored object
                pass
        _feed(stdin, None)
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
    if codec_problem:
        return None, codec_problem, None
    return toc, problem, decoded


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
    database: Database,
    facts: SnapshotFacts,
    compression: Compression,
    storage: Storage,
    key: str,
    recipients: Sequence[str] = (),
) -> Dumped:
    """Each attempt dumps the same snapshot again, so a retry after an outage describes the
    same instant as the recorded counts."""
    for leftover in storage.clean_incomplete(key.rsplit("/", 1)[0] + "/"):
        get_run_logger().warning("removed %s, left unfinished by an earlier attempt", leftover)
    return dump_database(database, facts, compression, storage, key, recipients)


@task(
    name="read back",
    task_run_name="read back {keys.dump}",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def read_stored(
    storage: Storage,
    keys: Keys,
    dump: dict[str, Any] | None = None,
    identities: Identities | None = None,
    sealed_toc: str | None = None,
) -> ReadBack:
    return read_back(storage, keys, dump, identities, sealed_toc)
