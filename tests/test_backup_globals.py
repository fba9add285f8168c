"""Roles and tablespaces, which no logical dump holds: each backup saves them next to the
dump (`pg_dumpall --globals-only`; without passwords for a user who cannot read them),
verifies and lists them, and `vigil restore` names exactly the roles the archive needs that
the target lacks, before pg_restore fails on the first; created from the saved file, the
same restore goes through."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tasks.globals import dump_globals
from tasks.pgdump import read_back
from tasks.storage import open_storage
from tests.backup_helpers import backups, configure, fresh_database, seed
from tests.fixtures.postgres import with_database
from vigil.backup.identity import Keys
from vigil.backup.verification import verify
from vigil.cli import app
from vigil.config import Database, load_config

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def role(pg_server_url: str) -> Iterator[str]:
    """A role of this test only, with a space in its name, dropped afterwards from every
    database that still refers to it."""
    name = f"b14 app user {secrets.token_hex(3)}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE datallowconn").fetchall()
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    if exists is None:
        return
    for (database,) in rows:
        try:
            with psycopg.connect(with_database(pg_server_url, database), autocommit=True) as c:
                c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        except psycopg.Error:
            continue
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def use_role(url: str, role: str) -> None:
    """A table the role owns, a grant and a row-level security policy naming it."""
    who = sql.Identifier(role)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE notes (id int PRIMARY KEY, owner text)")
        connection.execute("INSERT INTO notes VALUES (1, 'a'), (2, 'b')")
        connection.execute("ALTER TABLE notes ENABLE ROW LEVEL SECURITY")
        connection.execute(
            sql.SQL("CREATE POLICY mine ON notes TO {} USING (owner = 'a')").format(who)
        )
        connection.execute(sql.SQL("GRANT SELECT ON users TO {}").format(who))
        connection.execute(sql.SQL("ALTER TABLE monitors OWNER TO {}").format(who))


def test_globals_are_saved_verified_listed_and_name_the_missing_roles(
    tmp_path: Path, pg_database: str, pg_server_url: str, role: str
) -> None:
    seed(pg_database)
    use_role(pg_database, role)
    folder = tmp_path / "backups"
    config = configure(tmp_path, pg_database, folder.as_uri())

    result = CliRunner().invoke(app, ["backup", "-c", str(config), "--json"])

    assert result.exit_code == 0, result.output
    [record] = backups(tmp_path)
    keys = Keys.of(record.id)
    saved = (folder / keys.globals).read_text()
    assert f'CREATE ROLE "{role}";' in saved
    manifest = json.loads((folder / keys.manifest).read_text())
    entry = manifest["globals"]
    assert entry["file"]["size_bytes"] == len(saved.encode())
    assert role in entry["roles"] and entry["role_passwords"] is True
    assert role in entry["roles_needed"] and "postgres" in entry["roles_needed"]
    checks = {c["name"]: c for c in json.loads(result.stdout)["databases"][0]["checks"]}
    assert checks["globals"]["passed"] and checks["globals"]["observed"] == str(len(saved))
    listed = CliRunner().invoke(app, ["backups", "-c", str(config)])
    assert f"globals: {len(entry['roles'])} roles" in listed.stdout, listed.stdout

    # The role goes from the server (as on a fresh one): with --no-globals (applying them is
    # tests/test_globals_recovery.py's) restore refuses, naming it.
    with psycopg.connect(pg_database, autocommit=True) as source:
        source.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    with fresh_database(pg_server_url) as target:
        refused = CliRunner().invoke(
            app, ["restore", record.id, "--to", target, "-c", str(config), "--no-globals"]
        )
        assert refused.exit_code == 1, refused.output
        said = " ".join(refused.output.split())
        assert f"refer to roles the target server lacks: {role};" in said
        assert (folder / keys.globals).as_uri() in said
        with psycopg.connect(target) as connection:
            assert connection.execute(
                "SELECT count(*) FROM pg_class WHERE relname = 'notes'"
            ).fetchone() == (0,)

        # Created from the saved file (this role's lines only: the server is shared), the
        # same restore goes through, owners, grants and policy included.
        lines = [line for line in saved.splitlines() if f'"{role}"' in line]
        subprocess.run(
            ["psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", f"--dbname={pg_server_url}"],
            input="\n".join(lines),
            text=True,
            check=True,
        )
        restored = CliRunner().invoke(
            app, ["restore", record.id, "--to", target, "-c", str(config), "--no-globals"]
        )
        assert restored.exit_code == 0, restored.output
        with psycopg.connect(target) as connection:
            owner = connection.execute(
                "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'monitors'"
            ).fetchone()
            policy = connection.execute("SELECT polname FROM pg_policy").fetchone()
        assert owner == (role,) and policy == ("mine",)


def test_globals_without_passwords_for_a_user_who_cannot_read_them(
    pg_database: str, role: str, pg_server_url: str
) -> None:
    """As on a managed service: pg_authid is out of reach, so the passwords stay out."""
    login = f"b14_reader_{secrets.token_hex(3)}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
    try:
        url = make_url(pg_database).set(username=login).render_as_string(hide_password=False)
        data, passwords = dump_globals(Database(name="main", url=url))
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
    assert passwords is False
    assert f'CREATE ROLE "{role}";'.encode() in data


def test_globals_missing_from_storage_fail_verification(tmp_path: Path, pg_database: str) -> None:
    seed(pg_database)
    config = configure(
        tmp_path, pg_database, (tmp_path / "backups").as_uri(), backup={"compression": "gzip:1"}
    )
    assert CliRunner().invoke(app, ["backup", "-c", str(config)]).exit_code == 0
    [record] = backups(tmp_path)
    keys = Keys.of(record.id)
    loaded = load_config(config)
    storage = open_storage(loaded.backup)
    manifest = json.loads((tmp_path / "backups" / keys.manifest).read_text())
    (tmp_path / "backups" / keys.globals).unlink()

    verification = verify(
        manifest,
        read_back(storage, keys),
        loaded.databases[0],
        previous_size=None,
        max_age=loaded.backup.max_age,
        now=datetime.now(UTC),
    )

    assert {c.name: c.observed for c in verification.failures} == {"globals": "unreadable"}
