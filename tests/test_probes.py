"""The probe engine against real local servers: answers, failures and the time bounds."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer

from benchmarks.targets import running_target
from tasks.probes import probe_batch, probe_http
from vigil.conditions import Observation, conditions_for, evaluate_all
from vigil.config import Monitor

Behaviour = Callable[[socket.socket], None]


def monitor(url: str, **extra: object) -> Monitor:
    return Monitor.model_validate({"name": "m", "url": url, **extra})


def results(m: Monitor, obs: Observation) -> list[bool]:
    return [r.ok for r in evaluate_all(conditions_for(m), obs)]


@contextmanager
def raw_server(behaviour: Behaviour) -> Iterator[int]:
    """A TCP server running `behaviour` on each connection in a thread; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.settimeout(0.1)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=_serve, args=(conn,), daemon=True).start()

    def _serve(conn: socket.socket) -> None:
        with conn, suppress(OSError):
            behaviour(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def dribble(conn: socket.socket) -> None:
    """Slow-loris: a byte of the status line every half second."""
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
        conn.send(bytes([byte]))
        time.sleep(0.5)


def reset(conn: socket.socket) -> None:
    """Read the request, then close with a RST instead of an answer."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.recv(65536)


def silent(conn: socket.socket) -> None:
    """Accept and say nothing, for longer than any probe waits."""
    conn.recv(65536)
    time.sleep(5)


# --- answers ----------------------------------------------------------------------------


def test_statuses_and_bodies(http_target) -> None:
    ok = monitor(http_target.set("/ok"), conditions=["[STATUS] == 200", "[BODY].status == ok"])
    degraded = monitor(
        http_target.set("/degraded", body={"status": "degraded"}),
        conditions=["[BODY].status == ok"],
    )
    broken = monitor(http_target.set("/503", status=503, body={"status": "down"}))
    text = monitor(http_target.set("/text", body=b"<html>hi</html>"), conditions=["[BODY].x == 1"])
    observed = probe_batch([ok, degraded, broken, text])

    assert [o.status for o in observed] == [200, 200, 503, 200]
    assert all(o.error is None and o.response_time is not None for o in observed)
    assert results(ok, observed[0]) == [True, True]
    assert results(degraded, observed[1]) == [False]
    assert results(broken, observed[2]) == [True, False]  # default 2xx/3xx conditions
    assert observed[3].body == b"<html>hi</html>" and results(text, observed[3]) == [False]


def test_body_read_only_when_a_condition_needs_it(http_target) -> None:
    """(Or when it is a small JSON health document: see the degraded test below.)"""
    document = b'{"status": "ok", "pad": "' + b"x" * 5000 + b'"}'
    url = http_target.set("/ok", body=document)
    status_only, no_conditions, body = probe_batch(
        [
            monitor(url, conditions=["[STATUS] == 200"]),
            monitor(url),
            monitor(url, conditions=["[BODY] == x"]),
        ]
    )
    assert status_only.body is None and no_conditions.body is None
    assert status_only.status == no_conditions.status == 200
    assert body.body == document


def test_huge_body_keeps_only_max_body(http_target) -> None:
    url = http_target.set("/big", body=b"x" * 3_000_000)
    capped, default = probe_batch(
        [
            monitor(url, max_body="10KB", conditions=["len([BODY]) > 0"]),
            monitor(url, conditions=["len([BODY]) > 0"]),
        ]
    )
    assert capped.status == 200 and capped.body == b"x" * 10_000
    assert default.body is not None and len(default.body) == 1_000_000


def test_ip_filled_when_a_condition_uses_it(http_target) -> None:
    url = http_target.set("/ok")
    wanted, unwanted = probe_batch([monitor(url, conditions=["[IP] == 127.0.0.1"]), monitor(url)])
    assert wanted.ip == "127.0.0.1" and unwanted.ip is None


def test_method_headers_and_body_are_sent(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/hook", method="POST", headers={"X-Token": "t"}, data=b'{"ping": 1}'
    ).respond_with_json({"status": "ok"})
    m = monitor(
        httpserver.url_for("/hook"), method="POST", headers={"X-Token": "t"}, body='{"ping": 1}'
    )
    [obs] = probe_batch([m])
    assert obs.status == 200


def test_redirects_followed_or_not(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/old").respond_with_data("", 301, {"Location": "/new"})
    httpserver.expect_request("/new").respond_with_data("here")
    httpserver.expect_request("/loop").respond_with_data("", 302, {"Location": "/loop"})
    followed, kept, loop = probe_batch(
        [
            monitor(httpserver.url_for("/old"), conditions=["[BODY] == here"]),
            monitor(httpserver.url_for("/old"), follow_redirects=False),
            monitor(httpserver.url_for("/loop")),
        ]
    )
    assert followed.status == 200 and followed.body == b"here"
    assert kept.status == 301
    assert loop.status is None and loop.error == "too many redirects (more than 10)"


# --- failures ---------------------------------------------------------------------------


def test_refused_and_unresolvable(closed_port: int) -> None:
    refused, dns = probe_batch(
        [
            monitor(f"http://user:hunter22@127.0.0.1:{closed_port}/"),
            monitor("http://nonexistent.invalid/", timeout="5s"),
        ]
    )
    assert refused.error == "connection refused by 127.0.0.1" and refused.status is None
    assert dns.error == "DNS lookup failed for nonexistent.invalid"
    assert not refused.connected and refused.response_time is None


def test_connection_reset() -> None:
    with raw_server(reset) as port:
        [obs] = probe_batch([monitor(f"http://127.0.0.1:{port}/", timeout="3s")])
    assert obs.status is None
    assert obs.error in (
        "connection reset by 127.0.0.1",
        "connection closed by 127.0.0.1 before a complete answer",
    )


def test_garbage_and_cut_short_answers() -> None:
    def garbage(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"hello there\r\n\r\n")

    def cut_short(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")

    with raw_server(garbage) as bad, raw_server(cut_short) as short:
        not_http, truncated = probe_batch(
            [
                monitor(f"http://127.0.0.1:{bad}/"),
                monitor(f"http://127.0.0.1:{short}/", conditions=["[BODY] == short"]),
            ]
        )
    assert not_http.error == "not an HTTP answer from 127.0.0.1"
    assert truncated.status is None and truncated.error == "body from 127.0.0.1 cut short"


def test_slow_answer_times_out(http_target) -> None:
    url = http_target.set("/slow", delay=3)
    started = time.monotonic()
    [obs] = probe_batch([monitor(url, timeout="500ms")])
    assert time.monotonic() - started < 1.5
    assert obs.status is None and obs.error == "timed out after 500ms"


def test_slow_loris_is_cut_at_the_timeout() -> None:
    with raw_server(dribble) as port:
        started = time.monotonic()
        [obs] = probe_batch([monitor(f"http://127.0.0.1:{port}/", timeout="1s")])
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 3.0  # cut at 1s; the server dribbles on for ~60s
    assert obs.status is None and obs.error == "timed out after 1s"


def test_a_sweep_is_bounded_by_its_timeout(http_target) -> None:
    """50 slow, dribbling or silent targets at concurrency 100 take one timeout, not 50."""
    slow = http_target.set("/slow", delay=5)
    with raw_server(dribble) as dribbling, raw_server(silent) as quiet:
        urls = [slow, f"http://127.0.0.1:{dribbling}/", f"http://127.0.0.1:{quiet}/"]
        monitors = [monitor(urls[i % 3], timeout="1s") for i in range(50)]
        started = time.monotonic()
        observed = probe_batch(monitors)
        elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert {o.error for o in observed} == {"timed out after 1s"}


def test_per_host_and_global_limits(http_target) -> None:
    url = http_target.set("/slow", delay=0.4)
    monitors = [monitor(url) for _ in range(4)]
    timings = {}
    for limits in ((100, 0), (100, 1), (2, 0)):
        started = time.monotonic()
        observed = probe_batch(monitors, *limits)
        timings[limits] = time.monotonic() - started
        assert [o.status for o in observed] == [200] * 4
    assert timings[(100, 0)] < 1.0
    assert timings[(100, 1)] >= 1.6  # one at a time: 4 x 0.4 s
    assert 0.8 <= timings[(2, 0)] < 1.6  # two at a time


# --- TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def https_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTPS server whose self-signed certificate expires in 3 days."""
    folder = tmp_path_factory.mktemp("tls3d")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(folder, dt.timedelta(days=3)))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://localhost:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _self_signed(folder: Path, valid_for: dt.timedelta) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + valid_for)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_self_signed_certificate(https_url: str) -> None:
    expiring = ["[STATUS] == 200", "[CERTIFICATE_EXPIRATION] > 7d"]
    trusting, also_trusting, verifying = probe_batch(
        [
            monitor(https_url, verify_tls=False, conditions=expiring),
            monitor(https_url, verify_tls=False),
            monitor(https_url, conditions=expiring),
        ]
    )
    assert trusting.status == 200 and trusting.error is None
    left = trusting.certificate_expiration
    assert left is not None and timedelta(days=2, hours=23) < left <= timedelta(days=3)
    assert results(monitor(https_url, conditions=expiring), trusting) == [True, False]
    assert also_trusting.status == 200 and also_trusting.certificate_expiration is None
    assert verifying.status is None
    assert verifying.error == "TLS error: certificate verify failed (self-signed certificate)"


