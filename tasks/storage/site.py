"""Publishing a small static site (the public status page) to `s3://bucket/prefix`, through
the one S3 client: the same timeouts, retries, encryption and error wording as backups."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from tasks.storage.s3client import encryption, s3_client, s3_error
from vigil.config import S3Settings

# A short cache lifetime keeps a page people reload during an outage fresh.
CACHE_CONTROL = "max-age=60"


def upload_site(
    folder: Path, files: Iterable[tuple[str, str]], target: str, settings: S3Settings
) -> list[str]:
    """Copy each (name, content type) of `folder` to `target`; returns the keys written.
    ValueError for a target that is not an s3:// URL with a bucket; StorageError when S3
    refuses or cannot be reached."""
    parts = urlsplit(target)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"status page upload target {target!r} is not an s3://bucket/prefix URL")
    client = s3_client(settings, pool=1)
    prefix = parts.path.strip("/")
    keys = []
    for name, kind in files:
        key = f"{prefix}/{name}" if prefix else name
        try:
            client.put_object(
                Bucket=parts.netloc,
                Key=key,
                Body=(folder / name).read_bytes(),
                ContentType=kind,
                CacheControl=CACHE_CONTROL,
                **encryption(settings),
            )
        except Exception as exc:
            where = f"s3://{parts.netloc}/{key} at {settings.endpoint_url or 'AWS S3'}"
            raise s3_error("upload", where, parts.netloc, exc) from None
        keys.append(key)
    return keys
