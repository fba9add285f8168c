"""Tell people: route an Alert to the channels its duty and severity name, and never fail the
caller.

`dispatch` is what duties call. It picks channels with `config.route(duty, severity)` (or the
explicit `channels=` list `vigil notify-test` passes), delivers to each in parallel with
retries, and turns every outcome into a `Delivery`: a notification problem must never turn
a monitoring run into a crashed one. Every alert is redacted once, before any channel sees
it; errors and log lines are redacted too.

A new channel type is one module with `deliver(channel, alert)` plus an entry in `SENDERS`
(as Gatus has one module per alerting provider).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from tasks.notify import email, slack, webhook
from tasks.notify.transports import RetryPolicy, with_retries
from vigil.alert import Alert
from vigil.config import Channel, Config
from vigil.logs import story
from vigil.redact import redact

log = logging.getLogger("vigil.notify")

Status = Literal["sent", "failed", "skipped"]
MAX_WORKERS = 4

# One attempt per call, TransportError on failure; keyed by the channel's `type`.
SENDERS: dict[str, Callable[[Any, Alert], None]] = {
    "slack": slack.deliver,
    "email": email.deliver,
    "webhook": webhook.deliver,
}


@dataclass(frozen=True)
class Delivery:
    """One channel's outcome; `error` is redacted text when the alert did not get through."""

    channel: str
    channel_type: str
    status: Status
    attempts: int
    error: str | None = None


Record = Callable[[Alert, Delivery], None]


def dispatch(
    alert: Alert,
    config: Config,
    record: Record | None = None,
    channels: list[str] | None = None,
    policy: RetryPolicy | None = None,
) -> list[Delivery]:
    """Deliver `alert` to its routed channels (or `channels`); one Delivery each, in order.

    Never raises. `record` (the lead wires it to the store) gets the redacted alert and each
    Delivery; an exception inside it is logged and swallowed like any delivery failure.
    """
    routed = config.route(alert.duty, alert.severity) if channels is None else channels
    names = list(dict.fromkeys(routed))
    if not names:
        story().info(
            "alert %r: no channel is routed for %s %s alerts",
            alert.title,
            alert.severity,
            alert.duty,
        )
        return []
    safe = alert.redacted()
    workers = min(MAX_WORKERS, len(names))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vigil-notify") as pool:
        futures = [pool.submit(_send_named, name, config, safe, policy) for name in names]
        deliveries = [future.result() for future in futures]
    for delivery in deliveries:
        _log(safe, delivery)
        _record(record, safe, delivery)
    return deliveries


def send(
    channel_name: str, channel_config: Channel, alert: Alert, policy: RetryPolicy | None = None
) -> Delivery:
    """Deliver to one channel with retries; never raises."""
    safe = alert.redacted()
    sender = SENDERS[channel_config.type]
    label = f"{channel_name} ({channel_config.type})"
    outcome = with_retries(partial(sender, channel_config, safe), policy or RetryPolicy(), label)
    status: Status = "failed" if outcome.error else "sent"
    return Delivery(channel_name, channel_config.type, status, outcome.attempts, outcome.error)


def _send_named(name: str, config: Config, alert: Alert, policy: RetryPolicy | None) -> Delivery:
    channel = config.channels.get(name)
    if channel is None:
        return Delivery(name, "unknown", "skipped", 0, f"no channel named {name!r}")
    return send(name, channel, alert, policy)


def _record(record: Record | None, alert: Alert, delivery: Delivery) -> None:
    if record is None:
        return
    try:
        record(alert, delivery)
    except Exception as exc:
        log.error("could not record delivery to %s: %s", delivery.channel, redact(exc))


def _log(alert: Alert, delivery: Delivery) -> None:
    """One line per channel in the run's logs: what was sent to whom, delivered or not."""
    log = story()
    tries = f"{delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}"
    where = f"{delivery.channel} ({delivery.channel_type})"
    if delivery.status == "sent":
        log.info("alert %r sent to %s after %s", alert.title, where, tries)
    elif delivery.status == "skipped":
        log.warning("alert %r not sent to %s: %s", alert.title, where, delivery.error)
    else:
        error = delivery.error
        log.error("alert %r NOT delivered to %s after %s: %s", alert.title, where, tries, error)
