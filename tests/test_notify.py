"""Notifications against real local receivers: HTTP for Slack and webhooks, aiosmtpd for email."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import yaml

import vigil
from tasks.notify import Delivery, RetryPolicy, dispatch, send
from tasks.notify.slack import build_blocks
from tasks.notify.transports import http_failure, parse_retry_after
from tests.fixtures.receivers import HttpReceiver, Reply, SmtpReceiver, TlsCert
from vigil.alert import Alert
from vigil.config import Config, EmailChannel, SlackChannel, parse_config

FAST = RetryPolicy(base=0.01, max_wait=0.05, jitter=0)
RUN_URL = "https://prefect.example/runs/123"


def make_alert(**changes: Any) -> Alert:
    values: dict[str, Any] = {
        "title": "api-health is DOWN",
        "severity": "critical",
        "duty": "uptime-sweep",
        "subject": "api-health",
        "summary": "GET https://api.example/health answered 503 twice in a row.",
        "details": ["[STATUS] 503, expected == 200", "[RESPONSE_TIME] 120ms"],
        "since": datetime.now(UTC) - timedelta(minutes=12),
        "flow_run_url": RUN_URL,
        "fields": {"fallback": "serving"},
    }
    return Alert(**{**values, **changes})


def make_config(channels: dict[str, dict[str, Any]], **routes: list[str]) -> Config:
    """Through parse_config, as in production: it registers the channels' secrets."""
    return parse_config(yaml.safe_dump({"channels": channels, "routes": routes}))


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "timeout": "2s", **extra}


def slack_hook(url: str) -> dict[str, Any]:
    return {"type": "slack", "webhook_url": url, "timeout": "2s"}


def mailbox(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "vigil@example.com",
        "to": ["ops@example.com", "oncall@example.com"],
        "timeout": "2s",
        **extra,
    }


def with_fields(channel: Any, **fields: Any) -> Any:
    """Set fields config.py does not declare yet (api_url, verify_tls) on a parsed channel."""
    return channel.model_copy(update=fields)


# --- routing, dispatch, record -------------------------------------------------------------


def test_routes_by_severity(webhook_receiver: HttpReceiver, smtp_server: SmtpReceiver) -> None:
    config = make_config(
        {"ops-slack": slack_hook(webhook_receiver.url), "ops-mail": mailbox(smtp_server.port)},
        critical=["ops-slack", "ops-mail"],
        high=["ops-slack"],
        low=[],
    )
    deliveries = dispatch(make_alert(), config, policy=FAST)
    assert [(d.channel, d.channel_type, d.status, d.attempts) for d in deliveries] == [
        ("ops-slack", "slack", "sent", 1),
        ("ops-mail", "email", "sent", 1),
    ]
    assert len(webhook_receiver.requests) == 1
    assert len(smtp_server.messages) == 1

    assert dispatch(make_alert(severity="low"), config, policy=FAST) == []
    assert dispatch(make_alert(severity="medium"), config, policy=FAST) == []
    assert len(webhook_receiver.requests) == 1
    assert len(smtp_server.messages) == 1


def test_explicit_channels_override_routing(webhook_receiver: HttpReceiver) -> None:
    config = make_config({"hook": webhook(webhook_receiver.url)})
    deliveries = dispatch(make_alert(severity="low", kind="test"), config, channels=["hook"])
    assert [d.status for d in deliveries] == ["sent"]
    assert webhook_receiver.json_bodies()[0]["kind"] == "test"


def test_unknown_channel_is_skipped_not_raised() -> None:
    deliveries = dispatch(make_alert(), make_config({}), channels=["nowhere"])
    assert deliveries == [
        Delivery("nowhere", "unknown", "skipped", 0, "no channel named 'nowhere'")
    ]


