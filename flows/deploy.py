"""Deploy verification with automatic rollback, and the manual rollback, as Prefect flows.

`deploy-verify` reads like the runbook it replaces: take the target's lock, watch the new
release for its window, and if it fails roll back, watch the restored release for a window
of its own, then tell people. `deploy-rollback` is the same second half, by hand. The
verdict rules, the records and the words are core (`vigil.deploy`), the checks and the
strategies the outside world (`tasks.deploy`, `tasks.rollback`).

Only one verification or rollback per target runs at a time: each takes the Prefect global
concurrency limit `deploy-<target>` (created with limit 1 on first use), waiting up to the
target's `lock_timeout`; a run that waits longer ends `LockTimeout` without touching
anything.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any

from prefect import flow, get_run_logger

from tasks.deploy import http_checks, measure
from tasks.notify import notify
from tasks.rollback import plan_rollback, roll_back
from vigil.config import Config, DeployTarget, Rollback, load_config
from vigil.deploy import history as records
from vigil.deploy.report import (
    DeployRun,
    interrupted_alert,
    interrupted_rows_alert,
    lock_timeout_message,
    locked_summary,
    measurement_line,
    publish,
    stopped_alert,
    waiting_for_lock_message,
)
from vigil.deploy.rollback import RollbackPlan, RollbackRequest
from vigil.deploy.verdict import (
    Limits,
    VerificationWindow,
    is_last,
    next_start,
    planned_measurements,
)
from vigil.durations import format_duration
from vigil.locks import PROGRESS_EVERY, Locked, held
from vigil.logs import story
from vigil.runtime import flow_run_id, flow_run_link, outcome
from vigil.store import Store, open_store

# Characters Prefect refuses in a concurrency limit's name.
LOCK_NAME_BANNED = "/%&><"


@flow(
    name="deploy-verify",
    flow_run_name="verify {target}@{release}",
    log_prints=False,
    on_crashed=[lambda flow, run, state: after_interruption(run, state)],
    on_cancellation=[lambda flow, run, state: after_interruption(run, state)],
)
def deploy_verify(
    target: str, release: str, dry_run: bool = False, config_path: str | None = None
) -> Any:
    """Verify `release` of `target`; on failure roll back (unless `dry_run`) and re-verify."""
    config = load_config(config_path)
    try:
        deploy = deploy_target(config, target)
    except ValueError as exc:
        return cannot_run(target, release, exc)
    run = DeployRun(target, release, "deploy", deploy.severity, dry_run=dry_run)
    with open_store(config.store.url) as store, _alerting_on_error(config, run):
        try:
            with target_lock(store, target, deploy):
                verify_release(store, target, deploy, run)
        except Locked as exc:
            return outcome("LockTimeout", locked_summary(target, release, str(exc)), str(exc))
    return conclude(config, run)


def _rollback_run_name() -> str:
    from prefect.runtime import flow_run

    parameters = flow_run.parameters
    to = parameters.get("to")
    return f"rollback {parameters['target']}" + (f" to {to}" if to else "")


@flow(
    name="deploy-rollback",
    flow_run_name=_rollback_run_name,
    log_prints=False,
    on_crashed=[lambda flow, run, state: after_interruption(run, state)],
    on_cancellation=[lambda flow, run, state: after_interruption(run, state)],
)
def deploy_rollback(target: str, to: str | None = None, config_path: str | None = None) -> Any:
    """Roll `target` back by hand (to `to`, else the newest known-good release) and verify
    the restored release, with the same strategy, checks and records as the automatic path."""
    config = load_config(config_path)
    try:
        deploy = deploy_target(config, target)
    except ValueError as exc:
        return cannot_run(target, None, exc)
    if deploy.rollback is None:
        message = f"no rollback is configured for {target} (add deploys.{target}.rollback)"
        return outcome("CannotRollBack", {"target": target, "verdict": "not_started"}, message)
    run = DeployRun(target, None, "rollback", deploy.severity, stage="rollback")
    with open_store(config.store.url) as store, _alerting_on_error(config, run):
        try:
            with target_lock(store, target, deploy):
                rollback_by_hand(store, target, deploy, deploy.rollback, to, run)
        except Locked as exc:
            return outcome("LockTimeout", locked_summary(target, None, str(exc)), str(exc))
    assert run.plan is not None  # rollback_by_hand always plans
    if run.plan.problem:
        message = run.plan.describe()
        return outcome("CannotRollBack", {"target": target, "verdict": "not_started"}, message)
    return conclude(config, run)


# --- the two halves ---------------------------------------------------------------------------


def verify_release(store: Store, target: str, deploy: DeployTarget, run: DeployRun) -> None:
    """Watch the release; if it fails and may be rolled back, roll back and watch again."""
    release = str(run.release)
    history = records.history(store, target)
    live = records.live_release(history)
    run.replaced = live if live != release else None
    good = tuple(records.known_good(history, [release]))
    refused = tuple(sorted(records.taken_away(history) - {release}))
    run.known_good = good
    run.plan = _plan(deploy, RollbackRequest(target, release, None, good, refused))
    run.refusal = _refusal(target, run.plan, history, release)
    _warn_if_not_live(target, release, run.plan)
    started = time.monotonic()
    record_id = records.start_record(
        store,
        target=target,
        release=release,
        kind="deploy",
        previous_release=run.plan.to_release if run.plan else None,
        flow_run_id=flow_run_id(),
    )
    with _recorded(store, record_id, run, started, run.verdict, run.interrupted_verdict):
        run.window = watch(store, record_id, target, deploy, release, "release")
        if run.should_roll_back and run.plan is not None and deploy.rollback is not None:
            restore(store, target, deploy, deploy.rollback, run.plan, run, release)


def rollback_by_hand(
    store: Store,
    target: str,
    deploy: DeployTarget,
    rollback: Rollback,
    to: str | None,
    run: DeployRun,
) -> None:
    """The manual path: away from what the records say runs now, to `to` or the newest
    known-good release, then the same restore and verification as the automatic path."""
    history = records.history(store, target)
    current = records.live_release(history)
    good = tuple(records.known_good(history, [current]))
    refused = tuple(sorted(records.taken_away(history) - {current} if current else set()))
    plan = plan_rollback(rollback, RollbackRequest(target, current, to, good, refused))
    run.release, run.plan, run.known_good = plan.from_release, plan, good
    if not plan.problem:
        restore(store, target, deploy, rollback, plan, run, plan.from_release)


def restore(
    store: Store,
    target: str,
    deploy: DeployTarget,
    rollback: Rollback,
    plan: RollbackPlan,
    run: DeployRun,
    away_from: str | None,
) -> None:
    """Run the rollback plan, then verify the restored release with the same checks."""
    started = time.monotonic()
    record_id = records.start_record(
        store,
        target=target,
        release=plan.to_release,
        kind="rollback",
        previous_release=away_from,
        flow_run_id=flow_run_id(),
    )
    with _recorded(store, record_id, run, started, run.rollback_verdict, lambda: "interrupted"):
        run.stage = "rollback"
        log = get_run_logger()
        log.info("rolling back to %s: %s", plan.to_release, plan.why or plan.describe())
        run.rollback = roll_back(rollback, plan)
        for step in run.rollback.steps:
            log.info("rollback step %s", step.line())
        if run.rollback.ok:
            run.stage = "re-verification"
            run.rollback_window = watch(
                store, record_id, target, deploy, plan.to_release, "rollback"
            )


def watch(
    store: Store,
    record_id: int,
    target: str,
    deploy: DeployTarget,
    release: str | None,
    phase: str,
) -> VerificationWindow:
    """Measure on the schedule of `vigil.deploy` until the verdict is no longer running."""
    log = get_run_logger()
    window = VerificationWindow(phase, release, Limits.of(deploy))
    _initial_delay(release, deploy.initial_delay.total_seconds())
    start = due = time.monotonic()
    number, planned = 0, planned_measurements(deploy.window, deploy.interval)
    while True:
        time.sleep(max(due - time.monotonic(), 0.0))
        began = time.monotonic()
        number += 1
        measurement = measure(target, release, number, deploy, window.restarts_baseline())
        records.record_measurement(store, record_id, measurement)
        verdict = window.add(measurement, last=is_last(start, deploy.window, began))
        log.info("%s", measurement_line(release, number, planned, measurement))
        if verdict.status != "running":
            log.info("%s %s: %s", release, verdict.status, verdict.reason)
            return window
        due = next_start(began, time.monotonic(), deploy.interval)


def _initial_delay(release: str | None, seconds: float) -> None:
    """Argo's initialDelay: let the release boot before the first measurement, saying so
    every few seconds (a pipeline step silent for a minute looks hung)."""
    if seconds <= 0:
        return
    log = get_run_logger()
    log.info(
        "%s: waiting initial_delay %s before the first measurement",
        release,
        format_duration(seconds),
    )
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(max(min(end - time.monotonic(), PROGRESS_EVERY), 0.0))
        left = end - time.monotonic()
        if left > 0.5:
            log.info("%s: first measurement in %s", release, format_duration(round(left)))


def conclude(config: Config, run: DeployRun) -> Any:
    """Publish the artifacts, send the final notification, and end in the run's state."""
    publish(run)
    notify(config, run.alert(flow_run_link()))
    return outcome(run.state_name(), run.summary(), run.message(), degraded=run.is_degraded())


