"""A tiny in-memory sweep for the monitoring tests: advance, plan, mark, as the flow does."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vigil.alert import Alert
from vigil.config import Monitor
from vigil.monitoring import MonitorState, Transition, advance, mark_alerted, plan_alerts

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
STATUS_503 = "[STATUS] 503, expected == 200"
BODY_DEGRADED = '[BODY].status "degraded", expected == ok'
FAILED_FOR = {"ok": [], "failed": [STATUS_503], "degraded": [BODY_DEGRADED]}
LETTERS = {"O": "ok", "F": "failed", "D": "degraded"}


def monitor(name: str = "api-health", **settings: Any) -> Monitor:
    return Monitor(name=name, url=f"https://{name}.example.com/health", **settings)


@dataclass
class Sweeps:
    """Monitors swept once a minute from T0; keeps every sweep's transitions and alerts."""

    monitors: dict[str, Monitor]
    states: dict[str, MonitorState] = field(default_factory=dict)
    at: datetime = T0
    digest_after: int = 3
    transitions: list[Transition] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    @classmethod
    def of(cls, *monitors: Monitor, digest_after: int = 3) -> Sweeps:
        return cls({m.name: m for m in monitors}, digest_after=digest_after)

    def sweep(
        self,
        verdicts: dict[str, str],
        *,
        maintenance: Iterable[str] = (),
        fallback: dict[str, str] | None = None,
    ) -> list[Alert]:
        """One sweep; returns the alerts it sends."""
        held = set(maintenance)
        found: list[Transition] = []
        for name, verdict in verdicts.items():
            state = self.states.get(name, MonitorState(name))
            self.states[name], transition = advance(
                self.monitors[name],
                state,
                verdict,
                FAILED_FOR[verdict],
                None,
                self.at,
                name in held,
            )
            found += [transition] if transition else []
        alerts = plan_alerts(
            found, self.monitors, self.states, fallback or {}, digest_after=self.digest_after
        )
        self.states = mark_alerted(self.states, found, self.monitors, self.at)
        self.transitions += found
        self.alerts += alerts
        self.at += MINUTE
        return alerts

    def feed(self, letters: str, name: str | None = None, **options: Any) -> list[Alert]:
        """Sweep one monitor with a verdict per letter (O ok, F failed, D degraded)."""
        target = name or next(iter(self.monitors))
        sent: list[Alert] = []
        for letter in letters:
            sent += self.sweep({target: LETTERS[letter]}, **options)
        return sent

    def state(self, name: str | None = None) -> MonitorState:
        return self.states[name or next(iter(self.monitors))]

    def titles(self) -> list[str]:
        return [a.title for a in self.alerts]
