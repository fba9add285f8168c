"""Generic webhook: the alert as JSON, POSTed with the channel's own headers.

The body is `Alert.as_dict()` plus `vigil_version`, so receivers (PagerDuty bridges, chat
relays, home-grown scripts) can check which shape they are parsing. The alert arrives
already redacted (`tasks.notify.send` does it once for every channel).
"""

from __future__ import annotations

import httpx

from tasks.notify.transports import (
    TransportError,
    certificate_rejected,
    http_failure,
    redacting_logger,
)
from vigil import __version__
from vigil.alert import Alert
from vigil.config import WebhookChannel

# httpx logs every request URL at INFO, and a webhook URL often carries its secret.
redacting_logger("httpx")


def deliver(channel: WebhookChannel, alert: Alert) -> None:
    """POST `alert` once; raise TransportError saying whether a retry could help."""
    body = {**alert.as_dict(), "vigil_version": __version__}
    headers = {"User-Agent": f"vigil/{__version__}", **channel.headers}
    timeout = channel.timeout.total_seconds()
    try:
        response = httpx.post(channel.url, json=body, headers=headers, timeout=timeout)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise TransportError(f"unusable webhook URL: {exc}", permanent=True) from exc
    except httpx.TimeoutException as exc:
        raise TransportError(f"webhook timed out after {timeout:g}s") from exc
    except httpx.TransportError as exc:
        rejected = certificate_rejected(exc)
        what = "TLS certificate rejected" if rejected else "cannot reach webhook"
        raise TransportError(f"{what}: {exc}", permanent=rejected) from exc
    if not response.is_success:
        raise http_failure(response.status_code, response.text, response.headers.get("Retry-After"))
