"""What happened, in one value every channel renders its own way.

Every duty builds an `Alert` (what happened, how severe) in its core module; delivery is
work against outside systems and lives in `tasks/notify/`, whose channel modules only
format it. The shared wording (headline, "since" line, plain-text body) lives here so
Slack's fallback text, the email body and the logs say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from vigil import clock
from vigil.durations import format_duration
from vigil.redact import redact

# Worst first: routes, digests and "at most medium" all read this order.
Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")

Kind = Literal["problem", "recovered", "info", "test"]
KINDS: tuple[Kind, ...] = ("problem", "recovered", "info", "test")

_SEVERITY_EMOJI: dict[str, str] = {"critical": "🚨", "high": "🔴", "medium": "🟠", "low": "🟡"}
_KIND_EMOJI: dict[str, str] = {"recovered": "✅", "info": "ℹ️", "test": "🧪"}


@dataclass(frozen=True)
class Alert:
    """One notification-worthy event; `details` are short bullet lines, `fields` extra facts."""

    title: str
    severity: Severity
    duty: str
    subject: str
    summary: str
    details: list[str] = field(default_factory=list)
    since: datetime | None = None
    flow_run_url: str | None = None
    kind: Kind = "problem"
    fields: dict[str, str] = field(default_factory=dict)
    html: str | None = None  # a full HTML document for email (e.g. the weekly report)

    def __post_init__(self) -> None:
        # A typo here would otherwise surface later as a KeyError inside a channel thread.
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; expected one of {SEVERITIES}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {KINDS}")

    @property
    def emoji(self) -> str:
        """A recovery should not look like an outage, so the kind wins over the severity."""
        return _KIND_EMOJI.get(self.kind, _SEVERITY_EMOJI[self.severity])

    @property
    def since_utc(self) -> datetime | None:
        """Naive datetimes are taken as UTC: vigil stores and compares times in UTC."""
        if self.since is None:
            return None
        if self.since.tzinfo is None:
            return self.since.replace(tzinfo=UTC)
        return self.since.astimezone(UTC)

    def since_text(self, now: datetime | None = None) -> str | None:
        """`2024-05-01T10:00:00Z (12m ago)`: exact for the record, relative for a glance."""
        since = self.since_utc
        if since is None:
            return None
        elapsed = max((now or clock.now()) - since, timedelta(0))
        stamp = since.replace(microsecond=0).isoformat().replace("+00:00", "Z")
        return f"{stamp} ({format_duration(elapsed)} ago)"

    def headline(self) -> str:
        return f"{self.emoji} {self.title}"

    def facts(self) -> list[tuple[str, str]]:
        """The label/value pairs every channel shows, in the order people scan them."""
        facts = [("Severity", self.severity.upper()), ("Where", self.subject)]
        since = self.since_text()
        if since:
            facts.append(("Since", since))
        facts.append(("Duty", self.duty))
        return facts + list(self.fields.items())

    def plain_text(self) -> str:
        """The whole alert as plain text: the email body and any text-only reader."""
        lines = [self.headline(), "", *(f"{k}: {v}" for k, v in self.facts())]
        lines += ["", self.summary]
        if self.details:
            lines += ["", *(f"- {line}" for line in self.details)]
        if self.flow_run_url:
            lines += ["", f"Flow run: {self.flow_run_url}"]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the webhook body and what a store or artifact would keep."""
        since = self.since_utc
        return {
            "title": self.title,
            "severity": self.severity,
            "duty": self.duty,
            "subject": self.subject,
            "summary": self.summary,
            "details": list(self.details),
            "since": since.isoformat() if since else None,
            "flow_run_url": self.flow_run_url,
            "kind": self.kind,
            "fields": dict(self.fields),
        }

    def redacted(self) -> Alert:
        """The same alert with every free-text value masked; channels only ever see this."""
        return replace(
            self,
            title=redact(self.title),
            duty=redact(self.duty),
            subject=redact(self.subject),
            summary=redact(self.summary),
            details=[redact(line) for line in self.details],
            flow_run_url=redact(self.flow_run_url) if self.flow_run_url else None,
            fields={redact(k): redact(v) for k, v in self.fields.items()},
            html=redact(self.html) if self.html else None,
        )
