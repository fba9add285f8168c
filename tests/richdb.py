"""A database holding the object kinds real applications and PostgreSQL's own test suites
(src/bin/pg_dump/t/002_pg_dump.pl, src/test/regress/sql/) create, with real rows: partitioned
tables (range, list, hash, sub-partitions, a default partition, a primary key and indexes on
the parent), large objects, owned and standalone sequences (one never called), materialized
views with and without data, row-level security enabled and forced with policies, triggers,
an event trigger, rules, functions, a procedure and an aggregate, extensions, a foreign
server with a foreign table and a user mapping, publications, comments, grants, column
defaults, domains, enum and composite types, views, odd names (spaces, dots, quotes,
unicode) and odd values (+-infinity, BC dates, NaN, empty strings, every byte in bytea).

`build(url)` makes it in an empty database; `RICH` describes what it holds so tests can
name what a restore must bring back. `EXTREME_NAMES` adds identifiers with newlines and a
schema with a space and a dot, which pg_restore's listing prints differently from the
catalog: kept apart, so a test can use it where the listing is not read.
"""

from __future__ import annotations

import psycopg

# Cluster-wide: created once, kept (other runs on the same server may use it).
READER_ROLE = "vigil_rich_reader"

ROLE = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER_ROLE}') THEN
    CREATE ROLE {READER_ROLE} NOLOGIN;
  END IF;
END $$;
"""

SCHEMA = f"""
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
CREATE EXTENSION IF NOT EXISTS pg_trgm;  -- installed, nothing uses it yet

CREATE SCHEMA app;
COMMENT ON SCHEMA app IS 'the application''s own schema';
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE app.pair AS (a integer, b text);
CREATE DOMAIN app.email AS citext CHECK (VALUE ~ '@') NOT NULL;
CREATE DOMAIN app.positive AS numeric DEFAULT 1 CHECK (VALUE > 0 OR VALUE = 'NaN');

CREATE SEQUENCE app.invoice_no START 1000 INCREMENT 7;
CREATE SEQUENCE app.never_called START 42;

