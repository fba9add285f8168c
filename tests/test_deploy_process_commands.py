"""The README's `command` process checks for systemd and Docker, run exactly as written.

On this machine systemd is not PID 1 and no Docker daemon runs, so the real tools can only
be seen failing: each README line must then be a Failed (or Error) check, never a pass. The
lines' own mechanics (the `test "$(...)"` wrappers, the quoting of docker's format string,
exit codes) are checked against stand-in `systemctl` and `docker` scripts put first on PATH,
which answer from a real process's state: the test app's pidfile, its /health answer, and
the PIDs seen so far (a new one is a restart). The real tools' wording for a stopped unit
(`is-active` exits 3) and a container (`docker inspect -f` prints the fields) is what the
stand-ins print; that they match the tools is what the README's table says, not what a test
here can show.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.deploy import check_process
from tests.deploy_helpers import LocalApp
from vigil.config import ProcessCheck

README = Path(__file__).resolve().parents[1] / "README.md"

STANDIN = textwrap.dedent(
    '''
    #!{python}
    """A stand-in for `systemctl` / `docker` answering from the test app's real state."""
    import os, sys, urllib.request
    from pathlib import Path

    PIDFILE, SEEN, URL = Path("{pidfile}"), Path("{seen}"), "{url}/health"
    tool, args = Path(sys.argv[0]).name, sys.argv[1:]

    def pid():
        try:
            number = int(PIDFILE.read_text())
            state = Path(f"/proc/{{number}}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        return None if state == "Z" else number

    def healthy():
        try:
            return urllib.request.urlopen(URL, timeout=2).status == 200
        except Exception:
            return False

    running = pid()
    if running is not None:
        seen = SEEN.read_text().split() if SEEN.exists() else []
        if str(running) not in seen:
            SEEN.write_text(" ".join([*seen, str(running)]))
    if tool == "systemctl" and args[:2] == ["is-active", "--quiet"]:
        sys.exit(0 if running else 3)  # LSB: 3 "program is not running"
    if tool == "systemctl" and args[:1] == ["show"] and "NRestarts" in args:
        print(max(len(SEEN.read_text().split()) - 1, 0) if SEEN.exists() else 0)
        sys.exit(0)
    if tool == "docker" and args[:1] == ["inspect"]:
        fields = args[args.index("-f") + 1]
        words = ["true" if running else "false"]
        if "Health.Status" in fields:
            words.append("healthy" if running and healthy() else "unhealthy")
        print(" ".join(words))
        sys.exit(0)
    sys.exit(f"{{tool}}: not a call the README makes: {{args}}")
    '''
).lstrip()


def readme_commands() -> dict[str, str]:
    """The README's process-check table: manager -> command, as written."""
    rows = re.findall(r"^\| (systemd[^|]*|Docker[^|]*) \| `(.+?)` \|", README.read_text(), re.M)
    return {manager.strip(): command for manager, command in rows}


COMMANDS = readme_commands()


def test_the_readme_has_the_four_lines() -> None:
    assert set(COMMANDS) == {
        "systemd",
        "systemd, restarts",
        "Docker with a HEALTHCHECK",
        "Docker without one",
    }


def systemd_runs() -> bool:
    return Path("/run/systemd/system").is_dir()


def docker_runs() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    return done.returncode == 0


def checked(command: str) -> tuple[str, str]:
    reading = check_process(ProcessCheck(command=command, timeout="10s"))
    return reading.verdict, reading.observed


@pytest.mark.parametrize("manager", sorted(COMMANDS))
def test_on_a_machine_without_the_service_manager_the_readme_line_never_passes(
    manager: str,
) -> None:
    if manager.startswith("systemd") and systemd_runs():
        pytest.skip("systemd runs here: no unit to stop for this test")
    if manager.startswith("Docker") and docker_runs():
        pytest.skip("a Docker daemon answers here: no container to stop for this test")

    verdict, observed = checked(COMMANDS[manager])

    assert verdict in ("Failed", "Error"), observed


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalApp]:
    local = LocalApp.create(tmp_path / "web")
    local.add_release("good", "good")
    local.add_release("bad", "bad")
    tools = tmp_path / "bin"
    tools.mkdir()
    script = STANDIN.format(
        python=sys.executable, pidfile=local.pidfile, seen=tmp_path / "pids", url=local.url
    )
    for name in ("systemctl", "docker"):
        (tools / name).write_text(script)
        (tools / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{Path(sys.executable).parent}:/usr/bin:/bin")
    yield local
    local.stop()


def test_the_readme_lines_see_the_service_up_down_restarted_and_unhealthy(
    app: LocalApp,
) -> None:
    active, restarts = COMMANDS["systemd"], COMMANDS["systemd, restarts"]
    healthy, running = COMMANDS["Docker with a HEALTHCHECK"], COMMANDS["Docker without one"]

    assert app.deploy("good").returncode == 0
    assert {line: checked(line)[0] for line in COMMANDS.values()} == dict.fromkeys(
        COMMANDS.values(), "Successful"
    )

    app.stop()
    assert checked(active) == ("Failed", "exit 3")
    assert checked(healthy)[0] == "Failed" and checked(running)[0] == "Failed"
    assert checked(restarts) == ("Failed", "exit 3")

    assert app.deploy("bad").returncode == 0  # a new PID: systemd would count a restart
    assert checked(active)[0] == "Successful", "running, if unhealthy"
    assert checked(running)[0] == "Successful"
    assert checked(healthy)[0] == "Failed", "the HEALTHCHECK line sees the 503"
    assert checked(restarts)[0] == "Failed"
