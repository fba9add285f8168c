"""pg_restore as every recovery runs it: in its own process group, at most `timeout`
seconds, stopping at the first error so a partial restore cannot pass; killed (the whole
group, its --jobs workers too) at the limit and on any exception, which is how a SIGTERM
reaches it in a Prefect run or under `vigil restore`.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from tasks.pg import connection_args, find_tool, run_to_end
from tasks.recovery.fetch import RecoveryError
from vigil.backup.identity import describe_url
from vigil.durations import format_duration
from vigil.redact import redact

# How PostgreSQL reports a full disk in the error pg_restore passes on: ENOSPC's strerror,
# or a short write when extending a file, which comes with this hint.
DISK_FULL = ("No space left on device", "Check free disk space")


def restore(
    archive: Path,
    target_url: str,
    *,
    jobs: int,
    timeout: float,
    limit: str = "the hard time limit",
    clean: bool = False,
    owners: bool = False,
    subscriptions: bool = False,
    server: str = "target server",
) -> float:
    """pg_restore --jobs into the target; returns its seconds.

    Without `owners`, ownership and grants are skipped: a scratch server need not have
    production's roles, and a missing role says nothing about whether the backup is
    complete. `clean` drops the archive's objects in the target first; `server` names the
    target's server in messages (the scratch server, the rehearsal server).

    Without `subscriptions`, the archive's logical-replication subscriptions are left out:
    a copy made to be checked and dropped must never subscribe to production's publisher,
    and a database holding a subscription cannot simply be dropped. Only the real recovery
    (`vigil restore`) brings them back, as pg_dump wrote them: disabled, not connected."""
    args = [find_tool("pg_restore"), "--exit-on-error", f"--jobs={jobs}", "--no-password"]
    args += ["--clean", "--if-exists"] if clean else []
    args += [] if owners else ["--no-owner", "--no-privileges"]
    args += [] if subscriptions else ["--no-subscriptions"]
    dsn, env = connection_args(target_url)
    started = time.monotonic()
    with tempfile.TemporaryFile() as errors:
        code = run_to_end(
            [*args, f"--dbname={dsn}", str(archive)],
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=env,
        )
        if code is None:
            raise RecoveryError(
                f"pg_restore exceeded {limit} ({format_duration(timeout)} left) and was stopped"
            )
        if code != 0:
            errors.seek(0)
            text = errors.read().decode(errors="replace")
            raise RecoveryError(
                f"pg_restore into {describe_url(target_url)} failed (exit {code}): "
                f"{restore_problem(text, server)}"
            )
    return time.monotonic() - started


def restore_problem(stderr: str, server: str = "target server") -> str:
    """pg_restore's first error with the lines after it (the server's message, its context,
    the failed command): with --exit-on-error what follows is only its consequences. Led by
    the cause when it is one a person acts on elsewhere than in the backup."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    first = next((i for i, line in enumerate(lines) if "error:" in line), max(0, len(lines) - 6))
    message = redact(" | ".join(lines[first : first + 6])) or "no message"
    if any(sign in stderr for sign in DISK_FULL):
        return f"the {server} ran out of disk space: {message}"
    if "does not exist" in stderr and "role" in stderr:
        return f"{message} (roles are missing on this server: create them, or use --no-owner)"
    return message
