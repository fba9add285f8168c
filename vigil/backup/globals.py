"""What a logical backup does not hold and a restore needs: the server's roles and
tablespaces ("globals"). pg_dump writes one database; the roles that own its objects, are
granted privileges on them, or are named by its row-level security policies and user
mappings live in the server. So each backup saves `pg_dumpall --globals-only` next to the
dump (without role passwords where the user cannot read them, as on managed services),
and the manifest records the roles the database refers to, so a restore can say exactly
which ones a target lacks before pg_restore fails on the first of them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from vigil.backup.manifest import StoredFile
from vigil.backup.sealing import AGE, sealed_for
from vigil.recovery import Finding


def globals_entry(
    stored: StoredFile | None,
    *,
    roles: Sequence[str],
    tablespaces: Sequence[str],
    passwords: bool,
    needed: Sequence[str],
    error: str | None = None,
    sealed_for: Sequence[str] = (),
) -> dict[str, Any]:
    """The manifest's `globals`: the saved file (None when it could not be made, with the
    reason; sealed with age for `sealed_for` when backups are sealed), the server's roles
    and tablespaces, whether role passwords are in it, and the roles the database's
    objects refer to."""
    file = None
    if stored:
        sealed = {"encoding": [AGE], "recipients": list(sealed_for)} if sealed_for else {}
        file = {**asdict(stored), **sealed}
    return {
        "file": file,
        "error": error,
        "roles": sorted(roles),
        "tablespaces": sorted(tablespaces),
        "role_passwords": passwords,
        "roles_needed": sorted(needed),
    }


def missing_roles(manifest: dict[str, Any], present: Iterable[str]) -> list[str]:
    """The roles the backed-up database refers to that the target server lacks (none
    known for a manifest written before globals were recorded)."""
    recorded = (manifest.get("globals") or {}).get("roles_needed") or []
    return sorted(set(recorded) - set(present))


def missing_roles_problem(manifest: dict[str, Any], missing: Sequence[str]) -> str:
    """What to do about them, naming the saved globals when there are some."""
    names = ", ".join(missing)
    file = (manifest.get("globals") or {}).get("file") or {}
    saved = file.get("location")
    run = (
        "open it with `age -d -i KEY FILE`, review it and `psql -f` it on the target server"
        if sealed_for(file)
        else "`psql -f` it on the target server, after reviewing it"
    )
    how = (
        f"create them from the roles saved with the backup ({saved}: {run})"
        if saved
        else "create them on the target server"
    )
    return (
        f"the archive's objects refer to roles the target server lacks: {names}; {how}, "
        "or restore with --no-owner (owners and grants are then skipped; policies naming "
        "those roles still need them)"
    )


def roles_finding(manifest: dict[str, Any], missing: Sequence[str]) -> Finding:
    """For a restore that skipped owners and grants (the restore test, the drill): which
    roles a real recovery onto this server would still have to create. Informative: the
    copy is complete without them, and the saved globals say how to create them."""
    expected = "the roles the database refers to exist on the target server"
    if not (manifest.get("globals") or {}).get("roles_needed"):
        return Finding("roles", True, expected, "not recorded in this backup")
    if not missing:
        return Finding("roles", True, expected, "all present")
    return Finding("roles", True, expected, missing_roles_problem(manifest, missing))


def globals_summary(manifest: dict[str, Any] | None) -> str:
    """One line for `vigil backups`: what the backup saved of the server's globals."""
    entry = (manifest or {}).get("globals")
    if not entry:
        return "globals: not saved"
    if entry.get("file") is None:
        return f"globals: NOT saved ({entry.get('error') or 'unknown reason'})"
    passwords = "" if entry.get("role_passwords") else ", no passwords"
    return (
        f"globals: {len(entry['roles'])} roles, {len(entry['tablespaces'])} tablespaces"
        f"{passwords}; needs {len(entry['roles_needed'])} roles"
    )
