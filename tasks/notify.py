"""Notifications as a Prefect task: a duty's final alert, routed, sent and recorded."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from vigil.alerts import send_alert
from vigil.config import Config
from vigil.notify import Alert
from vigil.store import open_store


@task(name="notify", cache_policy=NO_CACHE)
def notify(config: Config, alert: Alert) -> int:
    """Send the run's final alert; returns how many channels got it."""
    with open_store(config.store.url) as store:
        deliveries = send_alert(config, store, alert)
    return sum(d.status == "sent" for d in deliveries)
