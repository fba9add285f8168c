"""The one way a duty tells people something: route it, send it, record every delivery.

Duties build an `Alert` (vigil.alert: what happened, how severe) and call `send_alert`;
routing decides who hears it. A failed delivery is recorded and logged but never raised, so
it can neither fail nor hide the duty's own result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from tasks.notify.dispatch import Delivery, dispatch
from vigil.alert import Alert
from vigil.config import Config
from vigil.runtime import flow_run_link
from vigil.store import Store


def send_alert(
    config: Config, store: Store | None, alert: Alert, channels: list[str] | None = None
) -> list[Delivery]:
    """Dispatch `alert` to its routed channels (or `channels`), recording each delivery."""
    if alert.flow_run_url is None:
        link = flow_run_link()
        if link:
            alert = dataclasses.replace(alert, flow_run_url=link)
    return dispatch(alert, config, record=recorder(store) if store else None, channels=channels)


def recorder(store: Store) -> Callable[[Alert, Delivery], None]:
    """A `record` callback for `dispatch` that writes each delivery to the notifications table."""

    def record(alert: Alert, delivery: Delivery) -> None:
        store.record_notification(
            channel=delivery.channel,
            channel_type=delivery.channel_type,
            severity=alert.severity,
            title=alert.title,
            subject=alert.subject,
            status=delivery.status,
            attempts=delivery.attempts,
            error=delivery.error,
        )

    return record
