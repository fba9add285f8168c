"""Object storage for backups: one interface, two places (S3 or a local folder).

Writes are all-or-nothing. An S3 object larger than one part arrives by multipart upload
from a stream, part_size bytes at a time, one part uploading while the next fills, so memory
stays under two parts whatever the database size (smaller objects go up in one PUT); a
failed upload is aborted so no orphaned parts are billed, and the next upload of the same
database aborts any an outage left behind. Local files are
written as `<name>.partial`, fsynced, then renamed, so a crash never leaves a file that looks
complete. Everything read or written is hashed (SHA-256) on the way through.

Errors are `StorageError`s that say which object, where, and whether retrying may help:
connection failures, timeouts, throttling and 5xx retry; a missing bucket, refused
credentials or a full disk do not.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import tarfile
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from vigil.backup import (
    BackupError,
    Candidate,
    Decision,
    Keys,
    StoredFile,
    plan_retention,
    record_deletion,
    retry_if_transient,
)
from vigil.config import BackupConfig, Retention, S3Settings
from vigil.redact import redact
from vigil.store import Store

log = logging.getLogger("vigil.storage")

CHUNK = 1 << 20
MAX_PARTS = 10_000  # S3's limit per multipart upload
# S3 answers that mean "not now" rather than "never".
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestTimeTooSkewed",
        "503",
        "500",
        "502",
        "504",
    }
)


class StorageError(BackupError):
    """Storage refused or failed an operation; the message names the object and place."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int


class ObjectWriter(Protocol):
    """Bytes for one object; nothing is visible under the key until `commit`."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class Storage(Protocol):
    """Where backups live. Keys are relative (`main/main-20240501T020000Z.dump`)."""

    url: str

    def location(self, key: str) -> str: ...

    def writer(self, key: str) -> ObjectWriter: ...

    def read(self, key: str) -> Iterator[bytes]: ...

    def size(self, key: str) -> int | None: ...

    def list_objects(self, prefix: str) -> list[StoredObject]: ...

    def delete(self, keys: Sequence[str]) -> None: ...

    def clean_incomplete(self, prefix: str) -> list[str]: ...


def open_storage(config: BackupConfig) -> Storage:
    """The storage `backup.storage` names: `s3://bucket/prefix` or `file:///path`.

    ValueError for a URL that names no place (no bucket, or a relative folder that would
    land wherever vigil happens to run)."""
    parts = urlsplit(config.storage)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(
                f"backup.storage {config.storage!r} names no bucket (s3://bucket/prefix)"
            )
        return S3Storage(config.storage, config.s3)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ValueError(
            f"backup.storage {config.storage!r} is not an absolute folder; write it with three "
            "slashes, e.g. file:///var/backups/vigil"
        )
    return LocalStorage(config.storage)


# --- helpers shared by both kinds --------------------------------------------------------


class Upload:
    """An object being written, hashed as the bytes pass through."""

    def __init__(self, storage: Storage, key: str) -> None:
        self.key = key
        self._storage = storage
        self._writer = storage.writer(key)
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)
        self._writer.write(data)

    def commit(self) -> StoredFile:
        self._writer.commit()
        return StoredFile(
            self.key, self._storage.location(self.key), self.size, self._hash.hexdigest()
        )

    def abort(self) -> None:
        self._writer.abort()


@contextmanager
def upload(storage: Storage, key: str) -> Iterator[Upload]:
    """Write one object; unless the block commits, whatever was written is thrown away."""
    writer = Upload(storage, key)
    committed = False
    try:
        yield writer
        committed = True
    finally:
        if not committed:
            writer.abort()


def put_bytes(storage: Storage, key: str, data: bytes) -> StoredFile:
    with upload(storage, key) as writer:
        writer.write(data)
        return writer.commit()


def read_bytes(storage: Storage, key: str) -> bytes:
    return b"".join(storage.read(key))


def download(storage: Storage, key: str, path: Path) -> StoredFile:
    """Copy an object to a local file, hashing it; the file is only complete on success."""
    digest = hashlib.sha256()
    size = 0
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as out:
            for chunk in storage.read(key):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return StoredFile(key, storage.location(key), size, digest.hexdigest())


def config_archive(paths: Sequence[str]) -> tuple[bytes, list[str]]:
    """A tar.gz of the readable config files and the list of those that could not be read."""
    buffer = io.BytesIO()
    unreadable = []
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in paths:
            try:
                archive.add(path, arcname=path.lstrip("/"), recursive=True)
            except OSError as exc:
                unreadable.append(f"{path}: {exc.strerror or exc}")
    return buffer.getvalue(), unreadable


# --- local folder ------------------------------------------------------------------------------


class _FileWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise _os_error("create", self.partial, exc) from None
        self._file = os.fdopen(descriptor, "wb")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise _os_error("write", self.partial, exc) from None

    def commit(self) -> None:
        """Durable before visible: data, then the rename, then the directory entry."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.partial, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise _os_error("finish", self.path, exc) from None

    def abort(self) -> None:
        self._file.close()
        self.partial.unlink(missing_ok=True)