def test_record_gets_every_delivery_and_its_errors_are_swallowed(
    webhook_receiver: HttpReceiver, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(
        {"good": webhook(webhook_receiver.url), "dead": webhook(f"http://127.0.0.1:{closed_port}")},
        high=["good", "dead"],
    )
    seen: list[tuple[Alert, Delivery]] = []

    def record(alert: Alert, delivery: Delivery) -> None:
        seen.append((alert, delivery))
        raise RuntimeError("store is down")

    deliveries = dispatch(make_alert(severity="high"), config, record=record, policy=FAST)
    assert [d for _, d in seen] == deliveries
    assert [(d.channel, d.status) for d in deliveries] == [("good", "sent"), ("dead", "failed")]
    assert all(alert.title == "api-health is DOWN" for alert, _ in seen)
    assert caplog.text.count("could not record delivery") == 2


def test_alert_rejects_unknown_severity() -> None:
    with pytest.raises(ValueError, match="severity"):
        make_alert(severity="urgent")


# --- retry policy ----------------------------------------------------------------------------


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base=0.5, factor=2, max_wait=3, jitter=0)
    assert [policy.wait(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.wait(1, retry_after=2.5) == 2.5
    assert policy.wait(1, retry_after=120) == 3


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (403, True), (404, True), (408, False), (429, False), (500, False), (503, False)],
)
def test_http_status_classification(status: int, permanent: bool) -> None:
    assert http_failure(status, "body").permanent is permanent


# --- webhook -----------------------------------------------------------------------------------


def test_webhook_body_and_headers(webhook_receiver: HttpReceiver) -> None:
    config = make_config({"hook": webhook(webhook_receiver.url, headers={"X-Team": "ops"})})
    alert = make_alert(since=datetime(2024, 5, 1, 10, 0, tzinfo=UTC))
    (delivery,) = dispatch(alert, config, channels=["hook"])
    assert delivery.status == "sent"
    (request,) = webhook_receiver.requests
    assert request.method == "POST"
    assert request.header("X-Team") == "ops"
    assert request.header("Content-Type") == "application/json"
    assert request.json() == {
        "title": "api-health is DOWN",
        "severity": "critical",
        "duty": "uptime-sweep",
        "subject": "api-health",
        "summary": alert.summary,
        "details": alert.details,
        "since": "2024-05-01T10:00:00+00:00",
        "flow_run_url": RUN_URL,
        "kind": "problem",
        "fields": {"fallback": "serving"},
        "vigil_version": vigil.__version__,
    }


def test_webhook_retries_429_and_500(webhook_receiver: HttpReceiver) -> None:
    webhook_receiver.respond_with(Reply(429, headers={"Retry-After": "0"}), 500, 200)
    config = make_config({"hook": webhook(webhook_receiver.url)})
    (delivery,) = dispatch(make_alert(), config, channels=["hook"], policy=FAST)
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 3, None)
    assert len(webhook_receiver.requests) == 3


def test_retry_after_is_honoured_up_to_max_wait(webhook_receiver: HttpReceiver) -> None:
    webhook_receiver.respond_with(Reply(429, headers={"Retry-After": "5"}), 200)
    policy = RetryPolicy(base=0.001, max_wait=0.3, jitter=0)
    config = make_config({"hook": webhook(webhook_receiver.url)})
    started = time.monotonic()
    (delivery,) = dispatch(make_alert(), config, channels=["hook"], policy=policy)
    elapsed = time.monotonic() - started
    assert delivery.status == "sent"
    assert 0.3 <= elapsed < 2


def test_webhook_404_is_not_retried(webhook_receiver: HttpReceiver) -> None:
    url = webhook_receiver.url_for("/hooks/tok-PLANTED-404")
    webhook_receiver.respond_with(Reply(404, f"no webhook at {url}"))
    config = make_config({"hook": webhook(url)})
    (delivery,) = dispatch(make_alert(), config, channels=["hook"], policy=FAST)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error is not None
    assert delivery.error.startswith("HTTP 404")
    assert "PLANTED" not in delivery.error
    assert len(webhook_receiver.requests) == 1


