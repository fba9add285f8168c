"""What vigil knows to be secret, and what it masks: every secret the config holds (found by
walking all of it, not a list of fields), and the patterns for secrets nobody declared (a
target echoing a token back). Ordinary words that merely look alike stay readable."""

from __future__ import annotations

import base64
import logging

import pytest

from vigil.config import parse_config
from vigil.redact import MASK, redact

CONFIG = """
store: {url: "postgresql://vigil:St0re-PLANTED@db:5432/vigil"}
monitors:
  - name: admin
    url: "https://ops:Bas1c-PLANTED@app.example.com/admin"
  - name: api
    url: "https://app.example.com/health?access_token=Acc3ss-PLANTED&region=eu"
    headers: {Authorization: "Bearer Hdr-PLANTED-0123456789", X-Api-Key: "Kee-PLANTED-42"}
  - name: db
    type: postgres
    url: "postgresql://reader:R3ad-PLANTED@db:5432/app"
    query: "select 1"
restore_test: {scratch_url: "postgresql://postgres:Scr4tch-PLANTED@scratch:5432/postgres"}
drill: {target_url: "postgresql://postgres:Dr1ll-PLANTED@dr:5432/postgres"}
sweep: {heartbeat_url: "https://hc-ping.example.com/Heart-PLANTED-uuid"}
"""
PLANTED = [
    "St0re-PLANTED",
    "Bas1c-PLANTED",
    "Acc3ss-PLANTED",
    "Hdr-PLANTED-0123456789",
    "Kee-PLANTED-42",
    "R3ad-PLANTED",
    "Scr4tch-PLANTED",
    "Dr1ll-PLANTED",
    "Heart-PLANTED-uuid",
]


def test_every_secret_of_the_config_is_masked_wherever_it_appears_later() -> None:
    parse_config(CONFIG)
    for secret in PLANTED:
        said = f"the server answered: {secret} (again: x{secret}y)"
        assert secret not in redact(said), secret


def test_secrets_are_masked_in_their_other_spellings() -> None:
    parse_config(CONFIG)
    basic = base64.b64encode(b"ops:Bas1c-PLANTED").decode()
    assert basic not in redact(f"sent {basic}")
    parse_config('monitors: [{name: a, url: "https://u:p%40ss-w0rd@h/"}]')
    assert "p@ss-w0rd" not in redact("login with p@ss-w0rd failed")
    assert "p%40ss-w0rd" not in redact("GET https://h/?pw=p%40ss-w0rd")


