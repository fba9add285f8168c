"""Regional notices: a monitor failing from fewer locations than its quorum.

Such a monitor is not DOWN (`vigil.sweep.quorum`), and nobody is paged; but someone should
know, once, that eu-west cannot reach the app: a low-severity notice ("api is failing from
eu-west only; up from us-east and ap-south"), reminded every `remind_every` like any other
alert, and a notice when every location sees it up again. The rules, in one place:

- An episode starts on the first sweep whose locations saw a failure below the quorum while
  the monitor is not DOWN, and is announced once `failure_threshold` sweeps in a row saw it
  (the same debounce a DOWN gets), outside maintenance (held back until it ends).
- It ends, with a recovery notice if it was announced, on a sweep where every location that
  was failing reported and none failed. A failing location gone silent proves nothing: the
  episode goes on. A failure that reaches the quorum ends it quietly: the DOWN alert says
  the rest, and its recovery closes it.
- With `below_quorum: degraded` the monitor is DEGRADED, whose own alert says where, so no
  regional notices are sent.

The episode is kept under `regional` in the monitor state's locations record, beside what
each location saw, so it survives between sweeps without a table of its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vigil.config import Monitor
from vigil.monitoring import DOWN, MonitorState, Transition
from vigil.sweep.quorum import LocationView, and_names

REGIONAL = "regional"


def step(
    monitor: Monitor,
    prior: dict[str, Any] | None,
    view: LocationView,
    state: MonitorState,
    at: datetime,
    in_maintenance: bool,
    below_quorum: str,
) -> tuple[dict[str, Any], Transition | None]:
    """The monitor's locations record after this sweep (`view`, and the regional episode
    carried on from `prior`), and the notice to send, if any. `state` is the monitor's
    state after this sweep."""
    record = view.record()
    episode = dict((prior or {}).get(REGIONAL) or {})
    if below_quorum == "degraded" or state.state == DOWN or view.confirmed:
        return record, None
    if view.regional:
        episode = _go_on(episode, view, at)
        record[REGIONAL] = episode
        if in_maintenance:
            return record, None
        return record, _notice(monitor, episode, view, state, at)
    if not episode:
        return record, None
    if not view.saw or any(loc in view.silent for loc in episode.get("failing", [])):
        record[REGIONAL] = episode  # not seen again from where it failed: still going
        return record, None
    if not episode.get("alerted_at"):
        return record, None
    since = datetime.fromisoformat(episode["since"])
    failing = and_names(episode.get("failing", []))
    return record, _transition(
        monitor, "regional-recovered", state, at, at - since, [], f"failing from {failing}"
    )


def shown(view: LocationView, episode: dict[str, Any] | None = None) -> str | None:
    """What people are told of a monitor's locations (`vigil status`, the status page, the
    sweep's table and summary), or None when every location reported and saw the same.

    A failure the quorum confirmed reads `DOWN from eu-west and us-east, up from ap-south`;
    one below it (UP with a regional warning, or DEGRADED by `below_quorum`) reads like its
    notice, `failing from ap-south only; up from eu-west and us-east`; silent locations are
    named (`no report from ap-south`). An episode still going on because the location that
    failed has gone silent since says so: `...; failing from eu-west since 10:01 UTC`."""
    episode = episode or {}
    if not (view.notable or episode):
        return None
    words = view.regional_words() if view.regional else view.words()
    if episode and not view.regional and not view.confirmed:
        since = datetime.fromisoformat(episode["since"]).strftime("%Y-%m-%d %H:%M UTC")
        failing = and_names(list(episode.get("failing") or ["some locations"]))
        words = "; ".join(w for w in (words, f"failing from {failing} since {since}") if w)
    return words


def shown_record(record: dict[str, Any] | None) -> str | None:
    """`shown` for a monitor state's stored locations record (the view and its episode)."""
    if not record:
        return None
    return shown(LocationView.from_record(record), record.get(REGIONAL))


def _go_on(episode: dict[str, Any], view: LocationView, at: datetime) -> dict[str, Any]:
    if not episode:
        return {"since": at.isoformat(), "count": 1, "alerted_at": None, "failing": view.failing}
    failing = list(dict.fromkeys([*episode.get("failing", []), *view.failing]))
    return {**episode, "count": int(episode.get("count", 0)) + 1, "failing": failing}


def _notice(
    monitor: Monitor,
    episode: dict[str, Any],
    view: LocationView,
    state: MonitorState,
    at: datetime,
) -> Transition | None:
    """The first notice once the threshold is met, then reminders; marks the episode."""
    alerted = episode.get("alerted_at")
    why = view.reasons()
    if alerted is None:
        if episode["count"] < monitor.failure_threshold:
            return None
        episode["alerted_at"] = at.isoformat()
        return _transition(monitor, "regional", state, at, None, why, view.regional_words())
    if monitor.remind_every and at - datetime.fromisoformat(alerted) >= monitor.remind_every:
        episode["alerted_at"] = at.isoformat()
        lasted = at - datetime.fromisoformat(episode["since"])
        return _transition(
            monitor, "regional-reminder", state, at, lasted, why, view.regional_words()
        )
    return None


def _transition(
    monitor: Monitor,
    kind: Any,
    state: MonitorState,
    at: datetime,
    lasted: Any,
    why: list[str],
    where: str,
) -> Transition:
    return Transition(
        monitor=monitor.name,
        kind=kind,
        previous=state.state,
        state=state.state,
        at=at,
        down_for=lasted,
        failed=why,
        severity="low",
        in_maintenance=False,
        where=where,
    )