def test_webhook_timeout_is_retried(
    webhook_receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    webhook_receiver.respond_with(Reply(200, delay=1.0), 200)
    config = make_config({"hook": webhook(webhook_receiver.url, timeout="200ms")})
    (delivery,) = dispatch(make_alert(), config, channels=["hook"], policy=FAST)
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert len(webhook_receiver.requests) == 2
    assert "attempt 1 of 4 failed (webhook timed out after 0.2s)" in caplog.text


def test_unreachable_webhook_fails_after_all_attempts(closed_port: int) -> None:
    config = make_config({"hook": webhook(f"http://127.0.0.1:{closed_port}/hook")})
    (delivery,) = dispatch(make_alert(), config, channels=["hook"], policy=FAST)
    assert (delivery.status, delivery.attempts) == ("failed", 4)
    assert delivery.error is not None
    assert delivery.error.startswith("cannot reach webhook")


def test_untrusted_certificate_is_permanent(https_receiver: HttpReceiver) -> None:
    config = make_config({"hook": webhook(https_receiver.url)})
    (delivery,) = dispatch(make_alert(), config, channels=["hook"], policy=FAST)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error is not None
    assert delivery.error.startswith("TLS certificate rejected")


# --- Slack ---------------------------------------------------------------------------------------


def _block(blocks: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(b for b in blocks if b["type"] == kind)


def test_slack_webhook_block_kit_as_received(webhook_receiver: HttpReceiver) -> None:
    config = make_config({"slack": slack_hook(webhook_receiver.url)})
    alert = make_alert(summary="Users see <errors> & retries", since=datetime(2024, 5, 1, 10, 0))
    (delivery,) = dispatch(alert, config, channels=["slack"])
    assert delivery.status == "sent"
    body = webhook_receiver.json_bodies()[0]
    blocks = body["blocks"]

    assert _block(blocks, "header")["text"]["text"] == "🚨 api-health is DOWN"
    summary = blocks[1]["text"]["text"]
    assert summary == "Users see &lt;errors&gt; &amp; retries"
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert fields[:2] == ["*Severity*\nCRITICAL", "*Where*\napi-health"]
    assert fields[2].startswith("*Since*\n2024-05-01T10:00:00Z (")
    assert fields[2].endswith(" ago)")
    assert fields[3:] == ["*Duty*\nuptime-sweep", "*fallback*\nserving"]
    details = blocks[3]["text"]["text"]
    assert details == "```\n[STATUS] 503, expected == 200\n[RESPONSE_TIME] 120ms\n```"
    context = _block(blocks, "context")["elements"][0]["text"]
    assert context == f"<{RUN_URL}|View flow run>"

    text = body["text"]
    for part in ("[CRITICAL]", "api-health is DOWN", "Where: api-health", "Since: 2024-05-01"):
        assert part in text
    assert "Users see &lt;errors&gt;" in text


def test_slack_recovery_uses_recovery_emoji_and_skips_missing_parts() -> None:
    alert = make_alert(kind="recovered", details=[], flow_run_url=None, since=None, fields={})
    blocks = build_blocks(alert)
    assert blocks[0]["text"]["text"].startswith("✅")
    assert [b["type"] for b in blocks] == ["header", "section", "section"]
    assert [f["text"].split("\n")[0] for f in blocks[2]["fields"]] == [
        "*Severity*",
        "*Where*",
        "*Duty*",
    ]


def test_slack_message_stays_within_limits() -> None:
    alert = make_alert(
        title="x" * 500,
        summary="y" * 5000,
        details=[f"line {i} " + "z" * 80 for i in range(500)],
        fields={f"key{i}": "v" * 3000 for i in range(30)},
    )
    blocks = build_blocks(alert)
    assert len(blocks[0]["text"]["text"]) <= 150
    assert len(blocks[1]["text"]["text"]) <= 3000
    field_sections = [b for b in blocks if "fields" in b]
    assert all(len(b["fields"]) <= 10 for b in field_sections)
    assert all(len(f["text"]) <= 2000 for b in field_sections for f in b["fields"])
    assert field_sections[-1]["fields"][-1]["text"].startswith("*More*")
    details = blocks[-2]["text"]["text"]
    assert len(details) <= 3000
    assert details.endswith("more lines")


def test_slack_webhook_403_is_permanent(webhook_receiver: HttpReceiver) -> None:
    webhook_receiver.respond_with(Reply(403, "invalid_token"))
    config = make_config({"slack": slack_hook(webhook_receiver.url)})
    (delivery,) = dispatch(make_alert(), config, channels=["slack"], policy=FAST)
    assert (delivery.status, delivery.attempts, delivery.error) == (
        "failed",
        1,
        "HTTP 403: invalid_token",
    )


def test_slack_webhook_5xx_is_retried(webhook_receiver: HttpReceiver) -> None:
    webhook_receiver.respond_with(503, 200)
    config = make_config({"slack": slack_hook(webhook_receiver.url)})
    (delivery,) = dispatch(make_alert(), config, channels=["slack"], policy=FAST)
    assert (delivery.status, delivery.attempts) == ("sent", 2)


def test_slack_over_tls(
    https_receiver: HttpReceiver, tls_cert: TlsCert, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config({"slack": slack_hook(https_receiver.url)})
    (refused,) = dispatch(make_alert(), config, channels=["slack"], policy=FAST)
    assert (refused.status, refused.attempts) == ("failed", 1)
    assert refused.error is not None
    assert refused.error.startswith("TLS certificate rejected")

    monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert.cert))
    (delivery,) = dispatch(make_alert(), config, channels=["slack"], policy=FAST)
    assert delivery.status == "sent"
    assert len(https_receiver.requests) == 1


def _bot_channel(slack_api: HttpReceiver) -> SlackChannel:
    config = make_config(
        {"bot": {"type": "slack", "token": "xoxb-111-PLANTED-bot", "channel": "#ops"}}
    )
    channel = config.channels["bot"]
    assert isinstance(channel, SlackChannel)
    return with_fields(channel, api_url=slack_api.api_url)


def test_slack_bot_token_posts_message(slack_api: HttpReceiver) -> None:
    delivery = send("bot", _bot_channel(slack_api), make_alert(), policy=FAST)
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    (request,) = slack_api.requests
    assert request.path == "/chat.postMessage"
    assert request.header("Authorization") == "Bearer xoxb-111-PLANTED-bot"
    body = request.json()
    assert body["channel"] == "#ops"
    assert body["blocks"][0]["type"] == "header"
    assert "api-health is DOWN" in body["text"]


@pytest.mark.parametrize("error", ["invalid_auth", "channel_not_found", "not_in_channel"])
def test_slack_api_errors_are_permanent(slack_api: HttpReceiver, error: str) -> None:
    slack_api.respond_with(Reply(200, {"ok": False, "error": error}))
    delivery = send("bot", _bot_channel(slack_api), make_alert(), policy=FAST)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error == f"Slack API error: {error}"


def test_slack_api_rate_limit_is_retried(slack_api: HttpReceiver) -> None:
    limited = Reply(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "0"})
    internal = Reply(200, {"ok": False, "error": "internal_error"})
    slack_api.respond_with(limited, internal, Reply(200, {"ok": True}))
    delivery = send("bot", _bot_channel(slack_api), make_alert(), policy=FAST)
    assert (delivery.status, delivery.attempts) == ("sent", 3)
    assert len(slack_api.requests) == 3


