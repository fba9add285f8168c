"""Publishing the public status page: the core renders it (`vigil.statuspage`), this writes
it where `status_page.out` says and uploads it to `status_page.upload` through the one S3
client (`tasks.storage.site`)."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from tasks.storage.site import upload_site
from vigil import statuspage
from vigil.config import Config
from vigil.store import Store


def upload(out_dir: Path, target: str, config: Config) -> list[str]:
    """Copy the written site to `s3://bucket/prefix` with the backup section's S3 settings;
    returns the keys written."""
    files = statuspage.content_types(statuspage.FILES)
    return upload_site(out_dir, files, target, config.backup.s3)


def publish(
    config: Config, store: Store, now: datetime, settings: statuspage.Settings | None = None
) -> list[str]:
    """What a sweep calls when it is done: rebuild the page into `status_page.out` and/or
    upload it to `status_page.upload`; nothing when neither is configured. Returns the
    written paths and uploaded keys."""
    settings = settings or statuspage.Settings.of(config)
    if not (settings.out or settings.upload):
        return []
    page = statuspage.build(config, store, now, settings)
    with tempfile.TemporaryDirectory(prefix="vigil-status-page-") as scratch:
        folder = Path(settings.out).expanduser() if settings.out else Path(scratch)
        done = [str(p) for p in statuspage.write(page, folder)]
        if settings.upload:
            done += upload(folder, settings.upload, config)
    return done
