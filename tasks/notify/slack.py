"""Slack: an incoming webhook, or a bot token posting with chat.postMessage.

The message is Block Kit (header, summary, facts, details, flow-run link) with a plain-text
fallback for push notifications. Slack rejects a whole message when one block is too long,
so every piece is clipped to Slack's limits: a truncated alert beats a lost one. slack-sdk's
own retry handlers are off; `transports.with_retries` is the only retry loop.
"""

from __future__ import annotations

import logging
import math
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from tasks.notify.transports import (
    TransportError,
    certificate_rejected,
    http_failure,
    redacting_logger,
)
from vigil.alert import Alert
from vigil.config import SlackChannel

DEFAULT_API_URL = "https://slack.com/api/"

# Slack's documented limits (characters), with a little room for the "…" marker.
_HEADER_MAX = 150
_TEXT_MAX = 3000
_FIELD_MAX = 2000
_FIELDS_PER_SECTION = 10
_MAX_FIELDS = 20
_FALLBACK_MAX = 3000

# chat.postMessage errors that describe Slack's state, not ours: worth another attempt.
_TRANSIENT_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

_sdk_log = redacting_logger("vigil.notify.slack_sdk")
# The SDK dumps whole request bodies at DEBUG; our retry loop already reports each attempt.
_sdk_log.setLevel(logging.WARNING)


def deliver(channel: SlackChannel, alert: Alert) -> None:
    """Post `alert` once; raise TransportError saying whether a retry could help."""
    text, blocks = fallback_text(alert), build_blocks(alert)
    # slack-sdk types its timeout as whole seconds; round up so a short timeout stays > 0.
    timeout = max(1, math.ceil(channel.timeout.total_seconds()))
    try:
        if channel.webhook_url:
            _post_webhook(channel.webhook_url, timeout, text, blocks)
        else:
            _post_message(channel, timeout, text, blocks)
    except SlackRequestError as exc:
        raise TransportError(f"unusable Slack URL: {exc}", permanent=True) from exc
    except (HTTPException, OSError) as exc:
        raise _unreachable(exc) from exc


def _unreachable(exc: HTTPException | OSError) -> TransportError:
    """Network trouble is transient, except a certificate that will stay wrong."""
    if certificate_rejected(exc):
        return TransportError(f"TLS certificate rejected: {exc}", permanent=True)
    return TransportError(f"cannot reach Slack: {exc}")


def _post_webhook(url: str, timeout: int, text: str, blocks: list[dict[str, Any]]) -> None:
    client = WebhookClient(url, timeout=timeout, logger=_sdk_log, retry_handlers=[])
    response = client.send(text=text, blocks=blocks, unfurl_links=False)
    if response.status_code != 200:
        retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
        raise http_failure(response.status_code, response.body or "", retry_after)


def _post_message(
    channel: SlackChannel, timeout: int, text: str, blocks: list[dict[str, Any]]
) -> None:
    api_url = channel.api_url or DEFAULT_API_URL
    client = WebClient(
        token=channel.token,
        base_url=api_url,
        timeout=timeout,
        logger=_sdk_log,
        retry_handlers=[],
    )
    try:
        client.chat_postMessage(channel=channel.channel or "", text=text, blocks=blocks)
    except SlackApiError as exc:
        raise _api_failure(exc.response) from exc


def _api_failure(response: SlackResponse) -> TransportError:
    error = str(response.get("error", "unknown_error"))
    retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
    if response.status_code != 200:
        return http_failure(response.status_code, error, retry_after)
    return TransportError(f"Slack API error: {error}", permanent=error not in _TRANSIENT_API_ERRORS)


# --- the message -------------------------------------------------------------------------


def fallback_text(alert: Alert) -> str:
    """What a phone notification or a blocks-less client shows: the essentials only."""
    lines = [f"{alert.headline()} [{alert.severity.upper()}]", f"Where: {alert.subject}"]
    since = alert.since_text()
    if since:
        lines.append(f"Since: {since}")
    lines.append(alert.summary)
    return _clip(_escape("\n".join(lines)), _FALLBACK_MAX)


def build_blocks(alert: Alert) -> list[dict[str, Any]]:
    header = {"type": "plain_text", "text": _clip(alert.headline(), _HEADER_MAX), "emoji": True}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": header},
        {"type": "section", "text": _mrkdwn(_clip(_escape(alert.summary), _TEXT_MAX))},
    ]
    fields = [
        _mrkdwn(_clip(f"*{_escape(label)}*\n{_escape(value)}", _FIELD_MAX))
        for label, value in _capped_facts(alert)
    ]
    for start in range(0, len(fields), _FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": fields[start : start + _FIELDS_PER_SECTION]})
    if alert.details:
        blocks.append({"type": "section", "text": _mrkdwn(_details(alert.details))})
    if alert.flow_run_url:
        link = f"<{alert.flow_run_url}|View flow run>"
        blocks.append({"type": "context", "elements": [_mrkdwn(link)]})
    return blocks


def _capped_facts(alert: Alert) -> list[tuple[str, str]]:
    facts = alert.facts()
    if len(facts) <= _MAX_FIELDS:
        return facts
    hidden = len(facts) - _MAX_FIELDS + 1
    return [*facts[: _MAX_FIELDS - 1], ("More", f"{hidden} more fields not shown")]


def _details(lines: list[str]) -> str:
    """Bullet lines in a code block, as many as fit; the rest are counted so a clipped
    list is never mistaken for the whole one."""
    budget = _TEXT_MAX - 40
    shown: list[str] = []
    used = 0
    for raw in lines:
        line = _clip(_escape(raw.replace("```", "'''")), budget - 1)
        if used + len(line) + 1 > budget:
            break
        shown.append(line)
        used += len(line) + 1
    text = "```\n" + "\n".join(shown) + "\n```"
    missing = len(lines) - len(shown)
    return text + (f"\n…and {missing} more lines" if missing else "")


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _escape(text: str) -> str:
    """Slack reads &, < and > as markup (links, mentions) even in plain alert text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