# --- email ------------------------------------------------------------------------------------


def _mail_channel(smtp: SmtpReceiver, **extra: Any) -> EmailChannel:
    channel = make_config({"mail": mailbox(smtp.port, **extra)}).channels["mail"]
    assert isinstance(channel, EmailChannel)
    return channel


def test_email_is_received_with_subject_and_both_parts(smtp_server: SmtpReceiver) -> None:
    alert = make_alert(details=["<b>not html</b>"])
    delivery = send("mail", _mail_channel(smtp_server), alert, policy=FAST)
    assert delivery.status == "sent"
    (mail,) = smtp_server.messages
    assert mail.mail_from == "vigil@example.com"
    assert mail.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    message: EmailMessage = mail.message
    assert message["Subject"] == "[vigil][CRITICAL] api-health is DOWN"
    assert message["To"] == "ops@example.com, oncall@example.com"
    assert message["Message-ID"].endswith("@example.com>")
    plain, html = mail.part("text/plain"), mail.part("text/html")
    for part in ("Severity: CRITICAL", "Where: api-health", "Duty: uptime-sweep", alert.summary):
        assert part in plain
    assert "- <b>not html</b>" in plain
    assert f"Flow run: {RUN_URL}" in plain
    assert "<h2>🚨 api-health is DOWN</h2>" in html
    assert "&lt;b&gt;not html&lt;/b&gt;" in html
    assert f'<a href="{RUN_URL}">View flow run</a>' in html


def test_email_login(smtp_server: SmtpReceiver) -> None:
    smtp_server.require_auth = True
    channel = _mail_channel(
        smtp_server, username=smtp_server.username, password=smtp_server.password
    )
    assert send("mail", channel, make_alert(), policy=FAST).status == "sent"
    assert len(smtp_server.messages) == 1


