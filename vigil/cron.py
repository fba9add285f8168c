"""Cron expressions, read one way everywhere in vigil: the duties' schedules (`backup`,
`restore_test`, `drill`, `report`), recurring maintenance windows, and the check that
refuses a bad expression in the config.

Day-of-month and day-of-week are AND-ed (`DAY_OR = False`), in the schedules Prefect runs
(deployments/serve.py and prefect.yaml give `day_or: false`) and in maintenance windows
alike, so `0 3 1-7 * 0` is the first Sunday of the month wherever it is written, not
cron's "days 1-7 or any Sunday". Expressions are evaluated in the timezone of the
datetime given, so a window at 03:00 Europe/Berlin stays at 03:00 across DST changes.
Random and hashed fields (`R`, `H`) are refused, as Prefect refuses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated

from croniter import croniter
from pydantic import AfterValidator

DAY_OR = False
EXAMPLE = "0 2 * * *"


def check_cron(value: str) -> str:
    """`value` if it is a cron expression vigil (and Prefect) will run; else ValueError."""
    if not croniter.is_valid(value) or any(f.casefold() in ("r", "h") for f in value.split()):
        raise ValueError(f"{value!r} is not a cron expression (e.g. {EXAMPLE!r})")
    return value


# A config field holding a cron expression: `schedule: Cron = "0 2 * * *"`.
Cron = Annotated[str, AfterValidator(check_cron)]


def last_fire(expression: str, at: datetime) -> datetime:
    """The latest fire at or before `at` (whole seconds), in `at`'s timezone."""
    # croniter's get_prev is strictly before its start: one second past `at` (truncated,
    # so a fire at `at`'s whole second counts but one a fraction later does not).
    after = at.replace(microsecond=0) + timedelta(seconds=1)
    fired: datetime = croniter(expression, after, day_or=DAY_OR).get_prev(datetime)
    return fired


def fires_after(expression: str, start: datetime) -> Iterator[datetime]:
    """Every fire strictly after `start`, in `start`'s timezone, endlessly."""
    fires = croniter(expression, start, day_or=DAY_OR)
    while True:
        fired: datetime = fires.get_next(datetime)
        yield fired
