"""Deploy verification with automatic rollback, and the manual rollback, as Prefect flows.

`deploy-verify` reads like the runbook it replaces: take the target's lock, watch the new
release for its window, and if it fails roll back, watch the restored release for a window
of its own, then tell people. `deploy-rollback` is the same second half, by hand. The
verdict rules live in `vigil.deploy`, the strategies in `vigil.rollback`, the outside
world in `tasks.deploy`.

Only one verification or rollback per target runs at a time: each takes the Prefect global
concurrency limit `deploy-<target>` (created with limit 1 on first use), waiting up to the
target's `lock_timeout`; a run that waits longer ends `LockTimeout` without touching
anything.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.deploy import http_checks, measure, roll_back
from tasks.notify import notify
from vigil.alert import Alert
from vigil.config import Config, DeployTarget, Rollback, load_config
from vigil.deploy import (
    Limits,
    Story,
    Watch,
    finish_record,
    history,
    is_last,
    known_good,
    live_release,
    next_start,
    record_measurement,
    rollback_refusal,
    running,
    start_record,
)
from vigil.durations import format_duration
from vigil.locks import Locked, held
from vigil.rollback import Plan, Request, plan_rollback
from vigil.runtime import flow_run_id, flow_run_link, outcome
from vigil.store import DeployVerification, Store, open_store

# Characters Prefect refuses in a concurrency limit's name.
LOCK_NAME_BANNED = "/%&><"


@flow(name="deploy-verify", flow_run_name="verify {target}@{release}", log_prints=False)
def deploy_verify(
    target: str, release: str, dry_run: bool = False, config_path: str | None = None
) -> Any:
    """Verify `release` of `target`; on failure roll back (unless `dry_run`) and re-verify."""
    config = load_config(config_path)
    deploy = deploy_target(config, target)
    with open_store(config.store.url) as store, _alerting_on_error(config, f"{target}@{release}"):
        try:
            with target_lock(store, target, deploy):
                story = verify_release(store, target, deploy, release, dry_run)
        except Locked as exc:
            return _locked(target, release, str(exc))
    return conclude(config, story)


def _rollback_run_name() -> str:
    from prefect.runtime import flow_run

    parameters = flow_run.parameters
    to = parameters.get("to")
    return f"rollback {parameters['target']}" + (f" to {to}" if to else "")


@flow(name="deploy-rollback", flow_run_name=_rollback_run_name, log_prints=False)
def deploy_rollback(target: str, to: str | None = None, config_path: str | None = None) -> Any:
    """Roll `target` back by hand (to `to`, else the newest known-good release) and verify
    the restored release, with the same strategy, checks and records as the automatic path."""
    config = load_config(config_path)
    deploy = deploy_target(config, target)
    if deploy.rollback is None:
        message = f"no rollback is configured for {target} (add deploys.{target}.rollback)"
        return outcome("CannotRollBack", {"target": target, "verdict": "not_started"}, message)
    with open_store(config.store.url) as store, _alerting_on_error(config, target):
        try:
            with target_lock(store, target, deploy):
                story = rollback_by_hand(store, target, deploy, deploy.rollback, to)
        except Locked as exc:
            return _locked(target, None, str(exc))
    assert story.plan is not None  # rollback_by_hand always plans
    if story.plan.problem:
        message = story.plan.describe()
        return outcome("CannotRollBack", {"target": target, "verdict": "not_started"}, message)
    return conclude(config, story)


# --- the two halves ---------------------------------------------------------------------------


def verify_release(
    store: Store, target: str, deploy: DeployTarget, release: str, dry_run: bool
) -> Story:
    """Watch the release; if it fails and may be rolled back, roll back and watch again."""
    records = history(store, target)
    story = Story(target, release, "deploy", deploy.severity, dry_run=dry_run)
    story.plan = _plan(
        deploy, Request(target, release, None, tuple(known_good(records, [release])))
    )
    story.refusal = _refusal(target, story.plan, records, release)
    live = story.plan.from_release if story.plan else None
    if live and live != release:
        get_run_logger().warning(
            "%s runs %s by its rollback strategy, not %s: was %s really deployed?",
            target,
            live,
            release,
            release,
        )
    started = time.monotonic()
    previous = story.plan.to_release if story.plan else None
    record_id = start_record(
        store,
        target=target,
        release=release,
        kind="deploy",
        previous_release=previous,
        flow_run_id=flow_run_id(),
    )
    with _recorded(store, record_id, story, started, story.verdict):
        story.watch = watch(store, record_id, target, deploy, release, "release")
        if story.should_roll_back and story.plan is not None and deploy.rollback is not None:
            restore(store, target, deploy, deploy.rollback, story.plan, story, release)
    return story


def rollback_by_hand(
    store: Store, target: str, deploy: DeployTarget, rollback: Rollback, to: str | None
) -> Story:
    """The manual path: away from what the records say runs now, to `to` or the newest
    known-good release, then the same restore and verification as the automatic path."""
    records = history(store, target)
    current = live_release(records)
    good = tuple(known_good(records, [current]))
    plan = plan_rollback(rollback, Request(target, current, to, good))
    story = Story(target, plan.from_release, "rollback", deploy.severity, plan=plan)
    if not plan.problem:
        restore(store, target, deploy, rollback, plan, story, plan.from_release)
    return story


def restore(
    store: Store,
    target: str,
    deploy: DeployTarget,
    rollback: Rollback,
    plan: Plan,
    story: Story,
    away_from: str | None,
) -> None:
    """Run the rollback plan, then verify the restored release with the same checks."""
    started = time.monotonic()
    record_id = start_record(
        store,
        target=target,
        release=plan.to_release,
        kind="rollback",
        previous_release=away_from,
        flow_run_id=flow_run_id(),
    )
    with _recorded(store, record_id, story, started, story.rollback_verdict):
        story.rollback = roll_back(rollback, plan)
        if story.rollback.ok:
            story.rollback_watch = watch(
                store, record_id, target, deploy, plan.to_release, "rollback"
            )


def watch(
    store: Store,
    record_id: int,
    target: str,
    deploy: DeployTarget,
    release: str | None,
    phase: str,
) -> Watch:
    """Measure on the schedule of `vigil.deploy` until the verdict is no longer running."""
    log = get_run_logger()
    seen = Watch(phase, release, Limits.of(deploy))
    start = due = time.monotonic()
    number = 0
    while True:
        time.sleep(max(due - time.monotonic(), 0.0))
        began = time.monotonic()
        number += 1
        measurement = measure(target, release, number, deploy)
        record_measurement(store, record_id, measurement)
        verdict = seen.add(measurement, last=is_last(start, deploy.window, began))
        failing = "".join(f"; {line}" for line in measurement.failing())
        log.info("%s #%d %s%s", release, number, measurement.verdict, failing)
        if verdict.status != "running":
            log.info("%s %s: %s", release, verdict.status, verdict.reason)
            return seen
        due = next_start(began, time.monotonic(), deploy.interval)


def conclude(config: Config, story: Story) -> Any:
    """Publish the artifacts, send the final notification, and end in the story's state."""
    slug = artifact_slug(story.target)
    rows = story.table()
    if rows:
        create_table_artifact(
            key=f"deploy-verify-{slug}",
            table=rows,
            description=f"{story.headline()} ({len(rows)} measurements)",
        )
    create_markdown_artifact(
        key=f"deploy-report-{slug}", markdown=story.markdown(), description=story.headline()
    )
    notify(config, story.alert(flow_run_link()))
    return outcome(story.state_name(), story.summary(), story.message())


