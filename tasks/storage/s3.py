"""Backups in a bucket: `s3://bucket/prefix`, with `backup.s3` settings.

An object larger than one part arrives by multipart upload from a stream, part_size bytes
at a time, `concurrency` parts uploading while the next fills, so memory stays about
concurrency + 1 parts whatever the database size (smaller objects go up in one PUT); the
parts are completed in part-number order whatever order they finished in; a failed part
aborts the upload so no orphaned parts are billed, and the next upload of the same
database aborts any an outage left behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit

from tasks.storage.base import CHUNK, ObjectWriter, StorageError, StoredObject
from tasks.storage.s3client import encryption, s3_client, s3_error
from vigil.config import S3Settings
from vigil.redact import redact

log = logging.getLogger("vigil.storage")

MAX_PARTS = 10_000  # S3's limit per multipart upload


class S3Storage:
    """Backups in a bucket: `s3://bucket/prefix`, with `backup.s3` settings."""

    def __init__(self, url: str, settings: S3Settings) -> None:
        parts = urlsplit(url)
        self.url = url
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.settings = settings
        self.endpoint = settings.endpoint_url or "AWS S3"
        # A connection per part in flight, and one for the calls around them.
        self.client = s3_client(settings, pool=settings.concurrency + 1)

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
        return s3_error(action, f"{self.location(key)} at {self.endpoint}", self.bucket, exc)

    def writer(self, key: str) -> ObjectWriter:
        return _S3Writer(self, key)

    def encryption(self) -> dict[str, str]:
        return encryption(self.settings)

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
    parts of part_size bytes upload on `concurrency` threads while the next one fills, so
    about concurrency + 1 parts are in memory at once."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.part_size = storage.settings.part_size
        self.concurrency = storage.settings.concurrency
        self.upload_id: str | None = None
        # Grown as bytes arrive, so a small object never costs a whole part of memory.
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="vigil-s3-part")
        self._pending: set[Future[dict[str, Any]]] = set()
        self._shipped = 0

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
            self._settle(0)
            self.storage.call(
                "finish uploading",
                self.key,
                self.storage.client.complete_multipart_upload,
                Key=self.storage.object_key(self.key),
                UploadId=self.upload_id,
                # S3 wants them in ascending order, whatever order they finished in.
                MultipartUpload={"Parts": sorted(self._parts, key=lambda p: p["PartNumber"])},
            )
        self._pool.shutdown()

    def abort(self) -> None:
        """Drop the parts so none are left billed; if S3 is unreachable, the next upload of
        this database aborts them (see `clean_incomplete`). Parts still in flight finish
        (or fail) first, so none lands after the abort."""
        for future in self._pending:
            future.cancel()
        wait(self._pending)
        self._pending.clear()
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
        """Hand the full buffer to an uploader, once fewer than `concurrency` parts are in
        flight (a part that failed fails the upload here)."""
        self._settle(self.concurrency - 1)
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
        number = self._shipped + 1
        if number > MAX_PARTS:
            raise StorageError(
                f"cannot upload {self.storage.location(self.key)}: it is larger than S3's "
                f"{MAX_PARTS} parts of backup.s3.part_size ({self.part_size} bytes); raise "
                "part_size (memory use is about backup.s3.concurrency + 1 parts)"
            )
        body = self._buffer
        self._pending.add(self._pool.submit(self._upload_part, self.upload_id, number, body))
        self._shipped = number
        self._buffer = bytearray()

    def _settle(self, in_flight: int) -> None:
        """Wait until at most `in_flight` parts are uploading (a finished part's buffer is
        freed with its future); the first failure among the finished ones is raised."""
        while self._pending:
            finished = {f for f in self._pending if f.done()}
            if not finished and len(self._pending) <= in_flight:
                return
            if not finished:
                finished = wait(self._pending, return_when=FIRST_COMPLETED).done
            self._pending -= finished
            for future in finished:
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
