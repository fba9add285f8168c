"""How vigil's flows meet Prefect: which API they talk to, and how a run tells its story.

Without an API URL every Prefect process starts a throw-away server (~10 s, noisy on exit),
which is no way to run a command people type. So a command uses, in order: the configured
`PREFECT_API_URL`; a local server already answering on 127.0.0.1:4200; else it starts one
in the background (SQLite under PREFECT_HOME, UI included, bound to 127.0.0.1) and leaves it
running, so the next command is fast and every run stays visible in the dashboard. Behind
Prefect's basic auth (`PREFECT_SERVER_API_AUTH_STRING` on the server) vigil sends
`PREFECT_API_AUTH_STRING` like Prefect's own client, and says so in one line when it is
missing or wrong.

Run states follow one rule across duties: a duty that found nothing wrong ends Completed;
one that found a problem ends FAILED-typed with a name saying what (`Outage`,
`BackupFailed`, `RolledBack`, ...), so the runs list shows red at a glance; DEGRADED-only
findings end Completed named `Degraded`. A crash is Prefect's own Crashed/Failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx

from vigil import logs
from vigil.boundary import state_message
from vigil.boundary import summary as boundary_summary
from vigil.findings import DutyFinding

T = TypeVar("T")

# Every flow imports this module, also in the process Prefect's engine starts for a served or
# worker run (which loads the flow's file by path, not as part of a package): the log
# boundary is in place there before the run logs anything.
logs.install()

LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 4200
LOCAL_API = f"http://{LOCAL_HOST}:{LOCAL_PORT}/api"


def configured_api_url() -> str | None:
    """The API URL Prefect would use now (env, profile or a test harness's settings)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def auth_headers() -> dict[str, str]:
    """The credentials Prefect's own client would send: basic auth from
    `PREFECT_API_AUTH_STRING` (a server behind `PREFECT_SERVER_API_AUTH_STRING`), else a
    Prefect Cloud API key. vigil's own probes must send them too, or a protected server
    looks down (or open) to vigil while Prefect's client gets in."""
    import base64

    from prefect.settings import PREFECT_API_KEY

    auth = client_auth_string()
    if auth:
        return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    key = PREFECT_API_KEY.value()
    if key:
        return {"Authorization": f"Bearer {_reveal(key)}"}
    return {}


def client_auth_string() -> str | None:
    """`PREFECT_API_AUTH_STRING` as Prefect resolves it (environment or profile)."""
    from prefect.settings import PREFECT_API_AUTH_STRING

    auth = PREFECT_API_AUTH_STRING.value()
    return _reveal(auth) if auth else None


def _reveal(secret: Any) -> str:
    """Prefect keeps credentials in pydantic SecretStr; headers need the plain value."""
    return str(secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret)


def api_is_healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        response = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout, headers=auth_headers())
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def check_api_access(url: str, timeout: float = 5.0) -> None:
    """Fail early, in one line, when the API is unreachable or refuses vigil's credentials.

    `/health` answers anyone even behind basic auth, so it proves nothing about access;
    reading one flow needs the credentials any client has (a self-hosted server's auth
    string or a Cloud key). Without this check a wrong or missing `PREFECT_API_AUTH_STRING`
    surfaces as a 401 traceback from deep inside a flow run."""
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/flows/filter",
            json={"limit": 1},
            timeout=timeout,
            headers=auth_headers(),
        )
    except httpx.HTTPError as exc:
        raise RuntimeError(
            f"no Prefect server answers at {url} ({type(exc).__name__}); start it, or point "
            "PREFECT_API_URL at one"
        ) from None
    if response.status_code in (401, 403):
        raise RuntimeError(
            f"the Prefect API at {url} refused vigil (HTTP {response.status_code}): "
            + _access_hint()
        )


def _access_hint() -> str:
    """What to do about a refused request, given which credentials were sent."""
    from prefect.settings import PREFECT_API_KEY

    if client_auth_string():
        return "PREFECT_API_AUTH_STRING does not match the server's PREFECT_SERVER_API_AUTH_STRING"
    if PREFECT_API_KEY.value():
        return "PREFECT_API_KEY was refused; check the key and the workspace URL"
    return "set PREFECT_API_AUTH_STRING to the user:password of the server's auth string"


def ensure_prefect_api(
    start: bool = True,
    wait: float = 90.0,
    *,
    server_stays: bool = True,
    run_retention: timedelta | None = None,
) -> str:
    """Point this process at a Prefect API, starting a local server if none is reachable
    (keeping finished flow runs for `run_retention`), and make sure it lets vigil in."""
    url = configured_api_url()
    if url:
        check_api_access(url)
        return url
    if not api_is_healthy(LOCAL_API):
        if not start:
            raise RuntimeError(f"no Prefect server answers at {LOCAL_API}")
        start_local_server(wait, stays=server_stays, run_retention=run_retention)
    check_api_access(LOCAL_API)
    use_api(LOCAL_API)
    return LOCAL_API


_api_context: list[Any] = []