# --- helpers ------------------------------------------------------------------------------------


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


def artifact_slug(target: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", target.lower()).strip("-") or "target"


def lock_name(target: str) -> str:
    return f"deploy-{target}"


def target_lock(store: Store, target: str, deploy: DeployTarget) -> AbstractContextManager[None]:
    """Hold the target's lock; raise Locked, naming the holder, after lock_timeout."""
    refusal = partial(_locked_message, store, target, deploy)
    return held(lock_name(target), deploy.lock_timeout, refusal)


def _locked_message(store: Store, target: str, deploy: DeployTarget) -> str:
    holder = running(store, target)
    if holder is None:
        who = (
            "vigil's records show no verification running, so a run may have died holding "
            "it; its lease expires within 5 minutes"
        )
    else:
        since = holder.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        who = (
            f"the {holder.kind} verification of {holder.release} has held it since {since} "
            f"(flow run {holder.flow_run_id or 'unknown'})"
        )
    return (
        f"{target}: waited lock_timeout ({format_duration(deploy.lock_timeout)}) for the "
        f"lock {lock_name(target)!r} and gave up; {who}. Nothing was verified or rolled back. "
        f"Run again once it is done, or raise deploys.{target}.lock_timeout."
    )


def _locked(target: str, release: str | None, message: str) -> Any:
    summary = {"target": target, "release": release, "verdict": "locked", "message": message}
    return outcome("LockTimeout", summary, message)


def _plan(deploy: DeployTarget, request: Request) -> Plan | None:
    return plan_rollback(deploy.rollback, request) if deploy.rollback else None


def _refusal(
    target: str, plan: Plan | None, records: list[DeployVerification], release: str
) -> str | None:
    """Why a failure of this release would not be rolled back automatically, if so."""
    if plan is None:
        return f"no rollback is configured for this target (add deploys.{target}.rollback)"
    return rollback_refusal(records, release) or plan.problem


@contextmanager
def _alerting_on_error(config: Config, subject: str) -> Iterator[None]:
    """A run that stops half-way may leave a target half rolled back: say so, loudly."""
    try:
        yield
    except Exception as exc:
        alert = Alert(
            title=f"{subject}: deploy verification stopped with an error",
            severity="critical",
            duty="deploy-verify",
            subject=subject.split("@", 1)[0],
            summary=f"vigil could not finish: {exc!r}. Check the target by hand: it may be "
            "running either release, or be half rolled back.",
            flow_run_url=flow_run_link(),
        )
        notify(config, alert)
        raise


@contextmanager
def _recorded(
    store: Store, record_id: int, story: Story, started: float, verdict: Callable[[], str]
) -> Iterator[None]:
    """Finish the record with `verdict()` and the story, or as failed if the run stopped
    half-way (so no record is left `running` forever)."""
    try:
        yield
    except BaseException as exc:
        finish_record(store, record_id, "failed", f"verification did not finish: {exc!r}")
        raise
    story.seconds = time.monotonic() - started
    finish_record(store, record_id, verdict(), story.detail())