class LocalStorage:
    """Backups in a folder: `file:///var/backups/vigil`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.root = Path(unquote(urlsplit(url).path))

    def location(self, key: str) -> str:
        return (self.root / key).as_uri()

    def writer(self, key: str) -> ObjectWriter:
        return _FileWriter(self.root / key)

    def read(self, key: str) -> Iterator[bytes]:
        path = self.root / key
        try:
            with open(path, "rb") as source:
                while chunk := source.read(CHUNK):
                    yield chunk
        except OSError as exc:
            raise _os_error("read", path, exc) from None

    def size(self, key: str) -> int | None:
        try:
            return (self.root / key).stat().st_size
        except FileNotFoundError:
            return None

    def list_objects(self, prefix: str) -> list[StoredObject]:
        folder, _, start = prefix.rpartition("/")
        base = self.root / folder
        if not base.is_dir():
            return []
        return sorted(
            (
                StoredObject(f"{folder}/{p.name}" if folder else p.name, p.stat().st_size)
                for p in base.iterdir()
                if p.is_file() and p.name.startswith(start)
            ),
            key=lambda o: o.key,
        )

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            try:
                (self.root / key).unlink(missing_ok=True)
            except OSError as exc:
                raise _os_error("delete", self.root / key, exc) from None

    def clean_incomplete(self, prefix: str) -> list[str]:
        """Remove `.partial` files a crashed run left (callers hold the database's lock)."""
        leftovers = [o.key for o in self.list_objects(prefix) if o.key.endswith(".partial")]
        self.delete(leftovers)
        return leftovers


def _os_error(action: str, path: Path, exc: OSError) -> StorageError:
    hint = ""
    if exc.errno == errno.ENOSPC:
        hint = "; free space there or point backup.storage elsewhere"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = "; give vigil's user write access or point backup.storage elsewhere"
    return StorageError(f"cannot {action} {path}: {exc.strerror or exc}{hint}")


# --- S3 ------------------------------------------------------------------------------------


class S3Storage:
    """Backups in a bucket: `s3://bucket/prefix`, with `backup.s3` settings."""

    def __init__(self, url: str, settings: S3Settings) -> None:
        import boto3
        from botocore.config import Config

        parts = urlsplit(url)
        self.url = url
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.settings = settings
        self.endpoint = settings.endpoint_url or "AWS S3"
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            # Request retries follow boto3's chain (standard mode, 3 attempts unless
            # AWS_MAX_ATTEMPTS / AWS_RETRY_MODE or ~/.aws/config say otherwise); the tasks
            # retry the whole step on top, with longer pauses.
            config=Config(
                connect_timeout=10,
                read_timeout=120,
                max_pool_connections=4,
            ),
        )

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def call(self, action: str, key: str, operation: Any, **arguments: Any) -> Any:
        """One S3 request (botocore retries it first); failures become StorageErrors."""
        try:
            return operation(Bucket=self.bucket, **arguments)
        except Exception as exc:
            raise self.error(action, key, exc) from None

    def error(self, action: str, key: str, exc: Exception) -> StorageError:
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
        )

        where = f"{self.location(key)} at {self.endpoint}"
        if isinstance(exc, NoCredentialsError):
            return StorageError(
                f"cannot {action} {where}: no AWS credentials (set backup.s3.access_key_id and "
                "secret_access_key, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
            )
        if isinstance(exc, ConnectionError | HTTPClientError):
            return StorageError(f"cannot {action} {where}: S3 unreachable ({exc})", retryable=True)
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            hint = {
                "NoSuchBucket": f"; create the bucket {self.bucket!r} or fix backup.storage",
                "AccessDenied": "; check the credentials' permissions on the bucket",
                "InvalidAccessKeyId": "; check backup.s3.access_key_id",
                "SignatureDoesNotMatch": "; check backup.s3.secret_access_key",
            }.get(code, "")
            return StorageError(
                f"cannot {action} {where}: {code or exc}{hint}", retryable=code in _TRANSIENT_CODES
            )
        return StorageError(f"cannot {action} {where}: {exc!r}", retryable=True)

    def writer(self, key: str) -> ObjectWriter:
        return _S3Writer(self, key)

    def encryption(self) -> dict[str, str]:
        return {"ServerSideEncryption": self.settings.sse} if self.settings.sse else {}

    def read(self, key: str) -> Iterator[bytes]:
        response = self.call("read", key, self.client.get_object, Key=self.object_key(key))
        body = response["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        except Exception as exc:
            raise self.error("read", key, exc) from None
        finally:
            body.close()

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self.error("look up", key, exc) from None
        except Exception as exc:
            raise self.error("look up", key, exc) from None
        return int(head["ContentLength"])

    def list_objects(self, prefix: str) -> list[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        found = []
        strip = len(self.object_key(""))
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.object_key(prefix)):
                found += [
                    StoredObject(o["Key"][strip:], int(o["Size"])) for o in page.get("Contents", [])
                ]
        except Exception as exc:
            raise self.error("list", prefix, exc) from None
        return found

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self.object_key(k)} for k in keys[start : start + 1000]]
            answer = self.call(
                "delete",
                keys[start],
                self.client.delete_objects,
                Delete={"Objects": batch, "Quiet": True},
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise StorageError(
                    f"cannot delete {len(answer['Errors'])} object(s) in s3://{self.bucket} at "
                    f"{self.endpoint}, e.g. {first.get('Key')}: {first.get('Code')}"
                )

    def clean_incomplete(self, prefix: str) -> list[str]:
        """Abort multipart uploads an outage left behind (callers hold the database's lock)."""
        answer = self.call(
            "list unfinished uploads under",
            prefix,
            self.client.list_multipart_uploads,
            Prefix=self.object_key(prefix),
        )
        aborted = []
        strip = len(self.object_key(""))
        for pending in answer.get("Uploads", []):
            key = pending["Key"][strip:]
            self.call(
                "abort the unfinished upload of",
                key,
                self.client.abort_multipart_upload,
                Key=pending["Key"],
                UploadId=pending["UploadId"],
            )
            aborted.append(key)
        return aborted


class _S3Writer:
    """Objects up to one part go up in a single PUT; larger ones as a multipart upload whose
    parts of part_size bytes upload in a thread while the next one fills."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.part_size = storage.settings.part_size
        self.upload_id: str | None = None
        # Grown as bytes arrive, so a small object never costs a whole part of memory.
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="vigil-s3-part")
        self._pending: Future[dict[str, Any]] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            taken = view[: self.part_size - len(self._buffer)]
            self._buffer += taken
            view = view[len(taken) :]
            if len(self._buffer) == self.part_size:
                self._ship()

    def commit(self) -> None:
        if self.upload_id is None:
            self.storage.call(
                "write",
                self.key,
                self.storage.client.put_object,
                Key=self.storage.object_key(self.key),
                Body=self._buffer,
                ContentType="application/octet-stream",
                **self.storage.encryption(),
            )
        else:
            if self._buffer:
                self._ship()
            self._settle()
            self.storage.call(
                "finish uploading",
                self.key,
                self.storage.client.complete_multipart_upload,
                Key=self.storage.object_key(self.key),
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._pool.shutdown()

    def abort(self) -> None:
        """Drop the parts so none are left billed; if S3 is unreachable, the next upload of
        this database aborts them (see `clean_incomplete`)."""
        with suppress(StorageError):
            self._settle()
        self._pool.shutdown()
        if self.upload_id is None:
            return
        try:
            self.storage.client.abort_multipart_upload(
                Bucket=self.storage.bucket,
                Key=self.storage.object_key(self.key),
                UploadId=self.upload_id,
            )
        except Exception as exc:
            log.warning(
                "could not abort the upload of %s (%s); the next backup of this database "
                "will abort it",
                self.storage.location(self.key),
                redact(exc),
            )

    def _ship(self) -> None:
        """Hand the full buffer to the uploader, after the previous part is safely up."""
        self._settle()
        if self.upload_id is None:
            answer = self.storage.call(
                "start uploading",
                self.key,
                self.storage.client.create_multipart_upload,
                Key=self.storage.object_key(self.key),
                ContentType="application/octet-stream",
                **self.storage.encryption(),
            )
            self.upload_id = str(answer["UploadId"])
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(
                f"cannot upload {self.storage.location(self.key)}: it is larger than S3's "
                f"{MAX_PARTS} parts of backup.s3.part_size ({self.part_size} bytes); raise "
                "part_size (memory use is about two parts)"
            )
        body = self._buffer
        self._pending = self._pool.submit(self._upload_part, self.upload_id, number, body)
        self._buffer = bytearray()

    def _settle(self) -> None:
        """Wait for the part in flight (its buffer is freed with the future)."""
        if self._pending is None:
            return
        future, self._pending = self._pending, None
        self._parts.append(future.result())

    def _upload_part(self, upload_id: str, number: int, body: bytearray) -> dict[str, Any]:
        answer = self.storage.call(
            f"upload part {number} of",
            self.key,
            self.storage.client.upload_part,
            Key=self.storage.object_key(self.key),
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
        checksums = {
            k: v for k, v in answer.items() if k.startswith("Checksum") and k != "ChecksumType"
        }
        return {"PartNumber": number, "ETag": answer["ETag"], **checksums}


# --- retention --------------------------------------------------------------------------------


def prune(
    store: Store,
    storage: Storage,
    database: str,
    backups: Sequence[Candidate],
    retention: Retention,
    *,
    dry_run: bool = False,
) -> list[Decision]:
    """Apply the retention plan: delete each dropped backup's objects together, then record
    the deletion. Returns every decision (kept and deleted)."""
    decisions = plan_retention(backups, retention, datetime.now(UTC))
    if dry_run:
        return decisions
    for decision in decisions:
        if decision.keep:
            continue
        keys = Keys.of(decision.backup_id)
        found = [o.key for o in storage.list_objects(keys.prefix)]
        storage.delete(found)
        record_deletion(
            store,
            backup=decision.backup_id,
            database=database,
            reason=decision.reasons[0],
            location=storage.location(keys.dump),
        )
    return decisions


# --- Prefect tasks ------------------------------------------------------------------------------

RETRIES = 3
RETRY_DELAYS = exponential_backoff(backoff_factor=10)


@task(
    name="store object",
    task_run_name="store {key}",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def store_object(storage: Storage, key: str, data: bytes) -> StoredFile:
    """Small objects (manifest, config archive) written whole."""
    return put_bytes(storage, key, data)


@task(
    name="apply retention",
    task_run_name="apply retention to {database}",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def apply_retention(
    store: Store, storage: Storage, database: str, backups: list[Candidate], retention: Retention
) -> list[Decision]:
    return prune(store, storage, database, backups, retention)