def use_api(url: str) -> None:
    """Point this process's Prefect settings at `url` from now on.

    Prefect reads its settings once at import, so changing the environment afterwards does
    nothing; entering a settings context (kept open for the life of the process) does.
    Child processes get the environment variable."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ["PREFECT_API_URL"] = url
    context = temporary_settings(updates={PREFECT_API_URL: url})
    context.__enter__()
    _api_context.append(context)


def start_local_server(
    wait: float = 90.0, *, stays: bool = True, run_retention: timedelta | None = None
) -> None:
    """`prefect server start --background` bound to loopback, then wait until it answers.
    A server that `stays` outlives the command (the note says how to stop it). It vacuums
    finished flow runs after `run_retention` (default: the default config's), so its
    database stays bounded (vigil.prefect_db)."""
    from vigil.config import RecordsRetention
    from vigil.prefect_db import server_env

    after = "; it keeps running after this command: `prefect server stop` stops it" if stays else ""
    print(
        f"vigil: starting a local Prefect server (UI on http://{LOCAL_HOST}:{LOCAL_PORT}{after})",
        file=sys.stderr,
    )
    keep = run_retention or RecordsRetention().prefect_runs_horizon
    env = server_env({**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}, keep)
    env.pop("PREFECT_API_URL", None)
    # A client that holds credentials gets a server that asks for them: the dashboard is
    # then not open to anyone who can reach the port (the server's own string wins).
    client_auth = client_auth_string()
    if client_auth:
        env.setdefault("PREFECT_SERVER_API_AUTH_STRING", client_auth)
    clear_stale_server_pid(prefect_home(env))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--background",
            "--host",
            LOCAL_HOST,
            "--port",
            str(LOCAL_PORT),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        timeout=wait,
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if api_is_healthy(LOCAL_API):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the local Prefect server did not answer at {LOCAL_API} within {wait:.0f}s")


def prefect_home(env: dict[str, str]) -> Path:
    """The PREFECT_HOME a server started with `env` uses (Prefect's default otherwise)."""
    if env.get("PREFECT_HOME"):
        return Path(env["PREFECT_HOME"]).expanduser()
    from prefect.settings import get_current_settings

    return Path(get_current_settings().home).expanduser()


def clear_stale_server_pid(home: Path) -> bool:
    """Remove `server.pid` when no Prefect server runs under that pid (a reboot, a killed
    server): `prefect server start --background` refuses to start while the file exists,
    and vigil would wait for a server that never comes. True if it was removed."""
    pid_file = home / "server.pid"
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return False
    if text.isdigit() and _is_prefect_process(int(text)):
        return False
    pid_file.unlink(missing_ok=True)
    return True


def _is_prefect_process(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: leave it be
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc here: alive is all we know
    return b"prefect" in command or b"uvicorn" in command


def flow_run_link() -> str | None:
    """The dashboard URL of the current flow run, for alerts and reports."""
    try:
        from prefect.runtime import flow_run

        return flow_run.ui_url or None
    except Exception:
        return None


def flow_run_url(flow_run_id: str) -> str | None:
    """The dashboard URL of a flow run, from outside it: `PREFECT_UI_URL` as Prefect
    resolves it (set, else derived from the API URL), the same link `vigil status` shows."""
    from prefect.settings import PREFECT_UI_URL

    from vigil.status import run_link

    return run_link(PREFECT_UI_URL.value(), flow_run_id)


def flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return flow_run.id or None


def outcome(
    problem: str | None, summary: dict[str, Any], message: str, *, degraded: bool = False
) -> Any:
    """The final state of a duty's run: Completed, Completed named Degraded, or a FAILED
    state named for the problem. The verdict is also the run's last log line (ERROR for a
    problem, WARNING when degraded), so the run's logs end with what it found."""
    from prefect.states import Completed, Failed

    message, summary = state_message(message), boundary_summary(summary)
    _log_verdict(problem, message, degraded)
    if problem:
        return Failed(name=problem, message=message, data=DutyFinding(problem, message, summary))
    if degraded:
        return Completed(name="Degraded", message=message, data=summary)
    return Completed(message=message, data=summary)


def _log_verdict(problem: str | None, message: str, degraded: bool) -> None:
    from vigil.logs import story

    logger = story()
    if problem:
        logger.error("%s: %s", problem, message)
    elif degraded:
        logger.warning("Degraded: %s", message)
    else:
        logger.info("Completed: %s", message)


def summary_of(state: Any) -> Any:
    """What a duty's run returned (its summary), whether it ended Completed or FAILED; an
    exception when it crashed."""
    value = state.result(raise_on_failure=False)
    return value.summary if isinstance(value, DutyFinding) else value


def as_is(value: T) -> T:
    """Hand a large input to a task without Prefect walking it for futures.

    Prefect visits every element of every task argument (to resolve futures and record
    inputs); for a 10,000-monitor sweep that cost seconds. Prefect unwraps `quote` before
    calling the task, so the task sees the value itself."""
    from prefect.utilities.annotations import quote

    return cast(T, quote(value))
