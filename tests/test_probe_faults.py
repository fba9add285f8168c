"""Bad targets are failed checks with a clear reason, never a crashed sweep."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tasks.probes import probe_batch
from vigil.config import Monitor


def monitor(url: str, **extra: object) -> Monitor:
    return Monitor.model_validate({"name": "m", "url": url, **extra})


@pytest.fixture
def raw_server() -> Iterator[tuple[int, list]]:
    """A raw socket server; the test appends its per-connection behaviour to `modes`."""
    modes: list = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(50)
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            threading.Thread(target=modes[0], args=(conn, stop), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield sock.getsockname()[1], modes
    stop.set()
    sock.close()


def dribble(conn: socket.socket, stop: threading.Event) -> None:
    """Slow-loris: one byte of a status line every 0.3 s, forever."""
    try:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
            if stop.is_set():
                break
            conn.send(bytes([byte]))
            time.sleep(0.3)
    except OSError:
        pass
    finally:
        conn.close()


def reset(conn: socket.socket, stop: threading.Event) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.recv(1024)
    conn.close()


def test_slow_loris_is_cut_at_the_timeout(raw_server) -> None:
    port, modes = raw_server
    modes.append(dribble)
    started = time.monotonic()
    [obs] = probe_batch([monitor(f"http://127.0.0.1:{port}/", timeout="1s")])
    assert time.monotonic() - started < 1.8
    assert obs.error == "timed out after 1s" and obs.status is None


def test_connection_reset(raw_server) -> None:
    port, modes = raw_server
    modes.append(reset)
    [obs] = probe_batch([monitor(f"http://127.0.0.1:{port}/", timeout="2s")])
    assert obs.status is None
    assert obs.error and ("reset" in obs.error or "closed" in obs.error)


def test_refused_and_dns_failure(closed_port: int) -> None:
    refused, dns = probe_batch(
        [
            monitor(f"http://127.0.0.1:{closed_port}/"),
            monitor("http://nonexistent.invalid/", timeout="3s"),
        ]
    )
    assert refused.error == "connection refused by 127.0.0.1"
    assert dns.error == "DNS lookup failed for nonexistent.invalid"


def test_huge_body_is_capped(http_target) -> None:
    url = http_target.set("/big", body=b"x" * 5_000_000)
    [obs] = probe_batch([monitor(url, max_body="64KB", conditions=["len([BODY]) > 0"])])
    assert obs.status == 200
    assert obs.body is not None and len(obs.body) == 64_000


def test_redirect_loop(webhook_receiver) -> None:
    from tests.fixtures.receivers import Reply

    webhook_receiver.respond_with(Reply(302, headers={"Location": webhook_receiver.url}))
    [obs] = probe_batch([monitor(webhook_receiver.url)])
    assert obs.error == "too many redirects (more than 10)"


def test_self_signed_certificate_expiring_soon(https_receiver) -> None:
    url = https_receiver.url
    trusting, verifying = probe_batch(
        [
            monitor(url, verify_tls=False, conditions=["[CERTIFICATE_EXPIRATION] > 7d"]),
            monitor(url, conditions=["[STATUS] == 200"]),
        ]
    )
    assert trusting.status == 200
    assert trusting.certificate_expiration is not None
    assert timedelta(hours=20) < trusting.certificate_expiration < timedelta(days=1, hours=1)
    assert verifying.status is None
    assert verifying.error and verifying.error.startswith("TLS error: certificate verify failed")


def test_tcp_open_and_closed(closed_port: int) -> None:
    open_, closed = probe_batch(
        [
            Monitor(name="pg", type="tcp", host="127.0.0.1", port=5432),
            Monitor(name="no", type="tcp", host="127.0.0.1", port=closed_port),
        ]
    )
    assert open_.connected and open_.response_time is not None
    assert not closed.connected and closed.error == "connection refused by 127.0.0.1"


def test_postgres_query_timeout_read_only_and_redacted_password(pg_database: str) -> None:
    slow, write, bad = probe_batch(
        [
            Monitor(
                name="s",
                type="postgres",
                url=pg_database,
                query="select pg_sleep(5)",
                timeout="500ms",
            ),
            Monitor(name="w", type="postgres", url=pg_database, query="create table t (x int)"),
            Monitor(
                name="b",
                type="postgres",
                url="postgresql://nosuchuser:pa55w0rd-secret@127.0.0.1:5432/postgres",
            ),
        ]
    )
    assert slow.connected and slow.error == "query timed out after 500ms"
    assert write.error and "read-only" in write.error
    assert bad.error and "pa55w0rd-secret" not in bad.error and "nosuchuser" in bad.error
