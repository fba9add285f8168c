"""Shared fixtures: real services only (PostgreSQL, S3 over HTTP, webhook and SMTP receivers,
Prefect). Each fixture family lives in its own plugin module under tests/fixtures/."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Keep every test run's vigil and Prefect state out of the user's home.
_home = tempfile.mkdtemp(prefix="vigil-test-home-")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # A parallel worker (tests/parallel.py) inherited the controller's homes: one of its own.
    os.environ["VIGIL_HOME"] = _home
    os.environ["PREFECT_HOME"] = os.path.join(_home, "prefect")
os.environ.setdefault("VIGIL_HOME", _home)
os.environ.setdefault("PREFECT_HOME", os.path.join(_home, "prefect"))
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Removed when the test process exits, after Prefect's own exit handlers (registered later,
# so run earlier) have stopped writing there.
atexit.register(shutil.rmtree, _home, ignore_errors=True)

pytest_plugins = [
    "tests.parallel",
    "tests.fixtures.postgres",
    "tests.fixtures.receivers",
    "tests.fixtures.s3",
    "tests.fixtures.prefect",
    "tests.fixtures.prefect_server",
    "tests.fixtures.targets",
    "tests.fixtures.restore",
    "tests.fixtures.pm2",
]