def test_a_variable_filled_into_a_secret_place_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASS", "Smtp-PLANTED")
    monkeypatch.setenv("HOOK", "https://example.com/h/Whk-PLANTED-123456789")
    parse_config(
        "channels:\n"
        "  mail: {type: email, host: smtp, from: a@b.c, to: [x@y.z], username: u,"
        " password: '${SMTP_PASS}'}\n"
        "  hook: {type: webhook, url: '${HOOK}'}\n"
    )
    assert "Smtp-PLANTED" not in redact("535 auth failed for Smtp-PLANTED")
    assert "Whk-PLANTED" not in redact("posted to /h/Whk-PLANTED-123456789")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET /cb?access_token=Tok-1a2b3c&state=ok", "Tok-1a2b3c"),
        ('{"client_secret": "Cs-9z8y7x", "id": 1}', "Cs-9z8y7x"),
        ("id_token=eyJ.body.sig&scope=openid", "eyJ.body.sig"),
        ("private_token: glpat-abcdef", "glpat-abcdef"),
        ("?key=AIzaSyXYZ&q=1", "AIzaSyXYZ"),
        ("{'Authorization': 'Bearer eyJhbGciOi.x.y'}", "eyJhbGciOi.x.y"),
        ('"authorization": "Basic dXNlcjpwYXNzd29yZA=="', "dXNlcjpwYXNzd29yZA=="),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("X-Api-Key: k3y-value", "k3y-value"),
        ("apiKey=ZZ99 accessToken=TT11", "ZZ99"),
        ("postgresql://app:hunter2@db/app", "hunter2"),
        ("https://hooks.slack.com/services/T0/B0/XyZ123", "XyZ123"),
        ("xoxb-1234-5678-abcdef", "5678-abcdef"),
        ("?sslpassword=ssl-pw-1", "ssl-pw-1"),
    ],
)
def test_undeclared_secrets_are_caught_by_their_shape(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked and MASK in masked, masked


@pytest.mark.parametrize(
    "text",
    [
        "passed=3 tokens in total",
        '{"passed": 3, "checks": 12, "keyboard": "us"}',
        "status: ok; monkey=1; max_tokens=20",
        "public.orders: 10,000 rows in the manifest, 9,850 restored",
    ],
)
def test_ordinary_words_stay_readable(text: str) -> None:
    assert redact(text) == text


def test_every_log_record_is_masked_whatever_its_handler(caplog: pytest.LogCaptureFixture) -> None:
    """The boundary sits in the record factory: a handler added after vigil started (here
    pytest's) sees only masked text, including tracebacks."""
    import vigil.runtime  # noqa: F401  (importing it installs the boundary, as every flow does)

    parse_config(CONFIG)
    log = logging.getLogger("some.library")
    with caplog.at_level(logging.INFO):
        log.info("connecting to %s", "postgresql://reader:R3ad-PLANTED@db/app")
        try:
            raise RuntimeError("refused for Scr4tch-PLANTED")
        except RuntimeError:
            log.exception("failed")
    text = caplog.text
    assert "R3ad-PLANTED" not in text and "Scr4tch-PLANTED" not in text, text
    assert "Traceback" in text, "a bug's traceback is kept, masked"


@pytest.mark.parametrize(
    "run",
    ["a" * 300_000, "1.2-3" * 60_000, "x_token_" * 40_000, "https" * 60_000],
    ids=["letters", "digits-and-dots", "credential-words", "scheme-letters"],
)
def test_a_hostile_body_of_one_long_word_is_redacted_in_one_pass(run: str) -> None:
    """A target may answer with a megabyte of letters; the patterns once backtracked over
    every start of such a run, and a 20 KB body took a minute to redact (a weekly report's
    HTML, two). An alarm stands guard: it fires only for a pattern that is not linear."""
    import signal

    def hang(*_: object) -> None:
        raise TimeoutError("redact did not finish: a pattern backtracks over long runs")

    body = f"{run} token=Tok3n-PLANTED https://u:Pw-PLANTED@h/ {run}"
    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(20)
    try:
        out = redact(body)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert "Tok3n-PLANTED" not in out and "Pw-PLANTED" not in out
    assert out.startswith(run) and out.endswith(run)


def test_secrets_are_found_at_every_depth_in_the_order_written() -> None:
    """`secrets_in` walks mappings, lists and tuples to any depth (one list, not a
    generator per level): every secret once per place it appears, in document order."""
    from vigil.redact import secrets_in

    basic = base64.b64encode(b"ops:B4sic-PLANTED").decode()
    config = {
        "store": {"url": "postgresql://u:St0re-PLANTED@db/v", "pool": 5, "echo": False},
        "monitors": [
            {"name": "a", "url": "https://h/x?token=Q1-PLANTED", "conditions": ["[STATUS] == 200"]},
            {"name": "b", "headers": {"Authorization": f"Basic {basic}"}, "tags": ("x", "")},
            [[{"password": "Deep-PLANTED"}], ("https://u:Tup-PLANTED@h/",)],
        ],
        "password": "",
        "api_token": None,
    }
    found = list(secrets_in(config))
    tup = base64.b64encode(b"u:Tup-PLANTED").decode()
    store = base64.b64encode(b"u:St0re-PLANTED").decode()
    # What the walk gave as recursive generators, before it became one list (issue 19).
    assert found == [
        *["St0re-PLANTED"] * 3,  # the password, unquoted, and user:password
        store,
        *["Q1-PLANTED"] * 2,
        f"Basic {basic}",
        basic,
        "ops:B4sic-PLANTED",
        "B4sic-PLANTED",
        "Deep-PLANTED",
        *["Tup-PLANTED"] * 3,
        tup,
    ], found
