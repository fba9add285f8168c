"""What vigil and Prefect log, made fit to publish: no secret, no traceback for a finding.

Log records leave the process by several handlers (the terminal, Prefect's API handler that
ships them to the UI, a user's own), and Prefect creates and configures those handlers
itself, sometimes again after vigil starts. So the boundary sits where every record is
born, in the log record factory, whatever logger or handler it goes to:

- every record's message (and traceback text) is redacted (`vigil.redact`), and the
  message is inert (`vigil.boundary`: a target's escape sequences cannot reach a terminal);
- a record about a vigil `Finding` (a problem found in the world, e.g. a task that raised
  BackupError) keeps its one-line message and loses its traceback: a traceback must mean
  a bug in vigil;
- the record Prefect's engine writes when a served or worker run ends FAILED ("Engine
  execution exited with unexpected exception", raised from the final state's `result()`)
  is dropped when that state is a duty's verdict (`DutyFinding`): `outcome()` has already
  logged the verdict as the run's last line. The engine's record for any other exception
  is kept, traceback and all;
- the record Prefect's concurrency service writes when a wait for a lock times out
  ("Service 'ConcurrencySlotAcquisition...' failed to process item ... raised
  TimeoutError", at ERROR) is dropped: the caller gets the TimeoutError too, and
  `vigil.locks` turns it into the duty's one-line `Locked` finding. Any other failure of
  that service is kept.

`install()` runs once per process: from the CLI's entry point, and on import of
`vigil.runtime`, which every flow imports (also in the process Prefect's engine starts for a
served or worker run, where the flow's file is loaded by path).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from vigil.boundary import inert
from vigil.findings import DutyFinding, Finding
from vigil.redact import error_line, redact

# The loggers Prefect's engine reports an exception that ended a run on.
ENGINE_LOGGERS = ("prefect.flow_runs", "prefect.engine")
# The logger of Prefect's background services, among them the concurrency-slot acquisition.
SERVICES_LOGGER = "prefect._internal.concurrency"

_installed = False


def install() -> None:
    """Put the boundary in place for this process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        clean(record)
        return record

    logging.setLogRecordFactory(factory)
    # vigil's own lines outside a run (a command's work) are told at INFO, like a run's.
    if logging.getLogger("vigil").level == logging.NOTSET:
        logging.getLogger("vigil").setLevel(logging.INFO)
    for name in ENGINE_LOGGERS:
        logging.getLogger(name).addFilter(_drop_verdict_echo)
    logging.getLogger(SERVICES_LOGGER).addFilter(_drop_lock_timeout_echo)


def story() -> Any:
    """The logger for what a run's logs must say happened (a state change, an alert and to
    whom, a phase and its figures): the run's own logger inside a flow or task run, so the
    line is on the run's page in the UI; vigil's logger outside one (a command's own work).

    Call it on the thread that runs the flow or task: Prefect's run context does not follow
    work handed to a thread pool."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("vigil")


def clean(record: logging.LogRecord) -> None:
    """Redact the record in place; a finding's traceback becomes its first line."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, DutyFinding):
        record.vigil_verdict = True
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is the caller's bug; show it as it is
        message = str(record.msg)
    if isinstance(exc, Finding):
        if error_line(exc) not in redact(message):
            message = f"{message}: {error_line(exc)}"
        record.exc_info, record.exc_text = None, None
    elif record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
        record.exc_info = None
    record.msg, record.args = inert(message), None


def _drop_verdict_echo(record: logging.LogRecord) -> bool:
    return not getattr(record, "vigil_verdict", False)


def _drop_lock_timeout_echo(record: logging.LogRecord) -> bool:
    """False for the concurrency service's record of a lock wait that timed out (its
    message names the service and the item's future, "raised TimeoutError")."""
    message = record.getMessage()
    about_slots = "ConcurrencySlotAcquisition" in message and "failed to process" in message
    return not (about_slots and "raised TimeoutError" in message)
