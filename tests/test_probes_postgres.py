"""The PostgreSQL probe against a real server (trust auth on 127.0.0.1 by default)."""

from __future__ import annotations

import time

from sqlalchemy.engine import make_url

from tasks.probes import probe_batch
from vigil.config import Monitor

SECRET = "pa55w0rd-secret"


def pg(url: str, **extra: object) -> Monitor:
    return Monitor.model_validate({"name": "pg", "type": "postgres", "url": url, **extra})


def test_connect_and_query(pg_server_url: str) -> None:
    plain, number, no_row = probe_batch(
        [
            pg(pg_server_url),
            pg(pg_server_url, query="select 41 + 1"),
            pg(pg_server_url, query="select 1 where false"),
        ]
    )
    assert plain.connected and plain.error is None and plain.result == 1
    assert number.result == 42 and number.response_time is not None
    assert no_row.connected and no_row.error is None and no_row.result is None


def test_slow_query_is_cancelled_at_the_timeout(pg_server_url: str) -> None:
    started = time.monotonic()
    [obs] = probe_batch([pg(pg_server_url, query="select pg_sleep(5)", timeout="500ms")])
    assert time.monotonic() - started < 1.5
    assert obs.connected and obs.result is None
    assert obs.error == "query timed out after 500ms"


def test_queries_run_read_only(pg_server_url: str) -> None:
    [obs] = probe_batch([pg(pg_server_url, query="create table probe_was_here (x int)")])
    assert obs.error == "query failed: cannot execute CREATE TABLE in a read-only transaction"
    [check] = probe_batch(
        [
            pg(
                pg_server_url,
                query="select count(*) from pg_tables where tablename = 'probe_was_here'",
            )
        ]
    )
    assert check.result == 0


def test_bad_sql(pg_server_url: str) -> None:
    [obs] = probe_batch([pg(pg_server_url, query="selec 1")])
    assert obs.connected and obs.error == 'query failed: syntax error at or near "selec"'


def test_failed_logins_never_show_the_password(pg_server_url: str) -> None:
    server = make_url(pg_server_url)
    unknown_user = server.set(username="nosuchuser", password=SECRET)
    # A database named like the password: the server's message repeats it.
    echoed = server.set(password=SECRET, database=SECRET)
    observed = probe_batch(
        [pg(u.render_as_string(hide_password=False)) for u in (unknown_user, echoed)]
    )
    assert all(not o.connected and o.error for o in observed)
    assert all(SECRET not in (o.error or "") for o in observed)
    assert "nosuchuser" in (observed[0].error or "")
    assert 'database "***" does not exist' in (observed[1].error or "")


def test_unreachable_server(closed_port: int) -> None:
    [obs] = probe_batch([pg(f"postgresql://postgres@127.0.0.1:{closed_port}/postgres")])
    assert not obs.connected
    assert obs.error == (
        f'connection to server at "127.0.0.1", port {closed_port} failed: Connection refused'
    )