def test_email_wrong_password_is_permanent(
    smtp_server: SmtpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = _mail_channel(smtp_server, username="vigil", password="wrong-PLANTED-pass")
    delivery = send("mail", channel, make_alert(), policy=FAST)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error is not None
    assert delivery.error.startswith("SMTP 535")
    assert "PLANTED" not in caplog.text + delivery.error


def test_email_refused_recipients_are_permanent(smtp_server: SmtpReceiver) -> None:
    smtp_server.reject = {"ops@example.com", "oncall@example.com"}
    delivery = send("mail", _mail_channel(smtp_server), make_alert(), policy=FAST)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error is not None
    assert "550" in delivery.error


def test_email_partly_refused_is_sent_once(
    smtp_server: SmtpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.reject = {"oncall@example.com"}
    delivery = send("mail", _mail_channel(smtp_server), make_alert(), policy=FAST)
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert smtp_server.messages[0].rcpt_tos == ["ops@example.com"]
    assert "oncall@example.com (550" in caplog.text


def test_email_temporary_failure_is_retried(smtp_server: SmtpReceiver) -> None:
    smtp_server.fail_data("451 4.3.0 Try again later")
    delivery = send("mail", _mail_channel(smtp_server), make_alert(), policy=FAST)
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert len(smtp_server.messages) == 1


def test_email_to_closed_port_fails_without_raising(closed_port: int) -> None:
    config = make_config({"mail": mailbox(closed_port)}, critical=["mail"])
    (delivery,) = dispatch(make_alert(), config, policy=FAST)
    assert (delivery.status, delivery.attempts) == ("failed", 4)
    assert delivery.error is not None
    assert delivery.error.startswith("cannot reach SMTP server")


def test_email_starttls_verifies_the_certificate(
    smtp_server: SmtpReceiver, tls_cert: TlsCert, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = _mail_channel(smtp_server, security="starttls")
    refused = send("mail", channel, make_alert(), policy=FAST)
    assert (refused.status, refused.attempts) == ("failed", 1)
    assert refused.error is not None
    assert "certificate" in refused.error

    monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert.cert))
    assert send("mail", channel, make_alert(), policy=FAST).status == "sent"
    assert len(smtp_server.messages) == 1


def test_email_starttls_without_verification(smtp_server: SmtpReceiver) -> None:
    channel = with_fields(_mail_channel(smtp_server, security="starttls"), verify_tls=False)
    assert send("mail", channel, make_alert(), policy=FAST).status == "sent"


def test_email_implicit_tls(
    smtps_server: SmtpReceiver, tls_cert: TlsCert, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert.cert))
    channel = _mail_channel(smtps_server, security="ssl")
    assert send("mail", channel, make_alert(), policy=FAST).status == "sent"
    assert len(smtps_server.messages) == 1


# --- redaction ----------------------------------------------------------------------------------


def test_planted_secrets_never_leave(
    webhook_receiver: HttpReceiver,
    smtp_server: SmtpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hook_url = webhook_receiver.url_for("/hooks/tok-PLANTED-hook")
    slack_url = webhook_receiver.url_for("/services/T000/B000/PLANTEDslack")
    webhook_receiver.respond_with(Reply(500, f"upstream failed for {hook_url}"), 200)
    config = make_config(
        {
            "hook": webhook(hook_url),
            "slack": slack_hook(slack_url),
            "mail": mailbox(smtp_server.port),
        },
        critical=["hook", "slack", "mail"],
    )
    alert = make_alert(
        summary=f"relay {hook_url} refused the report",
        details=["restore from postgresql://app:hunter2-PLANTED@db:5432/app failed"],
        fields={"slack": slack_url},
    )
    seen: list[Delivery] = []
    deliveries = dispatch(alert, config, record=lambda _, d: seen.append(d), policy=FAST)
    assert [d.status for d in deliveries] == ["sent", "sent", "sent"]
    assert sorted(d.attempts for d in deliveries[:2]) == [1, 2]  # one of them met the 500

    received = [r.text + str(r.headers) for r in webhook_receiver.requests]
    received += [m.message.as_string() for m in smtp_server.messages]
    everything = "\n".join([*received, *(str(d) for d in seen), caplog.text])
    assert "postgresql://app:***@db:5432/app" in everything
    assert "PLANTED" not in everything
