"""Notifications: delivering an `Alert` (vigil.alert) to Slack, email and webhooks.

One module per channel type (`slack`, `email`, `webhook`: one attempt each, saying whether
a retry could help), one retry loop (`transports`), routing and parallel delivery
(`dispatch`), and recording every delivery in the store (`record.send_alert`). `notify` is
the Prefect task a duty ends with.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.notify.dispatch import SENDERS, Delivery, Record, dispatch, send
from tasks.notify.record import recorder, send_alert
from tasks.notify.transports import RetryPolicy, TransportError
from vigil.alert import Alert
from vigil.config import Config
from vigil.store import open_store

__all__ = [
    "SENDERS",
    "Delivery",
    "Record",
    "RetryPolicy",
    "TransportError",
    "dispatch",
    "notify",
    "recorder",
    "send",
    "send_alert",
]


@task(name="notify", cache_policy=NO_CACHE)
def notify(config: Config, alert: Alert) -> int:
    """Send the run's final alert; returns how many channels got it."""
    with open_store(config.store.url) as store:
        deliveries = send_alert(config, store, alert)
    return sum(d.status == "sent" for d in deliveries)
