"""No false failures on what PostgreSQL accepts: a database with partitioned tables and
their parent indexes, a logical-replication subscription, -infinity, BC dates, NaN and
infinite numbers, and names with spaces, dots, quotes, capitals, keywords and newlines is
backed up, verified (its odd tables named in critical_tables and min_rows), restore-tested
and passes; its subscription never reaches the scratch database, and a leftover scratch
database holding one is still dropped. amcheck is seen failing on a real corrupt index and
not failing on a refusal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from tasks.recovery import scratch
from tasks.recovery.inspect import btree_indexes, check_index, install_amcheck, run_sql_checks
from tests.fixtures.postgres import throwaway_database, with_database
from tests.fixtures.restore import Setup, checks_by_name, scratch_databases
from vigil import recovery
from vigil import restore_test as rt
from vigil.config import SqlCheck

pytestmark = pytest.mark.usefixtures("prefect_api", "nothing_left_behind")

HOSTILE = '''
CREATE TABLE measurements (id bigint, at timestamptz NOT NULL, v numeric,
    PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE measurements_old PARTITION OF measurements
    FOR VALUES FROM (MINVALUE) TO ('2000-01-01');
CREATE TABLE measurements_new PARTITION OF measurements
    FOR VALUES FROM ('2000-01-01') TO (MAXVALUE);
CREATE INDEX measurements_v ON measurements (v);
INSERT INTO measurements VALUES (1, '-infinity', 'NaN'), (2, '0044-03-15 BC', 'Infinity'),
    (3, '2001-02-03 04:05:06+00', '-Infinity'), (4, 'infinity', 1.5);
CREATE TABLE only_minus_infinity (at timestamp, d date, x float8, r real);
INSERT INTO only_minus_infinity VALUES ('-infinity', '-infinity', 'NaN', 'Infinity'),
    ('4713-01-01 BC', '0001-01-01 BC', '-Infinity', 'NaN');
CREATE SCHEMA "my schema";
CREATE TABLE "my schema"."odd.name" (id int PRIMARY KEY, "we""ird col" text);
INSERT INTO "my schema"."odd.name" SELECT g, 'x' FROM generate_series(1, 7) g;
CREATE SCHEMA "a.b";
CREATE TABLE "a.b"."c.d" (id int PRIMARY KEY);
INSERT INTO "a.b"."c.d" VALUES (1), (2);
CREATE TABLE "a.b.c" (id int PRIMARY KEY);
INSERT INTO "a.b.c" VALUES (1);
CREATE TABLE "Mixed Case ""quoted""" (id int PRIMARY KEY);
INSERT INTO "Mixed Case ""quoted""" VALUES (1), (2), (3);
CREATE TABLE "user" (id int PRIMARY KEY, "order" int);
INSERT INTO "user" VALUES (1, 1);
CREATE TABLE "new
line" (id int PRIMARY KEY, at timestamptz);
INSERT INTO "new
line" VALUES (1, '-infinity');
'''


@contextmanager
def subscribed(url: str, server_url: str) -> Iterator[None]:
    """A subscription in database `url` to a publication in another database on the same
    server (connect = false: no slot, no replication needed), dropped afterwards so the
    database itself can be."""
    with throwaway_database(server_url, "vigil_b14_pub") as publisher:
        with psycopg.connect(publisher, autocommit=True) as pub:
            pub.execute("CREATE TABLE shipped (id int PRIMARY KEY)")
            pub.execute("CREATE PUBLICATION vigil_pub FOR TABLE shipped")
        conninfo = psycopg.conninfo.make_conninfo(publisher)
        with psycopg.connect(url, autocommit=True) as sub:
            sub.execute("CREATE TABLE shipped (id int PRIMARY KEY)")
            sub.execute(
                sql.SQL(
                    "CREATE SUBSCRIPTION vigil_sub CONNECTION {} PUBLICATION vigil_pub "
                    "WITH (connect = false)"
                ).format(sql.Literal(conninfo))
            )
        try:
            yield
        finally:
            with psycopg.connect(server_url, autocommit=True) as admin:
                name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
                scratch.drop_subscriptions(admin, str(name))


def subscriptions_on(server_url: str) -> dict[str, str]:
    with psycopg.connect(server_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT s.subname, d.datname FROM pg_subscription s "
            "JOIN pg_database d ON d.oid = s.subdbid"
        )
        return {str(db): str(sub) for sub, db in rows}


def test_a_database_of_real_world_kinds_names_and_values_passes(
    setup: Setup, pg_server_url: str
) -> None:
    with psycopg.connect(setup.source, autocommit=True) as source:
        source.execute(HOSTILE)
        btrees = source.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
            "WHERE c.relkind = 'i' AND a.amname = 'btree' AND c.relnamespace <> "
            "'pg_catalog'::regnamespace AND c.relnamespace <> 'pg_toast'::regnamespace"
        ).fetchone()
        parents = source.execute("SELECT count(*) FROM pg_class WHERE relkind = 'I'").fetchone()
    assert parents == (2,), "partitioned parent indexes are in the database"
    setup.database = {
        "critical_tables": ['my schema."odd.name"', '"a.b"."c.d"', '"a.b.c"', "user"],
        "min_rows": {'my schema."odd.name"': 7, 'Mixed Case "quoted"': 3, "new\nline": 1},
    }
    with subscribed(setup.source, pg_server_url):
        before = set(scratch_databases(pg_server_url))
        setup.back_up()
        state, _ = setup.restore_test()
        assert set(subscriptions_on(pg_server_url)) & scratch_databases(pg_server_url) == set()
    assert scratch_databases(pg_server_url) <= before

    assert state.is_completed(), state.message
    record = setup.latest()
    checks = checks_by_name(record)
    assert all(c["ok"] for c in record.checks), [c for c in record.checks if not c["ok"]]
    # every B-tree with storage, and the primary key of the subscribed table, shipped
    assert checks["amcheck"]["observed"] == f"{btrees[0] + 1} indexes checked"  # type: ignore[index]
    assert checks['rows my schema."odd.name"']["observed"] == "7"
    assert checks['rows "a.b"."c.d"']["observed"] == "2"
    assert checks['rows public."a.b.c"']["observed"] == "1"
    assert checks["rows public.new\nline"]["observed"] == "1"
    assert checks["rows public.only_minus_infinity"]["observed"] == "2"
    # -infinity, BC and year-1 stamps are skipped, never a crash; the newest real row wins
    with psycopg.connect(setup.source) as source:
        newest = source.execute("SELECT max(created_at) FROM users").fetchone()
    assert newest is not None and record.recovery_point == newest[0]
    from tests.backup_helpers import verifications  # the backup's own checks

    [verified] = verifications(setup.tmp_path)
    assert verified.status == "passed", verified.verification_details


def test_a_leftover_scratch_database_holding_a_subscription_is_dropped(
    setup: Setup, pg_server_url: str
) -> None:
    leftover = rt.scratch_name(setup.name, datetime.now(UTC) - timedelta(days=7))
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(leftover)))
    url = with_database(pg_server_url, leftover)
    try:
        with throwaway_database(pg_server_url, "vigil_b14_pub") as publisher:
            with psycopg.connect(url, autocommit=True) as inside:
                inside.execute(
                    sql.SQL(
                        "CREATE SUBSCRIPTION left_sub CONNECTION {} PUBLICATION p "
                        "WITH (connect = false, slot_name = 'left_sub')"
                    ).format(sql.Literal(publisher))
                )
            with (
                psycopg.connect(pg_server_url, autocommit=True) as admin,
                pytest.raises(psycopg.errors.ObjectInUse, match="subscription"),
            ):
                admin.execute(
                    sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(leftover))
                )
            setup.back_up()

            state, summary = setup.restore_test()

        assert state.is_completed(), state.message
        assert summary["databases"][0]["dropped_leftovers"] == [leftover]
        assert leftover not in scratch_databases(pg_server_url)
        assert leftover not in subscriptions_on(pg_server_url)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            scratch.drop_database(admin, leftover)


def test_amcheck_fails_on_real_corruption_and_not_on_a_refusal(pg_database: str) -> None:
    """A B-tree whose operator class's comparison is replaced after the build really is
    out of order for amcheck (XX002): corrupt. bt_index_check of a partitioned parent
    index is refused (it has no storage): reported as not checked, not as corrupt."""
    with psycopg.connect(pg_database, autocommit=True) as connection:
        connection.execute(
            """
            CREATE FUNCTION cmp(int, int) RETURNS int LANGUAGE sql IMMUTABLE
                AS 'SELECT CASE WHEN $1 < $2 THEN -1 WHEN $1 > $2 THEN 1 ELSE 0 END';
            CREATE OPERATOR CLASS lying_ops FOR TYPE int USING btree AS
                OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
                FUNCTION 1 cmp(int, int);
            CREATE TABLE t (x int);
            INSERT INTO t SELECT generate_series(1, 2000);
            CREATE INDEX t_x ON t (x lying_ops);
            CREATE TABLE p (id int PRIMARY KEY) PARTITION BY RANGE (id);
            CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);
            """
        )
        assert install_amcheck(connection) == (None, True)
        indexes = btree_indexes(connection)
        checked = {name: check_index(connection, name, oid) for name, oid in indexes}
        assert set(checked) == {"public.t_x", "public.p1_pkey"}, "no parent index, p_pkey"
        assert recovery.btree_finding(list(checked.values()), None).ok
        connection.execute(
            "CREATE OR REPLACE FUNCTION cmp(int, int) RETURNS int LANGUAGE sql IMMUTABLE "
            "AS 'SELECT CASE WHEN $1 < $2 THEN 1 WHEN $1 > $2 THEN -1 ELSE 0 END'"
        )
        corrupt = check_index(connection, "public.t_x", oid_of(connection, "t_x"))
        parent = check_index(connection, "public.p_pkey", oid_of(connection, "p_pkey"))

    assert corrupt.corrupt and corrupt.problem is not None
    assert not parent.corrupt and parent.problem is not None
    finding = recovery.btree_finding([corrupt, parent, checked["public.p1_pkey"]], None)
    assert not finding.ok
    assert finding.problem is not None
    assert finding.problem.startswith("amcheck: 1 of 2 B-tree indexes corrupt: public.t_x (")
    assert "1 more could not be checked: public.p_pkey (" in finding.problem
    refused = recovery.btree_finding([parent, checked["public.p1_pkey"]], None)
    assert refused.ok and refused.observed.startswith(
        "1 indexes checked; 1 could not be checked: public.p_pkey ("
    )


def oid_of(connection: psycopg.Connection[tuple[object, ...]], name: str) -> int:
    row = connection.execute("SELECT %s::regclass::oid", (name,)).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_a_sql_check_answering_nan_or_infinity_is_judged_not_crashed(pg_database: str) -> None:
    """NaN is no "true" (Python would call it truthy); infinity is non-zero, so true."""
    checks = [
        SqlCheck(name="nan-float", sql="select 'NaN'::float8"),
        SqlCheck(name="nan-numeric", sql="select 'NaN'::numeric"),
        SqlCheck(name="infinite", sql="select '-Infinity'::numeric"),
        SqlCheck(
            name="minus-infinity-date",
            sql="select max(d) > '-infinity' from (values ('-infinity'::date)) v(d)",
        ),
    ]
    with psycopg.connect(pg_database, autocommit=True) as connection:
        found = {f.name: (f.ok, f.observed) for f in run_sql_checks(checks, "", connection)}
    assert found == {
        "check nan-float": (False, "nan"),
        "check nan-numeric": (False, "Decimal('NaN')"),
        "check infinite": (True, "Decimal('-Infinity')"),
        "check minus-infinity-date": (False, "False"),
    }
