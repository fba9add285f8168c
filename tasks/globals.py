"""The server's roles and tablespaces, saved next to each dump (`pg_dumpall
--globals-only`, falling back to `--no-role-passwords` where the user cannot read
pg_authid, as on managed services), and the roles a database's objects refer to; the
judgement and wording are `vigil.backup.globals`."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

import psycopg

from tasks.codec import seal_bytes
from tasks.pg import USER_SCHEMAS, connect, connection_args, find_tool, tail
from tasks.storage import Storage, StorageError
from tasks.storage.tasks import store_object
from vigil.backup.globals import GlobalsApplied, globals_entry
from vigil.backup.globals_sql import Classified, GlobalsSyntaxError, read_globals
from vigil.backup.identity import BackupError, describe_url
from vigil.config import Database
from vigil.redact import error_line

GLOBALS_TIMEOUT_S = 300
# What pg_dumpall says when the user may not read role passwords.
_NO_PASSWORDS = ("pg_authid", "permission denied")


def dump_globals(database: Database) -> tuple[bytes, bool]:
    """(the SQL of the server's roles and tablespaces, whether role passwords are in it)."""
    tool = find_tool("pg_dumpall")
    dsn, env = connection_args(database.url)
    base = [tool, "--globals-only", "--no-password", f"--dbname={dsn}"]
    for passwords in (True, False):
        args = base if passwords else [*base, "--no-role-passwords"]
        with tempfile.TemporaryFile() as errors:
            done = subprocess.run(
                args, stdout=subprocess.PIPE, stderr=errors, env=env, timeout=GLOBALS_TIMEOUT_S
            )
            if done.returncode == 0:
                return done.stdout, passwords
            problem = tail(errors)
        if not (passwords and any(sign in problem for sign in _NO_PASSWORDS)):
            break
    raise BackupError(
        f"pg_dumpall --globals-only of {describe_url(database.url)} failed: {problem}"
    )


def server_globals(connection: psycopg.Connection[Any]) -> tuple[list[str], list[str]]:
    """(roles, tablespaces) of the server, PostgreSQL's own left out."""
    roles = [
        str(r[0])
        for r in connection.execute("SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_'")
    ]
    spaces = [
        str(r[0])
        for r in connection.execute("SELECT spcname FROM pg_tablespace WHERE spcname !~ '^pg_'")
    ]
    return sorted(roles), sorted(spaces)


def roles_needed(connection: psycopg.Connection[Any]) -> list[str]:
    """The roles this database's objects refer to: owners, grantees, policies' roles and
    user mappings (pg_shdepend records them all, except the bootstrap superuser's, which
    is pinned; that one is found as the owner of a user schema or relation)."""
    rows = connection.execute(
        "SELECT r.rolname FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid "
        "WHERE d.refclassid = 'pg_authid'::regclass AND d.dbid = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
        "UNION SELECT pg_get_userbyid(n.nspowner) FROM pg_namespace n "
        f"WHERE {USER_SCHEMAS} AND n.nspname <> 'public' "
        "UNION SELECT pg_get_userbyid(c.relowner) FROM pg_class c "
        f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMAS}"
    )
    return sorted(str(r[0]) for r in rows if not str(r[0]).startswith("pg_"))


def roles_on(connection: psycopg.Connection[Any]) -> list[str]:
    """The roles the server `connection` is on has (all of them, pg_ ones included)."""
    return [str(r[0]) for r in connection.execute("SELECT rolname FROM pg_roles")]


def save_globals(
    storage: Storage,
    database: Database,
    key: str,
    needed: list[str],
    recipients: Sequence[str] = (),
) -> dict[str, Any]:
    """Save the server's globals under `key`, sealed for `recipients` like the dump when
    backups are sealed (role names and password hashes are as sensitive as the data); the
    manifest's `globals` entry. A failure is recorded there (and fails the backup's
    verification), never loses the dump."""
    try:
        with connect(database.url, what=f"database {database.name!r}") as connection:
            roles, spaces = server_globals(connection)
        data, passwords = dump_globals(database)
        stored = store_object(storage, key, seal_bytes(data, recipients) if recipients else data)
    except (BackupError, StorageError, psycopg.Error, subprocess.SubprocessError) as exc:
        return globals_entry(
            None, roles=[], tablespaces=[], passwords=False, needed=needed, error=error_line(exc)
        )
    return globals_entry(
        stored,
        roles=roles,
        tablespaces=spaces,
        passwords=passwords,
        needed=needed,
        sealed_for=recipients,
    )


def apply_globals(
    connection: psycopg.Connection[Any], text: str, manifest: dict[str, Any]
) -> GlobalsApplied:
    """Create on this server the roles the backed-up database refers to (and the roles
    joined to them by memberships) that it lacks, as pg_dumpall wrote them: CREATE ROLE,
    then its attributes, settings and comment, then the memberships and parameter
    privileges involving a role created here. A role that exists is never altered, the
    connecting role never touched, tablespaces never created (skipped, and named).
    `connection` is an autocommit connection to any database of the target server."""
    try:
        read = read_globals(text)
    except GlobalsSyntaxError as exc:
        return GlobalsApplied(problem=f"the saved globals do not parse: {exc}")
    me = str(connection.execute("SELECT current_user").fetchone()[0])  # type: ignore[index]
    present = set(roles_on(connection))
    recorded = (manifest.get("globals") or {}).get("roles_needed")
    wanted = read.related(recorded if recorded else read.roles)
    applied = GlobalsApplied(tablespaces=list(read.tablespaces))
    for role in sorted(r for r in wanted if r not in present and not r.startswith("pg_")):
        _create_role(connection, role, read.roles[role], applied)
    created = set(applied.created)
    exists = present | created
    for grant in read.memberships:
        involved = {*grant.roles, *grant.members}
        if not involved & created or me in involved or not involved <= exists:
            continue
        problem = _run(connection, grant.sql)
        pairs = [f"{g} to {m}" for g in grant.roles for m in grant.members]
        if problem is None:
            applied.memberships += pairs
        else:
            for role in sorted(involved & created):
                applied.incomplete.setdefault(role, []).append(
                    f"membership {', '.join(pairs)} ({problem})"
                )
    for grant in read.grants:
        for role in sorted(set(grant.roles) & created):
            problem = _run(connection, grant.sql)
            if problem is not None:
                applied.incomplete.setdefault(role, []).append(
                    f"{grant.statement.head()} ({problem})"
                )
    return applied


def _create_role(
    connection: psycopg.Connection[Any],
    role: str,
    statements: list[Classified],
    applied: GlobalsApplied,
) -> None:
    problem = _run(connection, statements[0].sql)
    if problem is not None:
        applied.not_created[role] = problem
        return
    applied.created.append(role)
    for each in statements[1:]:
        problem = _run(connection, each.sql)
        if problem is not None:
            applied.incomplete.setdefault(role, []).append(f"{each.statement.head()} ({problem})")


def _run(connection: psycopg.Connection[Any], statement: str) -> str | None:
    """One statement in its own transaction; the first line of its error, if any (never
    the statement itself: it may hold a password)."""
    try:
        with connection.transaction():
            connection.execute(statement.encode())
    except psycopg.Error as exc:
        return error_line(exc)
    return None
