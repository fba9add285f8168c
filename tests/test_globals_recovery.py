"""The roles a backup needs, recreated on recovery: a database whose owner, grants and
row-level security policy name roles (with spaces, dots, quotes, a newline, non-ASCII
letters in their names) is backed up to S3, the roles are dropped from the server (as on a
fresh one), and `vigil restore` and the drill create them again from the globals saved
with the backup (their attributes and memberships too) and end complete; a connecting
user without CREATEROLE gets the missing roles named instead. The globals file is read by
a real SQL tokenizer, tested here on what pg_dumpall writes and worse."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from flows.backup import daily_backup
from flows.drill import dr_drill
from tests.backup_helpers import backups, fresh_database, seed
from tests.fixtures.postgres import throwaway_database, with_database
from tests.fixtures.s3 import S3Endpoint
from tests.helpers import run, write_config
from vigil.backup.globals_sql import MEMBERSHIP, TABLESPACE, classify, read_globals, statements
from vigil.cli import app

# --- the tokenizer, without a server ----------------------------------------------------------

NASTY = 'we;ird "x"\n-- not a comment.v'
FILE = f"""--
-- PostgreSQL database cluster dump
--

\\restrict abcDEF123

SET default_transaction_read_only = off;
SET standard_conforming_strings = on;

CREATE ROLE "{NASTY.replace('"', '""')}";
ALTER ROLE "{NASTY.replace('"', '""')}" WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM;''x''--';
CREATE ROLE app; /* a ; comment /* nested ; */ still ; comment */
COMMENT ON ROLE app IS $tag$ one ; $$ two $tag$;
ALTER ROLE app SET search_path TO 'a;b', "c""d";
CREATE ROLE tablespace;
GRANT app TO "{NASTY.replace('"', '""')}" WITH ADMIN OPTION GRANTED BY postgres;
CREATE TABLESPACE "big disk" OWNER app LOCATION '/srv/big;disk';
GRANT ALL ON TABLESPACE "big disk" TO app;
COMMENT ON ROLE tablespace IS E'it\\'s ; odd';

