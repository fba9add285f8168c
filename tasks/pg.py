"""The PostgreSQL client tools as vigil runs them, shared by dump and restore: finding a
tool and its version, connection arguments that keep the password off the command line,
and running a tool in a process group of its own that is killed whatever happens.

Passwords never reach a command line (where `ps` shows them): they go to the child in
PGPASSWORD, and the connection string on the command line has none. Every tool runs in its
own process group (pg_restore --jobs forks workers), so stopping it (a time limit, an
error, a SIGTERM arriving as an exception) stops all of it, and nothing keeps writing into
a database that is about to be dropped.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from typing import IO, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from vigil.backup.identity import BackupError, describe_url
from vigil.redact import error_line, redact

CONNECT_TIMEOUT_S = 10
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
# Relations of these schemas are PostgreSQL's own; pg_dump leaves them out too. The one
# filter every query of a user's database uses (the namespace aliased `n`).
USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"
# Members of an extension are created by CREATE EXTENSION on restore, not by the dump.
NOT_EXTENSION_MEMBER = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "AND d.objid = c.oid AND d.deptype = 'e')"
)
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.\d+)?")


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} not found on PATH; install the PostgreSQL client tools (at least the "
            f"server's major version, e.g. `apt install postgresql-client-15`)"
        )
    return path


def tool_version(path: str) -> tuple[int, str]:
    """(major, full text) of `<tool> --version`, e.g. (15, '15.20')."""
    try:
        text = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackupError(f"cannot run {path} --version: {exc}") from None
    match = _VERSION.search(text)
    if match is None:
        raise BackupError(f"cannot read the version of {path} from {text.strip()!r}")
    return int(match[1]), match[0].split()[-1]


def connection_args(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment carrying it.

    Unless the URL says otherwise, connecting gives up after CONNECT_TIMEOUT_S and TCP
    keepalives notice a dead peer in about a minute, so a dropped network fails (and is
    retried) instead of hanging until the kernel gives up hours later."""
    params = {**KEEPALIVES, "connect_timeout": CONNECT_TIMEOUT_S, **conninfo_to_dict(url)}
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def connect(url: str, *, what: str = "", timeout: float | None = None) -> psycopg.Connection[Any]:
    """An autocommit connection; with `timeout`, every statement stops at it (a hard time
    limit), in UTC. Failing to connect is a BackupError naming `what` and where."""
    options = "-c TimeZone=UTC"
    if timeout is not None:
        options += f" -c statement_timeout={max(1, int(timeout * 1000))}"
    try:
        return psycopg.connect(
            url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, options=options
        )
    except psycopg.Error as exc:
        where = f"{what} {describe_url(url)}" if what else describe_url(url)
        raise BackupError(f"cannot connect to {where}: {error_line(exc)}") from None


def tail(stream: IO[bytes], lines: int = 8) -> str:
    """The last lines a tool wrote to `stream`, on one line, redacted."""
    stream.seek(0)
    text = stream.read().decode("utf-8", errors="replace").strip()
    return redact(" | ".join(text.splitlines()[-lines:]) or "no message")


@contextlib.contextmanager
def running(args: list[str], **options: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A tool in a process group of its own, killed (the group) if the block leaves before
    it exits: on an error, and on a stop from outside that arrives as an exception."""
    process = subprocess.Popen(args, process_group=0, **options)
    try:
        yield process
    finally:
        if process.poll() is None:
            kill_group(process)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def run_to_end(args: list[str], *, timeout: float, **options: Any) -> int | None:
    """Run a tool to its end and return its exit code, or None when it was killed at
    `timeout` seconds (the caller says which limit that was)."""
    with running(args, **options) as process:
        try:
            return process.wait(timeout=max(timeout, 0.001))
        except subprocess.TimeoutExpired:
            kill_group(process)
            return None


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
