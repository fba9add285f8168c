"""One way for runs to take turns: a Prefect global concurrency limit of 1 per name.

Two backups of one database, or two verifications of one deploy target, must never run at
once, on one machine or across workers. Prefect's server enforces global concurrency
limits for every client, so the lock holds whoever runs the duty (served, on a worker, or
typed by hand). A run that cannot get the lock in time gives up with `Locked`, whose
message names the holder (the duty says who that is from its records) and what to do.

A hard-killed holder keeps the slot until Prefect's lease on it expires (up to 5 minutes).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from vigil.findings import Finding


class Locked(Finding):
    """Another run held the lock longer than this one waits; the message says who and why."""


# How often a run waiting for a lock says so: a pipeline step that prints nothing for
# minutes looks hung.
PROGRESS_EVERY = 5.0


@contextlib.contextmanager
def held(
    name: str,
    timeout: timedelta,
    refusal: Callable[[], str],
    waiting: Callable[[float], None] | None = None,
) -> Iterator[None]:
    """Hold the lock `name` for the block, waiting up to `timeout` for it.

    `refusal()` is called only when the wait ran out and returns the sentence to raise
    `Locked` with (naming the holder is the duty's job: it knows its own records).
    `waiting(seconds)` is called every PROGRESS_EVERY seconds while the run waits, with the
    seconds waited so far, so the duty can say whom it waits for."""
    from prefect.concurrency.sync import concurrency

    ensure_limit(name)
    with contextlib.ExitStack() as stack:
        try:
            with _reporting(waiting):
                lock = concurrency(
                    name, occupy=1, timeout_seconds=timeout.total_seconds(), strict=True
                )
                stack.enter_context(lock)
        except TimeoutError:
            raise Locked(refusal()) from None
        yield


@contextlib.contextmanager
def _reporting(waiting: Callable[[float], None] | None) -> Iterator[None]:
    """Call `waiting` every PROGRESS_EVERY seconds until the block ends, from a thread of
    its own: the wait stays one request to Prefect (a wait cut into slices would risk, at
    each cut, a slot granted just as the slice timed out, held by nobody until its lease
    expires). The callback's errors never break the wait."""
    if waiting is None:
        yield
        return
    began, stop = time.monotonic(), threading.Event()

    def tick() -> None:
        while not stop.wait(PROGRESS_EVERY):
            with contextlib.suppress(Exception):
                waiting(time.monotonic() - began)

    thread = threading.Thread(target=tick, name="vigil-lock-wait", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def ensure_limit(name: str) -> None:
    """`concurrency` only holds runs back when the limit exists: create it with limit 1 on
    first use, and put back one that was loosened or switched off by hand."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            existing = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            # A run starting at the same moment may create it first: that one is as good.
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )
            return
        if existing.limit != 1 or not existing.active:
            from prefect import get_run_logger

            get_run_logger().warning(
                "concurrency limit %r had limit %s (active: %s); setting it back to 1, active",
                name,
                existing.limit,
                existing.active,
            )
            client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=1, active=True)
            )
