"""Object storage: one interface (`base.Storage`), two places (S3 or a local folder).

- `base`: the interface, `StorageError`, all-or-nothing writes hashed on the way through,
  reads and downloads;
- `local`, `s3`: the back ends; `s3client`: the one S3 client factory (timeouts, retries,
  SSE, error wording), also used by `site` (the status page's upload);
- `configs`: the tarball of config files stored with a backup;
- `retention`: deleting what the retention plan drops, and recording it;
- `tasks`: the Prefect tasks (names, retries) around the above.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tasks.storage.base import (
    Storage,
    StorageError,
    StoredObject,
    put_bytes,
    read_bytes,
    upload,
)
from tasks.storage.local import LocalStorage
from tasks.storage.s3 import S3Storage
from vigil.config import BackupConfig

__all__ = [
    "LocalStorage",
    "S3Storage",
    "Storage",
    "StorageError",
    "StoredObject",
    "open_storage",
    "put_bytes",
    "read_bytes",
    "upload",
]


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
