"""Daily housekeeping: keep vigil's records store bounded. Runbook: plan what the config's
`retention:` lets go, delete it in batches (a sweep running meanwhile is never held up for
more than one batch), give the space back (SQLite incremental vacuum, PostgreSQL VACUUM),
and publish what went, table by table (`records-housekeeping` artifact).

The plan and the deletes are core (vigil.retention, vigil.store.prune), the same as
`vigil records prune`. A store that cannot be reached or refuses the deletes ends the run
FAILED-typed `PruneFailed` with the one-line reason: nothing was lost, the next run
catches up.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.exc import SQLAlchemyError

from vigil import boundary, clock
from vigil.config import Config, load_config
from vigil.duties import this_run_name
from vigil.redact import error_line
from vigil.retention import plan
from vigil.runtime import outcome
from vigil.store import open_store
from vigil.store.prune import PruneOutcome, prune
from vigil.store.report import prune_lines, prune_table

ARTIFACT_KEY = "records-housekeeping"


@task(name="prune the records", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def prune_records(config: Config) -> PruneOutcome:
    log = get_run_logger()
    cuts = plan(config.retention, clock.now(), tuple(m.name for m in config.monitors))
    with open_store(config.store.url) as store:
        done = prune(store, cuts, batch_size=config.retention.batch_size)
    for line in prune_lines(done):
        log.info("%s", line)
    return done


@flow(name="daily-housekeeping", flow_run_name=this_run_name, log_prints=False)
def daily_housekeeping(config_path: str | None = None) -> Any:
    """Prune vigil's records to the config's retention and give the space back."""
    config = load_config(config_path)
    try:
        done = prune_records(config)
    except SQLAlchemyError as exc:
        message = f"the records store refused the prune: {error_line(exc)}"
        return outcome("PruneFailed", {"headline": message}, message)
    boundary.publish_table(
        ARTIFACT_KEY, prune_table(done), f"{done.deleted:,} record(s) past retention deleted"
    )
    message = f"deleted {done.deleted:,} record(s) past retention; {done.vacuum}"
    summary = {
        "headline": message,
        "deleted": done.deleted,
        "size_before": done.size_before,
        "size_after": done.size_after,
        "tables": {t.table: t.deleted for t in done.tables},
    }
    return outcome(None, summary, message)
