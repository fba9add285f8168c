"""The config files stored with each backup (`backup.config_files`), as one tarball: a
restore that brings the database back should bring back how the app was configured."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence


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
