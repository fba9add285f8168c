"""Names PostgreSQL allows and naive tools split on: a schema, table, column, sequence,
policy and role with newlines, double quotes, dots, spaces and non-ASCII letters, through
`vigil backup` (folder storage), the weekly restore test, `vigil restore`, and a restore
that lost the odd table's rows, caught by the table's name."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql
from typer.testing import CliRunner

from flows.restore_test import weekly_restore_test
from tasks.pg import find_tool
from tasks.recovery import fetch, inspect
from tasks.storage import open_storage
from tests.backup_helpers import backups, fresh_database
from tests.fixtures.postgres import throwaway_database
from tests.helpers import run, write_config
from vigil.backup.facts import qualified
from vigil.cli import app
from vigil.config import load_config

SCHEMA = 'odd schema.v1 ü "s"'
TABLE = 'new\nline "q".t'
COLUMN = 'a\nb.c "d" é'
SEQUENCE = "seq\ntwo"
POLICY = 'p "1" x'


def _q(*names: str) -> sql.Composable:
    return sql.SQL(".").join(sql.Identifier(n) for n in names)


@pytest.fixture(scope="module")
def odd(
    tmp_path_factory: pytest.TempPathFactory, pg_server_url: str, prefect_api: None
) -> Iterator[tuple[Path, str, str]]:
    """(config, backup id, role): one backup to a folder of a database of odd names."""
    role = f'v14 "r".x\n ü {secrets.token_hex(3)}'
    tmp = tmp_path_factory.mktemp("odd")
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    try:
        with throwaway_database(pg_server_url) as source:
            table = _q(SCHEMA, TABLE)
            with psycopg.connect(source, autocommit=True) as db:
                db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
                db.execute(
                    sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, {} text DEFAULT 'x')").format(
                        table, sql.Identifier(COLUMN)
                    )
                )
                db.execute(sql.SQL("INSERT INTO {} VALUES (1, 'one'), (2, 'two')").format(table))
                seq = _q(SCHEMA, SEQUENCE)
                db.execute(sql.SQL("CREATE SEQUENCE {}").format(seq))
                db.execute("SELECT setval(%s, 9)", (f"{_ident(SCHEMA)}.{_ident(SEQUENCE)}",))
                db.execute(
                    sql.SQL("CREATE POLICY {} ON {} TO {} USING (true)").format(
                        sql.Identifier(POLICY), table, sql.Identifier(role)
                    )
                )
                db.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))
                db.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(table, sql.Identifier(role)))
            body = {
                "databases": [
                    {"name": "odd", "url": source, "critical_tables": [qualified(SCHEMA, TABLE)]}
                ],
                "backup": {"storage": (tmp / "backups").as_uri(), "compression": "gzip:1"},
                "restore_test": {"scratch_url": pg_server_url, "jobs": 2},
            }
            config = write_config(tmp, yaml.safe_dump(body, sort_keys=False))
            done = CliRunner().invoke(app, ["backup", "-c", str(config)])
            assert done.exit_code == 0, done.output
            [record] = backups(tmp)
            yield config, record.id, role
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def test_odd_names_pass_the_restore_test_and_vigil_restore(
    odd: tuple[Path, str, str], pg_server_url: str
) -> None:
    config, backup, _ = odd
    state, _ = run(weekly_restore_test, config_path=str(config))
    assert state.is_completed(), state.message

    with fresh_database(pg_server_url) as target:
        done = CliRunner().invoke(app, ["restore", backup, "--to", target, "-c", str(config)])
        assert done.exit_code == 0, done.output
        assert f"rows {qualified(SCHEMA, TABLE)}" not in done.output  # nothing MISSING
        with psycopg.connect(target) as db:
            policy = db.execute("SELECT polname FROM pg_policy").fetchone()
            rows = db.execute(sql.SQL("SELECT count(*) FROM {}").format(_q(SCHEMA, TABLE)))
            assert policy == (POLICY,) and rows.fetchone() == (2,)


def test_losing_the_odd_tables_rows_is_caught_by_its_name(
    odd: tuple[Path, str, str], pg_server_url: str, tmp_path: Path
) -> None:
    config, backup, _ = odd
    fetched = fetch(open_storage(load_config(config).backup), backup, tmp_path)
    toc = subprocess.run(
        [find_tool("pg_restore"), "--list", str(fetched.archive)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    dropped = [line for line in toc if "TABLE DATA" in line and "odd schema" in line]
    assert len(dropped) == 1, toc
    listing = tmp_path / "list"
    listing.write_text("\n".join(";" + line if line in dropped else line for line in toc))
    with fresh_database(pg_server_url) as target:
        subprocess.run(
            [find_tool("pg_restore"), "-L", str(listing), "-d", target, str(fetched.archive)],
            capture_output=True,
            check=True,
        )
        findings = inspect(target, fetched.manifest, timeout=120, jobs=1, amcheck=True).findings

    failed = {f.name: f.problem for f in findings if not f.ok}
    name = qualified(SCHEMA, TABLE)
    assert failed == {f"rows {name}": f"{name}: 2 rows in the manifest, 0 restored"}
