"""Backups in a local folder: `file:///var/backups/vigil`. Files are written as
`<name>.partial`, fsynced, then renamed (and the folder fsynced), so a crash never leaves a
file that looks complete."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tasks.storage.base import CHUNK, ObjectWriter, StorageError, StoredObject


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