\\unrestrict abcDEF123
"""


def test_the_globals_file_is_read_as_sql_not_as_lines() -> None:
    read = read_globals(FILE)

    assert sorted(read.roles) == sorted([NASTY, "app", "tablespace"])
    assert [c.statement.head() for c in read.roles[NASTY]] == ["CREATE ROLE", "ALTER ROLE"]
    assert read.roles[NASTY][1].sql.endswith("PASSWORD 'SCRAM;''x''--'")
    assert [c.statement.head() for c in read.roles["app"]] == [
        "CREATE ROLE",
        "COMMENT ON ROLE",
        "ALTER ROLE",
    ]
    assert read.roles["app"][1].sql == "COMMENT ON ROLE app IS $tag$ one ; $$ two $tag$"
    assert len(read.roles["tablespace"]) == 2  # a role may be called tablespace
    [grant] = read.memberships
    assert (grant.roles, grant.members) == (("app",), (NASTY,))
    assert "GRANTED BY" not in grant.sql and grant.sql.endswith("WITH ADMIN OPTION")
    assert read.tablespaces == ["big disk"] and read.other == []
    assert read.related(["app"]) == {"app", NASTY}


def test_statements_split_only_outside_quotes_and_comments() -> None:
    found = statements("SELECT 'a;b'; SELECT $$;$$ -- ;\n; SELECT \"x;\" /* ; */")
    assert [s.text for s in found] == [
        "SELECT 'a;b'",
        "SELECT $$;$$ -- ;",
        'SELECT "x;" /* ; */',
    ]
    assert classify(found[0]).kind not in (MEMBERSHIP, TABLESPACE)


# --- on a real server ---------------------------------------------------------------------------


@dataclass
class Backed:
    tmp: Path
    server: str
    backup_id: str
    group: str  # named by the policy and a grant
    owner: str  # owns a table
    login: str  # a member of the group: needed through the membership only
    body: dict[str, Any]

    @property
    def roles(self) -> list[str]:
        return [self.group, self.owner, self.login]

    def config(self, **drill: Any) -> str:
        body = {**self.body, "drill": {"target_url": self.server, "rto": "10m", "rpo": "1h"}}
        body["drill"].update(drill)
        return str(write_config(self.tmp, yaml.safe_dump(body, sort_keys=False)))


def _ident(name: str) -> sql.Composable:
    return sql.Identifier(name)


def drop_roles(server: str, roles: list[str]) -> None:
    with psycopg.connect(server, autocommit=True) as admin:
        for role in roles:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(_ident(role)))


def existing(server: str, roles: list[str]) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(server) as admin:
        rows = admin.execute(
            "SELECT rolname, rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = ANY(%s)",
            (roles,),
        ).fetchall()
    return {str(r[0]): tuple(r[1:]) for r in rows}


def member_of(server: str, member: str) -> list[str]:
    with psycopg.connect(server) as admin:
        rows = admin.execute(
            "SELECT pg_get_userbyid(roleid) FROM pg_auth_members "
            "WHERE member = (SELECT oid FROM pg_roles WHERE rolname = %s)",
            (member,),
        ).fetchall()
    return [str(r[0]) for r in rows]


@pytest.fixture(scope="module")
def backed(
    tmp_path_factory: pytest.TempPathFactory,
    pg_server_url: str,
    s3_server: S3Endpoint,
    prefect_api: None,
) -> Iterator[Backed]:
    """One backup in S3 of a database whose objects name three odd roles; then the
    database and the roles are gone from the server."""
    tag = secrets.token_hex(3)
    group, owner = f"v14 readers.{tag}", f'v14 "owner"\n{tag}'
    login = f"v14 login ü {tag}"
    tmp = tmp_path_factory.mktemp("globals")
    with throwaway_database(pg_server_url) as source:
        seed(source)
        with psycopg.connect(source, autocommit=True) as db:
            db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(_ident(group)))
            db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(_ident(owner)))
            db.execute(
                sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 3 IN ROLE {}").format(
                    _ident(login), _ident(group)
                )
            )
            db.execute("CREATE TABLE notes (id int PRIMARY KEY, who text)")
            db.execute("INSERT INTO notes VALUES (1, 'a'), (2, 'b')")
            db.execute("ALTER TABLE notes ENABLE ROW LEVEL SECURITY")
            db.execute(
                sql.SQL("CREATE POLICY mine ON notes TO {} USING (who = 'a')").format(_ident(group))
            )
            db.execute(sql.SQL("GRANT SELECT ON users TO {}").format(_ident(group)))
            db.execute(sql.SQL("ALTER TABLE monitors OWNER TO {}").format(_ident(owner)))
        body = {
            "databases": [{"name": "main", "url": source}],
            "backup": {
                "storage": f"s3://{s3_server.new_bucket()}/vigil",
                "s3": {
                    "endpoint_url": s3_server.url,
                    "region": "us-east-1",
                    "access_key_id": "testing",
                    "secret_access_key": "testing",
                },
            },
        }
        made = Backed(tmp, pg_server_url, "", group, owner, login, body)
        state, _ = run(daily_backup, config_path=made.config())
        assert state.is_completed(), state.message
        [record] = backups(tmp)
        made.backup_id = record.id
    drop_roles(pg_server_url, made.roles)  # the database that needed them went first
    yield made
    drop_roles(pg_server_url, made.roles)


@pytest.fixture
def gone(backed: Backed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backed]:
    """The roles absent before the test and after it (its targets are dropped by then)."""
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    drop_roles(backed.server, backed.roles)
    yield backed
    drop_roles(backed.server, backed.roles)


@pytest.fixture
def no_createrole(pg_server_url: str) -> Iterator[str]:
    """A login that may create databases but not roles."""
    name = f"v14_nocreate_{secrets.token_hex(3)}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(_ident(name)))
    yield name
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        for (database,) in admin.execute(
            "SELECT datname FROM pg_database WHERE datdba = "
            "(SELECT oid FROM pg_roles WHERE rolname = %s)",
            (name,),
        ).fetchall():
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(_ident(str(database))))
        admin.execute(sql.SQL("DROP ROLE {}").format(_ident(name)))


def as_user(url: str, user: str) -> str:
    return make_url(url).set(username=user).render_as_string(hide_password=False)


def restore(backed: Backed, target: str, *extra: str) -> Any:
    return CliRunner().invoke(
        app, ["restore", backed.backup_id, "--to", target, "-c", backed.config(), *extra]
    )


def test_vigil_restore_recreates_the_roles_the_backup_needs(gone: Backed) -> None:
    with fresh_database(gone.server) as target:
        refused = restore(gone, target, "--no-globals")
        assert refused.exit_code == 1, refused.output
        assert existing(gone.server, gone.roles) == {}
        said = refused.output
        assert f"{gone.group}, {gone.owner}" in said or f"{gone.owner}, {gone.group}" in said

        restored = restore(gone, target)

        assert restored.exit_code == 0, restored.output
        assert "roles created from the backup's globals: " in restored.output
        for role in gone.roles:
            assert role in restored.output
        assert existing(gone.server, gone.roles) == {
            gone.group: (False, -1),
            gone.owner: (False, -1),
            gone.login: (True, 3),
        }
        assert member_of(gone.server, gone.login) == [gone.group]
        with psycopg.connect(target) as db:
            owner = db.execute(
                "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'monitors'"
            ).fetchone()
            policy = db.execute(
                "SELECT polname, pg_get_userbyid(polroles[1]) FROM pg_policy"
            ).fetchone()
        assert owner == (gone.owner,) and policy == ("mine", gone.group)

    # Again onto a server that now has them: nothing is created, nothing altered.
    with fresh_database(gone.server) as target:
        again = restore(gone, target, "--json")
        assert again.exit_code == 0, again.output
        assert '"created": []' in again.stdout


def test_vigil_restore_names_the_roles_a_user_without_createrole_cannot_make(
    gone: Backed, no_createrole: str
) -> None:
    target = as_user(with_database(gone.server, f"{no_createrole}_target"), no_createrole)

    refused = restore(gone, target)

    assert refused.exit_code == 1, refused.output
    said = refused.output
    assert "permission denied to create role" in said
    assert "refer to roles the target server lacks:" in said
    for role in (gone.group, gone.owner):
        assert role in said
    assert existing(gone.server, gone.roles) == {}


def _restore_phase(summary: dict[str, Any]) -> dict[str, Any]:
    [phase] = [p for p in summary["phases"] if p["name"] == "restore main"]
    return phase


def test_the_drill_recreates_the_roles_and_ends_complete(gone: Backed) -> None:
    state, summary = run(dr_drill, config_path=gone.config())

    assert state.is_completed(), state.message
    phase = _restore_phase(summary)
    assert phase["verdict"] == "ok", phase
    found = {f["name"]: f for f in phase["findings"]}
    assert found["globals"]["ok"] and all(f["ok"] for f in phase["findings"])
    for role in gone.roles:
        assert role in found["globals"]["observed"]
    for role in (gone.group, gone.login):  # the report's table shows a newline inert
        assert role in summary["report"]
    assert set(existing(gone.server, gone.roles)) == set(gone.roles)


def test_the_drill_names_the_roles_it_could_not_create(gone: Backed, no_createrole: str) -> None:
    state, summary = run(
        dr_drill, config_path=gone.config(target_url=as_user(gone.server, no_createrole))
    )

    assert state.is_failed(), state.message
    phase = _restore_phase(summary)
    assert phase["verdict"] == "FAILED"
    found = {f["name"]: f for f in phase["findings"]}
    assert not found["globals"]["ok"]
    for role in (gone.group, gone.owner):
        assert role in found["globals"]["observed"] or role in str(summary["action_items"])
    assert "permission denied to create role" in str(summary["action_items"])
    assert existing(gone.server, gone.roles) == {}
