"""A `server.pid` left by a server that is gone (a reboot, a kill) made `prefect server start
--background` refuse to start ("A server is already running"), and vigil waited 90 s for a
server that never came. vigil removes such a file first, and only such a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vigil.runtime import clear_stale_server_pid, prefect_home


def test_a_pid_file_of_a_process_that_is_gone_is_removed(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(str(gone.pid))
    assert clear_stale_server_pid(tmp_path)
    assert not pid_file.exists()


def test_a_pid_now_used_by_another_program_or_garbage_is_removed(tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    with subprocess.Popen(["sleep", "30"]) as other:
        pid_file.write_text(str(other.pid))
        assert clear_stale_server_pid(tmp_path)
        other.kill()
    pid_file.write_text("not a pid\n")
    assert clear_stale_server_pid(tmp_path) and not pid_file.exists()
    assert not clear_stale_server_pid(tmp_path), "no file, nothing to remove"


def test_a_running_server_keeps_its_pid_file(tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    code = "import time; print('up', flush=True); time.sleep(30)"
    command = [sys.executable, "-c", code, "prefect", "server", "start"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        assert server.stdout is not None and server.stdout.readline() == "up\n"  # exec'd
        pid_file.write_text(f"{server.pid}\n")
        assert not clear_stale_server_pid(tmp_path)
        assert pid_file.exists()
        server.kill()


def test_the_home_is_the_servers_own(tmp_path: Path) -> None:
    assert prefect_home({"PREFECT_HOME": str(tmp_path)}) == tmp_path
    assert prefect_home({}).name  # Prefect's default, wherever it is