def after_interruption(flow_run: Any, state: Any) -> None:
    """The crashed/cancelled state hook: rows of this run still `running` (the run could not
    record its own end) become `interrupted`, and people are told. Never raises: a hook's
    error would hide the state it reports."""
    log = logging.getLogger("vigil.deploy")
    try:
        parameters = flow_run.parameters or {}
        config = load_config(parameters.get("config_path"))
        with open_store(config.store.url) as store:
            rows = records.interrupt_running(
                store, str(flow_run.id), f"interrupted: the run ended {state.name}"
            )
        if rows:
            found = [(row.kind, row.release) for row in rows]
            link = flow_run_link()
            notify(config, interrupted_rows_alert(parameters["target"], found, state.name, link))
    except Exception as exc:
        log.error("deploy: could not record the interruption of run %s: %r", flow_run.id, exc)


# --- helpers ------------------------------------------------------------------------------------


def cannot_run(target: str, release: str | None, problem: ValueError) -> Any:
    """A target whose checks cannot be set up: a finding about the config, before any
    change (the command says so before it starts a run; this is for served runs)."""
    summary = {"target": target, "release": release, "verdict": "not_started"}
    return outcome("ConfigError", summary, str(problem))


def deploy_target(config: Config, target: str) -> DeployTarget:
    found = config.deploys.get(target)
    if found is None:
        known = ", ".join(sorted(config.deploys)) or "none are configured"
        raise ValueError(f"no deploy target named {target!r} under `deploys:` (known: {known})")
    banned = sorted(set(target) & set(LOCK_NAME_BANNED))
    if banned:
        raise ValueError(
            f"deploys.{target}: a target name cannot contain {' '.join(banned)} (it names the "
            f"Prefect concurrency limit {lock_name(target)!r}); rename the target"
        )
    http_checks(target, found)  # a URL that cannot be probed fails here, before any change
    return found


