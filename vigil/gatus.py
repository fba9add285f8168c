"""Turn a Gatus config into a vigil config (`vigil import gatus`), and say what stayed behind.

Pure: a parsed Gatus document in, a vigil config document and the list of what could not be
carried over out. Conditions keep their text: vigil reads Gatus's condition language with
Gatus's meaning (tests/data/gatus_conditions.yaml), so only the placeholders vigil cannot
observe ([DOMAIN_EXPIRATION], [DNS_RCODE], [CONTEXT]...) are dropped, each one named.

Mapping, Gatus -> vigil:
  endpoints[]            monitors[] (http(s):// -> http, tcp://host:port -> tcp)
  interval               interval (per monitor; sweep.every is the shortest one)
  alerts[].failure-/success-threshold -> failure_threshold / success_threshold
  alerting.slack/email/custom -> channels (slack, email, webhook), routed by severity:
                         an endpoint with alerts is `high`, one without is `low` (not routed)
  maintenance            a recurring window (cron + duration) for every monitor
  client.insecure/timeout -> verify_tls / timeout
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import yaml

from vigil.conditions import ConditionError, parse_condition

__all__ = ["Conversion", "GatusError", "convert", "go_duration"]

_GATUS_FAILURE_THRESHOLD = 3  # Gatus's defaults for an alert that does not say
_GATUS_SUCCESS_THRESHOLD = 2
_GATUS_INTERVAL = timedelta(minutes=1)
_CHANNELS = {"slack": "slack", "email": "email", "custom": "webhook"}
_DAYS = {
    "sunday": 0,
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
}
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
# Endpoint keys carried over (handled below) or without meaning for vigil's probes.
_ENDPOINT_KEYS = {
    "name", "group", "url", "method", "headers", "body", "conditions", "interval",
    "alerts", "client", "enabled", "maintenance-windows", "ui",
}  # fmt: skip
_TOP_KEYS = {"endpoints", "alerting", "maintenance"}
# Placeholders Gatus has and vigil does not observe, and why.
_UNOBSERVED = {
    "[DOMAIN_EXPIRATION]": "vigil does not look up domain registrations",
    "[DNS_RCODE]": "vigil does not send DNS queries",
    "[CONTEXT]": "vigil has no suites and their context",
}


class GatusError(ValueError):
    """A file that is not a Gatus config at all (not a mapping, endpoints not a list)."""


@dataclass
class Conversion:
    """The vigil config as a document, and one line per thing that was not carried over."""

    config: dict[str, Any]
    not_carried: list[str] = field(default_factory=list)

    def to_yaml(self, source: str = "a Gatus config") -> str:
        head = [f"# vigil config converted from {source} by `vigil import gatus`."]
        if self.not_carried:
            head.append("# Not carried over:")
            head += [f"#   - {line}" for line in self.not_carried]
        body = yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True, width=100)
        return "\n".join(head) + "\n" + body


def go_duration(value: Any) -> timedelta:
    """A Go duration as Gatus writes them (`30s`, `1h30m`, `500ms`); a bare number is seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    text = str(value).strip()
    if not text or _GO_DURATION.sub("", text) != "":
        raise ValueError(f"not a duration: {value!r}")
    seconds = sum(float(n) * _GO_UNITS[u] for n, u in _GO_DURATION.findall(text))
    return timedelta(seconds=seconds)


