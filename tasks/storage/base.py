"""The storage interface every back end implements, its own error vocabulary, and the
helpers shared by all: writing an object all-or-nothing while hashing it, reading one back,
downloading one to a file.

Errors are `StorageError`s that say which object, where, and whether retrying may help:
connection failures, timeouts, throttling and 5xx retry; a missing bucket, refused
credentials or a full disk do not. They are storage's words, not a backup's: the status
page's upload uses the same back ends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from vigil.backup.manifest import StoredFile
from vigil.findings import Finding
from vigil.redact import redact

CHUNK = 1 << 20


class StorageError(Finding):
    """Storage refused or failed an operation; the message names the object and place, and
    `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(redact(message))
        self.retryable = retryable


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