CREATE TABLE app.tenants (id int PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE app.accounts (
    id bigserial PRIMARY KEY,
    tenant_id int NOT NULL REFERENCES app.tenants (id),
    email app.email,
    mood app.mood NOT NULL DEFAULT 'ok',
    attrs hstore,
    pair app.pair,
    balance app.positive,
    invoice bigint DEFAULT nextval('app.invoice_no'),
    secret bytea DEFAULT gen_random_bytes(4),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE app.accounts IS 'one row per customer account';
COMMENT ON COLUMN app.accounts.email IS 'where invoices go';
ALTER TABLE app.accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.accounts
    USING (tenant_id = coalesce(nullif(current_setting('app.tenant', true), ''), '0')::int);
CREATE POLICY readers_see_all ON app.accounts AS PERMISSIVE FOR SELECT TO {READER_ROLE}
    USING (true);
CREATE TABLE app.notes (id serial PRIMARY KEY, body text NOT NULL DEFAULT '');
ALTER TABLE app.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY notes_insert ON app.notes FOR INSERT WITH CHECK (length(body) < 1000);
GRANT USAGE ON SCHEMA app TO {READER_ROLE};
GRANT SELECT ON app.accounts TO {READER_ROLE};
GRANT SELECT (id, body) ON app.notes TO {READER_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO {READER_ROLE};

-- Functions, a procedure, an aggregate, triggers, an event trigger, rules.
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.body := trim(NEW.body); RETURN NEW; END $$;
CREATE TRIGGER notes_touch BEFORE INSERT OR UPDATE ON app.notes
    FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE FUNCTION app.add(a int, b int DEFAULT 1) RETURNS int LANGUAGE sql IMMUTABLE
    RETURN a + b;
CREATE PROCEDURE app.bump(n int) LANGUAGE sql AS $$ SELECT n + 1 $$;
CREATE AGGREGATE app.total(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0');
GRANT EXECUTE ON FUNCTION app.add(int, int) TO {READER_ROLE};
CREATE TABLE app.audit (id bigserial PRIMARY KEY, what text, at timestamptz DEFAULT now());
CREATE FUNCTION app.remember() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO app.audit (what) VALUES (TG_OP || ' ' || TG_TABLE_NAME); RETURN NULL; END $$;
CREATE TRIGGER accounts_audit AFTER INSERT OR DELETE ON app.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION app.remember();
CREATE TRIGGER accounts_rarely AFTER UPDATE ON app.accounts
    FOR EACH ROW WHEN (OLD.mood IS DISTINCT FROM NEW.mood) EXECUTE FUNCTION app.remember();
ALTER TABLE app.accounts DISABLE TRIGGER accounts_rarely;
CREATE FUNCTION app.no_drops() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN RAISE NOTICE 'ddl: %', tg_tag; END $$;
CREATE EVENT TRIGGER vigil_rich_ddl ON ddl_command_end WHEN TAG IN ('DROP TABLE')
    EXECUTE FUNCTION app.no_drops();
CREATE TABLE app.archive_notes (id int, body text);
CREATE RULE notes_archive AS ON DELETE TO app.notes
    DO ALSO INSERT INTO app.archive_notes VALUES (OLD.id, OLD.body);

-- Partitions: range with sub-partitions and a default, list, hash; keys on the parents.
CREATE TABLE app.measurements (
    id bigint NOT NULL, at date NOT NULL, city text NOT NULL, reading double precision,
    PRIMARY KEY (id, at, city)
) PARTITION BY RANGE (at);
CREATE INDEX measurements_city ON app.measurements (city);
CREATE TABLE app.m2023 PARTITION OF app.measurements
    FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE app.m2024 PARTITION OF app.measurements
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY LIST (city);
CREATE TABLE app.m2024_north PARTITION OF app.m2024 FOR VALUES IN ('oslo', 'tromsø');
CREATE TABLE app.m2024_rest PARTITION OF app.m2024 DEFAULT;
CREATE TABLE app.m_default PARTITION OF app.measurements DEFAULT;
CREATE TABLE app.by_kind (kind text NOT NULL, n int) PARTITION BY LIST (kind);
CREATE TABLE app.by_kind_ab PARTITION OF app.by_kind FOR VALUES IN ('a', 'b');
CREATE TABLE app.by_kind_null PARTITION OF app.by_kind FOR VALUES IN ('');
CREATE TABLE app.sessions (id uuid NOT NULL PRIMARY KEY, data jsonb) PARTITION BY HASH (id);
CREATE TABLE app.sessions_0 PARTITION OF app.sessions FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE app.sessions_1 PARTITION OF app.sessions FOR VALUES WITH (MODULUS 2, REMAINDER 1);

-- Views and materialized views (one populated, one WITH NO DATA).
CREATE VIEW app.happy_accounts AS SELECT id, email FROM app.accounts WHERE mood = 'happy'
    WITH CHECK OPTION;
CREATE MATERIALIZED VIEW app.readings_by_city AS
    SELECT city, count(*) AS n, avg(reading) AS mean FROM app.measurements GROUP BY city;
CREATE UNIQUE INDEX readings_by_city_key ON app.readings_by_city (city);
CREATE MATERIALIZED VIEW app.stale_report AS SELECT id FROM app.tenants WITH NO DATA;

-- A foreign server, a user mapping, a foreign table (never queried: no server behind it).
CREATE SERVER vigil_rich_remote FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '127.0.0.1', dbname 'nowhere');
CREATE USER MAPPING FOR CURRENT_USER SERVER vigil_rich_remote OPTIONS (user 'nobody');
CREATE FOREIGN TABLE app.remote_orders (id int, total numeric)
    SERVER vigil_rich_remote OPTIONS (schema_name 'public', table_name 'orders');

-- Publications (no subscription: a scratch database must never subscribe).
CREATE PUBLICATION vigil_rich_pub FOR TABLE app.accounts, app.notes WITH (publish = 'insert');
CREATE PUBLICATION vigil_rich_app_schema FOR TABLES IN SCHEMA app;

-- Odd names a catalog allows and pg_restore's listing shows as they are.
CREATE TABLE public."Mixed Case.Table" ("select" int PRIMARY KEY, "col ""quoted"" here" text);
CREATE TABLE public."données_été" ("clé" text PRIMARY KEY, "valeur €" numeric);
CREATE SEQUENCE public."odd seq.name";
CREATE VIEW public."view with spaces" AS SELECT * FROM public."données_été";

-- Odd values.
CREATE TABLE public.odd_values (
    id int PRIMARY KEY, at timestamptz, day date, f double precision, n numeric,
    s text NOT NULL DEFAULT '', b bytea, r int4range, arr text[], j jsonb
);
"""

DATA = """
INSERT INTO app.tenants SELECT g, 'tenant ' || g FROM generate_series(1, 5) g;
INSERT INTO app.accounts (tenant_id, email, mood, attrs, pair, balance)
    SELECT 1 + g % 5, 'user' || g || '@example.com',
           (ARRAY['sad','ok','happy'])[1 + g % 3]::app.mood, hstore('k', g::text),
           ROW(g, 'p' || g)::app.pair, g
    FROM generate_series(1, 51) g;
INSERT INTO app.notes (body) SELECT '  note ' || g || '  ' FROM generate_series(1, 30) g;
DELETE FROM app.notes WHERE id > 27;
INSERT INTO app.measurements
    SELECT g, date '2023-01-01' + (g % 900), (ARRAY['oslo','tromsø','lima','Zürich'])[1 + g % 4],
           g * 0.5
    FROM generate_series(1, 2000) g;
INSERT INTO app.by_kind SELECT (ARRAY['a','b',''])[1 + g % 3], g FROM generate_series(1, 90) g;
INSERT INTO app.sessions SELECT gen_random_uuid(), jsonb_build_object('n', g)
    FROM generate_series(1, 64) g;
REFRESH MATERIALIZED VIEW app.readings_by_city;
SELECT setval('app.invoice_no', 2024, true);
INSERT INTO public."Mixed Case.Table" SELECT g, 'value "' || g || '"' FROM generate_series(1, 7) g;
INSERT INTO public."données_été" VALUES ('ça', 1.5), ('naïve', 'NaN'), ('', 0);
SELECT nextval('public."odd seq.name"') FROM generate_series(1, 3);
INSERT INTO public.odd_values VALUES
    (1, 'infinity', 'infinity', 'Infinity', 'NaN', '', '\\x00ff10', 'empty', '{}', '{}'),
    (2, '-infinity', '-infinity', '-Infinity', '-0.0', 'tab\there', '\\x', '[1,5)',
     ARRAY['', NULL, 'a,b'], '[null]'),
    (3, '0044-03-15 12:00:00 BC', '4713-01-01 BC', 'NaN', '1e-300', e'line\\nbreak', NULL,
     NULL, NULL, 'null'),
    (4, now(), current_date, 0, 1, 'ünïcødé ✓', decode(repeat('00ff', 64), 'hex'),
     '(,)', ARRAY['x'], '{"a": {"b": [1, 2.5, "c"]}}');
INSERT INTO public.odd_values (id, b)
    SELECT 10, string_agg(set_byte('\\x00'::bytea, 0, g), ''::bytea) FROM generate_series(0, 255) g;
"""

# Large objects: three with content (one empty), with a comment and a grant on one.
LARGE_OBJECTS = f"""
SELECT lo_from_bytea(0, convert_to('the first large object', 'UTF8'));
SELECT lo_from_bytea(0, decode(repeat('deadbeef', 4096), 'hex'));
SELECT lo_from_bytea(0, '');
DO $$ DECLARE o oid; BEGIN
  SELECT min(oid) INTO o FROM pg_largeobject_metadata;
  EXECUTE format('COMMENT ON LARGE OBJECT %s IS %L', o, 'the first');
  EXECUTE format('GRANT SELECT ON LARGE OBJECT %s TO {READER_ROLE}', o);
END $$;
"""

EXTREME_NAMES = """
CREATE SCHEMA "odd schema.v1";
CREATE TABLE "odd schema.v1"."new
line" (id int PRIMARY KEY, "a
b" text DEFAULT 'x');
INSERT INTO "odd schema.v1"."new
line" VALUES (1, 'one'), (2, 'two');
CREATE SEQUENCE "odd schema.v1"."seq
two";
SELECT setval('"odd schema.v1"."seq
two"', 9);
CREATE POLICY "p ""1"" x" ON "odd schema.v1"."new
line" USING (true);
ALTER TABLE "odd schema.v1"."new
line" ENABLE ROW LEVEL SECURITY;
"""

# What the database holds, for tests that name what a restore must bring back.
RICH = {
    "rows": {
        "app.tenants": 5,
        "app.accounts": 51,
        "app.notes": 27,
        "app.audit": 1,  # the statement trigger, once for the INSERT into accounts
        "app.archive_notes": 3,  # the rule, for the notes deleted
        "app.measurements": 2000,
        "app.by_kind": 90,
        "app.sessions": 64,
    },
    "large_objects": 3,
    "sequences": {"app.invoice_no": (2024, True), "app.never_called": (42, False)},
    "matviews": {"app.readings_by_city": 4, "app.stale_report": None},
}


def build(url: str, *, extreme_names: bool = False) -> None:
    """Create the rich database's objects and rows in the empty database at `url`."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(ROLE)
        connection.execute(SCHEMA)
        connection.execute(DATA)
        connection.execute(LARGE_OBJECTS)
        if extreme_names:
            connection.execute(EXTREME_NAMES)
        connection.execute("ANALYZE")


def drop_event_triggers(url: str) -> None:
    """Event triggers fire on every DDL of the database: drop ours before the database."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP EVENT TRIGGER IF EXISTS vigil_rich_ddl")
