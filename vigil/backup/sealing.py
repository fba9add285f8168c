"""Sealed backups as the operator thinks of them: for whom a backup was sealed (age X25519
recipients, public keys), and which identities (secret keys) can open it.

The backup host holds only recipients (`backup.encrypt.recipients`); identities are named
by `restore_test.identity`, `drill.identity` or `vigil restore --identity` as a path to an
age identity file (what `age -i` reads) or `env:NAME`, and read only when a backup is
opened. Every identity read is registered with vigil.redact at once: it is a secret.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage

from vigil.backup.identity import BackupError
from vigil.redact import register_secrets

AGE = "age"  # the encoding layer a sealed archive carries in its manifest


class SealError(BackupError):
    """A sealed backup cannot be opened: no identity, an unreadable one, or one it was not
    sealed for. Not retryable: only a person can bring the right key."""


@dataclass(frozen=True)
class Identities:
    """The secret keys at hand, with the public keys they answer to."""

    keys: tuple[Any, ...]
    recipients: frozenset[str]
    source: str

    def opens(self, sealed_for: Sequence[str]) -> bool:
        return bool(self.recipients & set(sealed_for))

    @classmethod
    def joined(cls, found: Sequence[Identities]) -> Identities | None:
        """All the identities of several sources as one (None when there are none)."""
        if not found:
            return None
        return cls(
            tuple(k for i in found for k in i.keys),
            frozenset(r for i in found for r in i.recipients),
            " and ".join(i.source for i in found),
        )


def load_identities(source: str, setting: str) -> Identities:
    """The identities in `source` (a file path or `env:NAME`); SealError says what is
    wrong, naming the setting that points there, never the key."""
    if source.startswith("env:"):
        name = source[4:]
        text = os.environ.get(name)
        if not text:
            raise SealError(f"{setting} names the environment variable {name}, which is not set")
    else:
        try:
            text = Path(source).expanduser().read_text()
        except OSError as exc:
            raise SealError(
                f"{setting}: cannot read the identity file {source}: {exc.strerror or exc}"
            ) from None
    lines = [line.strip() for line in text.splitlines()]
    secrets = [line for line in lines if line and not line.startswith("#")]
    register_secrets(secrets)
    keys = []
    for line in secrets:
        try:
            keys.append(pyrage.x25519.Identity.from_str(line))
        except Exception:
            raise SealError(
                f"{setting}: {source} holds a line that is not an age X25519 identity "
                "(AGE-SECRET-KEY-1..., as `age-keygen` writes)"
            ) from None
    if not keys:
        raise SealError(f"{setting}: {source} holds no age identity")
    publics = frozenset(str(k.to_public()) for k in keys)
    return Identities(tuple(keys), publics, source)


def maybe_identities(source: str | None, setting: str) -> Identities | None:
    return None if source is None else load_identities(source, setting)


def sealed_for(entry: dict[str, Any] | None) -> list[str]:
    """The recipients a stored object (a manifest's `dump` or `config_archive`) was sealed
    for; empty when it is not sealed."""
    if not entry or AGE not in (entry.get("encoding") or []):
        return []
    return list(entry.get("recipients") or [])


def require_opener(
    sealed: Sequence[str], identities: Identities | None, what: str, setting: str
) -> None:
    """Refuse before any download when the backup is sealed and no identity at hand
    answers to any of its recipients."""
    if not sealed:
        return
    if identities is None:
        raise SealError(
            f"{what} is sealed with age for {', '.join(sealed)}; no identity was given "
            f"(set {setting} to the identity file or env:NAME)"
        )
    if not identities.opens(sealed):
        raise SealError(
            f"{what} is sealed for {', '.join(sealed)}; the identity in {identities.source} "
            f"answers to {', '.join(sorted(identities.recipients))} only (wrong key; an "
            "older backup may need the identity of a rotated-out recipient)"
        )


def unopenable(sealed: Sequence[str], identities: Identities | None, current: Sequence[str]) -> str:
    """Why no key at hand opens a backup sealed for `sealed` ('' when one does): judged by
    the identities when there are any here, else by the current recipient list."""
    if not sealed:
        return ""
    if identities is not None:
        if identities.opens(sealed):
            return ""
        return f"no configured identity opens it (sealed for {', '.join(sealed)})"
    if set(sealed) & set(current):
        return ""
    return (
        f"sealed only for recipients no longer in backup.encrypt.recipients "
        f"({', '.join(sealed)}): keep their identities, or it cannot be restored"
    )