def lock_name(target: str) -> str:
    return f"deploy-{target}"


def target_lock(store: Store, target: str, deploy: DeployTarget) -> AbstractContextManager[None]:
    """Hold the target's lock; raise Locked, naming the holder, after lock_timeout."""
    holder = partial(_lock_holder, store, target, deploy)
    waiting = _waiting(store, target, deploy)
    return held(lock_name(target), deploy.lock_timeout, holder, waiting)


def _waiting(store: Store, target: str, deploy: DeployTarget) -> Callable[[float], None]:
    """Say every few seconds whom the run waits for: on the terminal and in the run's logs
    (the run's logger is taken here, on the run's thread; the lock calls back from its
    own)."""
    log = story()

    def say(seconds: float) -> None:
        holder = records.running(store, target)
        line = waiting_for_lock_message(
            target,
            lock_name(target),
            seconds,
            deploy.lock_timeout,
            holder.kind if holder else None,
            holder.release if holder else None,
            holder.flow_run_id if holder else None,
        )
        log.info("%s", line)

    return say


def _lock_holder(store: Store, target: str, deploy: DeployTarget) -> str:
    holder = records.running(store, target)
    return lock_timeout_message(
        target,
        lock_name(target),
        deploy.lock_timeout,
        holder.kind if holder else None,
        holder.release if holder else None,
        holder.started_at if holder else None,
        holder.flow_run_id if holder else None,
    )