def vigil_duration(value: timedelta) -> str:
    """The duration in vigil's one-unit form (`90s`, `36h`), which vigil's config reads back."""
    ms = round(value.total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def convert(document: Any, *, per_monitor_interval: bool = True) -> Conversion:
    """The vigil config for a Gatus config. `per_monitor_interval` False when the running
    vigil has no `interval:` per monitor: every monitor then runs at the shortest one."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise GatusError("a Gatus config is a mapping with `endpoints:`")
    endpoints = document.get("endpoints") or []
    if not isinstance(endpoints, list):
        raise GatusError("`endpoints:` must be a list")
    result = Conversion({})
    for key in document:
        if key not in _TOP_KEYS:
            result.not_carried.append(f"`{key}:` (Gatus's own {key} settings)")
    channels, defaults = _channels(document.get("alerting") or {}, result.not_carried)
    monitors = _monitors(endpoints, defaults, set(channels), result.not_carried)
    _set_intervals(result, monitors, per_monitor_interval)
    if channels:
        result.config["channels"] = channels
        routed = ("critical", "high", "medium")  # a copy each: no YAML anchors in the file
        result.config["routes"] = {severity: list(channels) for severity in routed}
    window = _maintenance(document.get("maintenance"), "maintenance", result.not_carried)
    if window is not None:
        result.config["maintenance"] = [window]
    result.config["monitors"] = monitors
    return result


def _set_intervals(result: Conversion, monitors: list[dict[str, Any]], own: bool) -> None:
    intervals = [m.pop("_interval") for m in monitors]
    every = min(intervals, default=_GATUS_INTERVAL)
    result.config["sweep"] = {"every": vigil_duration(every)}
    for monitor, interval in zip(monitors, intervals, strict=True):
        if interval == every:
            continue
        if own:
            monitor["interval"] = vigil_duration(interval)
        else:
            result.not_carried.append(
                f"endpoint {monitor['name']!r}: interval {vigil_duration(interval)} (this vigil "
                f"has no per-monitor interval; it runs every {vigil_duration(every)})"
            )


# --- alerting -------------------------------------------------------------------------------


def _channels(
    alerting: Any, notes: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """vigil channels for Gatus's providers, and each provider's `default-alert`."""
    channels: dict[str, dict[str, Any]] = {}
    defaults: dict[str, dict[str, Any]] = {}
    if not isinstance(alerting, dict):
        notes.append("`alerting:` is not a mapping")
        return channels, defaults
    for provider, settings in alerting.items():
        settings = settings if isinstance(settings, dict) else {}
        channel = _channel(provider, settings, notes)
        if channel is None:
            notes.append(f"alerting provider {provider!r} (vigil sends to slack, email, webhook)")
            continue
        channels[f"gatus-{provider}"] = channel
        defaults[provider] = settings.get("default-alert") or {}
        for key in ("overrides", "group"):
            if key in settings:
                notes.append(f"alerting.{provider}.{key} (per-group destinations)")
    return channels, defaults


def _channel(provider: str, settings: dict[str, Any], notes: list[str]) -> dict[str, Any] | None:
    if provider == "slack" and settings.get("webhook-url"):
        return {"type": "slack", "webhook_url": str(settings["webhook-url"])}
    if provider == "email" and settings.get("host") and settings.get("to"):
        return _email(settings, notes)
    if provider == "custom" and settings.get("url"):
        channel: dict[str, Any] = {"type": "webhook", "url": str(settings["url"])}
        if settings.get("headers"):
            channel["headers"] = {str(k): str(v) for k, v in settings["headers"].items()}
        for key in ("method", "body", "placeholders"):
            if key in settings:
                notes.append(f"alerting.custom.{key} (vigil's webhook POSTs its own JSON document)")
        return channel
    return None


def _email(settings: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    port = int(settings.get("port") or 587)
    recipients = [a.strip() for a in str(settings["to"]).split(",") if a.strip()]
    channel: dict[str, Any] = {
        "type": "email",
        "host": str(settings["host"]),
        "port": port,
        "security": "ssl" if port == 465 else "starttls" if port == 587 else "none",
        "from": str(settings.get("from") or settings.get("username") or ""),
        "to": recipients,
    }
    if settings.get("username"):
        channel["username"] = str(settings["username"])
    if settings.get("password"):
        channel["password"] = str(settings["password"])
    client = settings.get("client") or {}
    if isinstance(client, dict) and client.get("insecure"):
        channel["verify_tls"] = False
    if port not in (465, 587):
        notes.append(f"alerting.email: port {port} is sent without TLS (security: none)")
    return channel


# --- endpoints ------------------------------------------------------------------------------


def _monitors(
    endpoints: list[Any],
    defaults: dict[str, dict[str, Any]],
    channels: set[str],
    notes: list[str],
) -> list[dict[str, Any]]:
    monitors: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, endpoint in enumerate(endpoints):
        if not isinstance(endpoint, dict):
            notes.append(f"endpoints[{i}] is not a mapping")
            continue
        label = str(endpoint.get("name") or f"endpoints[{i}]")
        if endpoint.get("enabled") is False:
            notes.append(f"endpoint {label!r}: disabled in Gatus, left out")
            continue
        monitor = _monitor(endpoint, label, notes)
        if monitor is None:
            continue
        monitor["name"] = _unique(label, endpoint.get("group"), names)
        _alerts(monitor, endpoint.get("alerts") or [], defaults, channels, notes)
        monitors.append(monitor)
    return monitors


def _unique(name: str, group: Any, taken: set[str]) -> str:
    """Gatus keys an endpoint by group and name; vigil by name alone."""
    chosen = name if name not in taken else f"{group or 'endpoint'}/{name}"
    n = 2
    while chosen in taken:
        chosen, n = f"{name}-{n}", n + 1
    taken.add(chosen)
    return chosen


def _monitor(endpoint: dict[str, Any], label: str, notes: list[str]) -> dict[str, Any] | None:
    """One endpoint as a vigil monitor (name and alerts added by the caller), or None."""
    url = str(endpoint.get("url") or "")
    parts = urlsplit(url)
    monitor: dict[str, Any] = {"name": label}
    if parts.scheme in ("http", "https"):
        monitor["url"] = url
        _http_settings(monitor, endpoint, label, notes)
    elif parts.scheme == "tcp" and parts.hostname and parts.port:
        monitor.update(type="tcp", host=parts.hostname, port=parts.port)
    else:
        kind = "DNS" if endpoint.get("dns") else f"{parts.scheme}://" if parts.scheme else "this"
        notes.append(f"endpoint {label!r}: {kind} endpoints ({url or 'no url'}) are not probed")
        return None
    if endpoint.get("group"):
        monitor["group"] = str(endpoint["group"])
    conditions = _conditions(endpoint.get("conditions") or [], label, notes)
    if conditions:
        monitor["conditions"] = conditions
    monitor["_interval"] = _interval(endpoint, label, notes)
    _client(monitor, endpoint.get("client"), label, notes)
    windows = endpoint.get("maintenance-windows") or []
    own = [_maintenance(w, f"endpoint {label!r} maintenance", notes) for w in windows]
    if any(own):
        monitor["maintenance"] = [w for w in own if w]
    for key in endpoint:
        if key not in _ENDPOINT_KEYS:
            notes.append(f"endpoint {label!r}: `{key}:`")
    return monitor


def _http_settings(
    monitor: dict[str, Any], endpoint: dict[str, Any], label: str, notes: list[str]
) -> None:
    method = str(endpoint.get("method") or "GET").upper()
    if method != "GET":
        monitor["method"] = method
    if endpoint.get("headers"):
        monitor["headers"] = {str(k): str(v) for k, v in endpoint["headers"].items()}
    if endpoint.get("body"):
        monitor["body"] = str(endpoint["body"])
        if "[" in monitor["body"]:
            notes.append(f"endpoint {label!r}: placeholders in the request body are sent as is")


def _conditions(conditions: list[Any], label: str, notes: list[str]) -> list[str]:
    kept: list[str] = []
    for condition in conditions:
        text = str(condition)
        try:
            parse_condition(text)
        except ConditionError as exc:
            why = next((w for p, w in _UNOBSERVED.items() if p in text.upper()), str(exc))
            notes.append(f"endpoint {label!r}: condition {text!r} ({why})")
            continue
        kept.append(text)
    if conditions and not kept:
        notes.append(f"endpoint {label!r}: no condition left; vigil's defaults apply")
    return kept


def _interval(endpoint: dict[str, Any], label: str, notes: list[str]) -> timedelta:
    if "interval" not in endpoint:
        return _GATUS_INTERVAL
    try:
        interval = go_duration(endpoint["interval"])
    except ValueError:
        notes.append(f"endpoint {label!r}: interval {endpoint['interval']!r} is not a duration")
        return _GATUS_INTERVAL
    return interval if interval > timedelta(0) else _GATUS_INTERVAL


def _client(monitor: dict[str, Any], client: Any, label: str, notes: list[str]) -> None:
    if not isinstance(client, dict):
        return
    if client.get("insecure"):
        monitor["verify_tls"] = False
    if "timeout" in client:
        try:
            monitor["timeout"] = vigil_duration(go_duration(client["timeout"]))
        except ValueError:
            notes.append(f"endpoint {label!r}: client.timeout {client['timeout']!r}")
    for key in client:
        if key not in ("insecure", "timeout"):
            notes.append(f"endpoint {label!r}: client.{key}")


def _alerts(
    monitor: dict[str, Any],
    alerts: list[Any],
    defaults: dict[str, dict[str, Any]],
    channels: set[str],
    notes: list[str],
) -> None:
    """Thresholds from the endpoint's alerts (each falling back to its provider's
    default-alert, then Gatus's 3 and 2); no enabled alert means nobody is paged."""
    label = monitor["name"]
    failures: list[int] = []
    successes: list[int] = []
    for alert in alerts:
        if not isinstance(alert, dict):
            continue
        kind = str(alert.get("type", ""))
        settings = {**defaults.get(kind, {}), **alert}
        if settings.get("enabled") is False:
            continue
        if f"gatus-{kind}" not in channels:
            notes.append(f"endpoint {label!r}: alert type {kind!r} has no vigil channel")
            continue
        failures.append(int(settings.get("failure-threshold", _GATUS_FAILURE_THRESHOLD)))
        successes.append(int(settings.get("success-threshold", _GATUS_SUCCESS_THRESHOLD)))
        if settings.get("send-on-resolved") is False:
            notes.append(f"endpoint {label!r}: send-on-resolved false (vigil reports recovery)")
    if not failures:
        monitor["severity"] = "low"  # not routed: recorded and shown, pages nobody
        return
    monitor["failure_threshold"] = min(failures)
    monitor["success_threshold"] = min(successes)
    if len(set(failures)) > 1 or len(set(successes)) > 1:
        notes.append(f"endpoint {label!r}: alerts with different thresholds; the lowest is used")
    monitor["severity"] = "high"
    if len(failures) < len(channels):
        notes.append(
            f"endpoint {label!r}: alerts only some providers in Gatus; vigil routes by "
            "severity, so it reaches every converted channel"
        )


# --- maintenance ----------------------------------------------------------------------------


def _maintenance(settings: Any, where: str, notes: list[str]) -> dict[str, Any] | None:
    """Gatus's daily window (`start: "23:00"`, `duration`, `every: [Monday]`) as a cron."""
    if not isinstance(settings, dict) or settings.get("enabled") is False:
        return None
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(settings.get("start", "")).strip())
    try:
        duration = go_duration(settings.get("duration", ""))
    except ValueError:
        duration = timedelta(0)
    days = [str(d).strip().lower() for d in settings.get("every") or []]
    if match is None or duration <= timedelta(0) or any(d not in _DAYS for d in days):
        notes.append(f"{where}: start/duration/every not understood")
        return None
    hour, minute = int(match[1]), int(match[2])
    weekdays = ",".join(str(_DAYS[d]) for d in days) if days else "*"
    window: dict[str, Any] = {
        "cron": f"{minute} {hour} * * {weekdays}",
        "duration": vigil_duration(duration),
        "timezone": str(settings.get("timezone") or "UTC"),
        "reason": "maintenance (from Gatus)",
    }
    return window
