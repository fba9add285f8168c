"""What a logical backup does not hold and a restore needs: the server's roles and
tablespaces ("globals"). pg_dump writes one database; the roles that own its objects, are
granted privileges on them, or are named by its row-level security policies and user
mappings live in the server. So each backup saves `pg_dumpall --globals-only` next to the
dump (without role passwords where the user cannot read them, as on managed services),
and the manifest records the roles the database refers to, so a restore can say exactly
which ones a target lacks before pg_restore fails on the first of them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
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


@dataclass
class GlobalsApplied:
    """What applying a backup's saved globals to a target server did: the roles it created
    (with what of their attributes, settings, memberships could not be applied), the ones
    it could not create and why, the memberships granted, the tablespaces skipped (a
    tablespace is a directory on the server's disk, which a restore cannot make), and
    `problem` when the file could not be used at all."""

    created: list[str] = field(default_factory=list)
    not_created: dict[str, str] = field(default_factory=dict)
    incomplete: dict[str, list[str]] = field(default_factory=dict)
    memberships: list[str] = field(default_factory=list)
    tablespaces: list[str] = field(default_factory=list)
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """What it did, one line each, for `vigil restore` and the drill's log."""
        lines = []
        if self.problem:
            lines.append(f"roles: the saved globals were not applied ({self.problem})")
        lines.append(
            "roles created from the backup's globals: " + (", ".join(self.created) or "none")
        )
        lines += [f"role {r} NOT created: {why}" for r, why in sorted(self.not_created.items())]
        for role, problems in sorted(self.incomplete.items()):
            lines.append(f"role {role} created without: {'; '.join(problems)}")
        if self.memberships:
            lines.append("memberships granted: " + ", ".join(self.memberships))
        if self.tablespaces:
            lines.append(
                "tablespaces skipped (create them by hand where the restore needs them): "
                + ", ".join(self.tablespaces)
            )
        return lines

    def finding(self, manifest: dict[str, Any], missing: Sequence[str], server: str) -> Finding:
        """Failed when roles the database refers to are still missing on `server`, naming
        them and why they could not be created."""
        expected = "the roles the database refers to exist on the target server"
        observed = "; ".join(self.lines())
        if not missing:
            return Finding("globals", True, expected, observed)
        why = sorted({self.not_created[r] for r in missing if r in self.not_created})
        because = f" ({'; '.join(why)})" if why else (f" ({self.problem})" if self.problem else "")
        problem = (
            f"globals: roles the backup refers to are missing on {server} and could not be "
            f"created{because}: {', '.join(missing)}; {missing_roles_problem(manifest, missing)}"
        )
        return Finding("globals", False, expected, observed, problem)