def test_httpx_path_fails_in_the_same_words(https_url: str, closed_port: int) -> None:
    """Deploy checks probe through their own httpx client, with the sweep's wording."""
    import asyncio

    async def probe(m: Monitor) -> str | None:
        async with httpx.AsyncClient() as client:
            return (await probe_http(m, client, read_body=False)).error

    refused = monitor(f"http://127.0.0.1:{closed_port}/")
    assert asyncio.run(probe(refused)) == "connection refused by 127.0.0.1"
    assert asyncio.run(probe(monitor(https_url))) == (
        "TLS error: certificate verify failed (self-signed certificate)"
    )


# --- TCP, order, benchmark target -------------------------------------------------------


def test_tcp_open_and_closed(closed_port: int) -> None:
    with raw_server(silent) as port:
        open_, closed = probe_batch(
            [
                Monitor(name="open", type="tcp", host="127.0.0.1", port=port),
                Monitor(name="closed", type="tcp", host="127.0.0.1", port=closed_port),
            ]
        )
    assert open_.connected and open_.error is None and open_.response_time is not None
    assert open_.ip == "127.0.0.1"
    assert not closed.connected and closed.error == "connection refused by 127.0.0.1"


def test_mixed_kinds_come_back_in_order(http_target, closed_port: int) -> None:
    monitors = [
        Monitor(name="t", type="tcp", host="127.0.0.1", port=closed_port),
        monitor(http_target.set("/a", status=201)),
        monitor(f"http://127.0.0.1:{closed_port}/"),
        monitor(http_target.set("/b", status=202)),
    ]
    observed = probe_batch(monitors)
    assert [o.status for o in observed] == [None, 201, None, 202]
    assert observed[0].error == observed[2].error == "connection refused by 127.0.0.1"


def test_benchmark_target_answers() -> None:
    with running_target() as base:
        m = monitor(f"{base}/ok/7", conditions=["[STATUS] == 200", "[BODY].status == ok"])
        [obs] = probe_batch([m])
    assert results(m, obs) == [True, True]


def test_a_health_document_saying_degraded_is_read_without_a_body_condition(
    httpserver: HTTPServer,
) -> None:
    """The default conditions (2xx) pass, yet the monitor is DEGRADED: a small JSON answer
    is read for its `status` word; a large or non-JSON one is left unread."""
    from vigil.sweep.checks import evaluate

    httpserver.expect_request("/health").respond_with_json({"status": "degraded"})
    httpserver.expect_request("/page").respond_with_data('{"status": "degraded"}')
    httpserver.expect_request("/big").respond_with_json({"status": "degraded", "x": "y" * 9000})
    monitors = [monitor(httpserver.url_for(p)) for p in ("/health", "/page", "/big")]

    checks = evaluate(monitors, probe_batch(monitors))

    assert [c.verdict for c in checks] == ["degraded", "ok", "ok"]
    assert [c.obs.body is not None for c in checks] == [True, False, False]