def _plan(deploy: DeployTarget, request: RollbackRequest) -> RollbackPlan | None:
    return plan_rollback(deploy.rollback, request) if deploy.rollback else None


def _refusal(
    target: str, plan: RollbackPlan | None, history: list[Any], release: str
) -> str | None:
    """Why a failure of this release would not be rolled back automatically, if so."""
    if plan is None:
        return f"no rollback is configured for this target (add deploys.{target}.rollback)"
    return records.rollback_refusal(history, release) or plan.problem


def _warn_if_not_live(target: str, release: str, plan: RollbackPlan | None) -> None:
    live = plan.from_release if plan else None
    if live and live != release:
        get_run_logger().warning(
            "%s runs %s by its rollback strategy, not %s: was %s really deployed?",
            target,
            live,
            release,
            release,
        )


@contextmanager
def _alerting_on_error(config: Config, run: DeployRun) -> Iterator[None]:
    """A run that stops half-way may leave a target half rolled back: say so, loudly. A
    SIGTERM (Prefect's engine turns it into TerminationSignal), a cancellation or Ctrl-C is
    an interruption; any other exception is vigil stopping with an error."""
    try:
        yield
    except BaseException as exc:
        why = stopped_by(exc)
        if why is None and isinstance(exc, Exception):
            notify(config, stopped_alert(run.subject, exc, flow_run_link()))
        else:
            notify(config, interrupted_alert(run, why or type(exc).__name__, flow_run_link()))
        raise


def stopped_by(exc: BaseException) -> str | None:
    """What stopped the run from outside, if something did: SIGTERM, SIGINT, cancelled."""
    from prefect.exceptions import TerminationSignal

    if isinstance(exc, TerminationSignal):
        return signal.Signals(exc.signal).name
    if isinstance(exc, KeyboardInterrupt):
        return "SIGINT"
    if isinstance(exc, asyncio.CancelledError | SystemExit):
        return "cancelled" if isinstance(exc, asyncio.CancelledError) else f"exit {exc.code}"
    return None


@contextmanager
def _recorded(
    store: Store,
    record_id: int,
    run: DeployRun,
    started: float,
    verdict: Callable[[], str],
    interrupted: Callable[[], str],
) -> Iterator[None]:
    """Finish the record with `verdict()` and the run's story; a run stopped half-way
    (signal, cancellation, crash) is recorded `interrupted()`, never as failed, so it
    neither takes a release out of the known-good ones nor leaves a row `running`."""
    try:
        yield
    except BaseException as exc:
        run.seconds = time.monotonic() - started
        why = stopped_by(exc) or repr(exc)
        detail = f"interrupted ({why}) during the {run.stage}\n{run.detail()}"
        records.finish_record(store, record_id, interrupted(), detail)
        raise
    run.seconds = time.monotonic() - started
    records.finish_record(store, record_id, verdict(), run.detail())
