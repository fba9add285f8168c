"""The rollback strategies on real files and real commands: which release each picks, that
the symlink switch is atomic, what a command strategy is told, and that commands which hang
or start daemons neither hang vigil nor lose their output."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tasks.rollback import execute_rollback, plan_rollback
from tasks.shell import run_command
from vigil.config import CommandRollback, SymlinkRollback
from vigil.deploy.rollback import RollbackRequest


def releases(root: Path, *names: str, current: str) -> SymlinkRollback:
    for name in names:
        (root / "releases" / name).mkdir(parents=True)
    (root / "current").symlink_to(root / "releases" / current)
    return SymlinkRollback(
        type="symlink", releases_dir=str(root / "releases"), current=str(root / "current")
    )


def test_symlink_prefers_the_newest_known_good_release(tmp_path: Path) -> None:
    config = releases(tmp_path, "r1", "r2", "r3", "r4", current="r4")
    plan = plan_rollback(config, RollbackRequest("web", "r4", known_good=("r4", "r2", "r1")))
    assert (plan.from_release, plan.to_release, plan.problem) == ("r4", "r2", None)


def test_symlink_falls_back_to_the_release_before_current_by_name(tmp_path: Path) -> None:
    config = releases(tmp_path, "20240501", "20240502", "20240503", current="20240503")
    plan = plan_rollback(
        config, RollbackRequest("web", "20240503", known_good=("gone", "20240503"))
    )
    assert plan.to_release == "20240502"


def test_symlink_says_why_it_cannot_roll_back(tmp_path: Path) -> None:
    config = releases(tmp_path, "r1", current="r1")
    plan = plan_rollback(config, RollbackRequest("web", "r1"))
    assert plan.problem == (
        "no release before 'r1' in releases_dir that was not rolled back (have: r1)"
    )
    missing = plan_rollback(config, RollbackRequest("web", "r1", to="r0"))
    assert missing.problem == "no release directory 'r0' (have: r1)"
    (tmp_path / "current").unlink()
    (tmp_path / "current").mkdir()
    assert "is not a symlink into releases_dir" in str(
        plan_rollback(config, RollbackRequest("w", None)).problem
    )


def test_symlink_switch_is_atomic_for_readers(tmp_path: Path) -> None:
    config = releases(tmp_path, "r1", "r2", current="r2")
    link = tmp_path / "current"
    missing: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                os.readlink(link)
            except FileNotFoundError as exc:
                missing.append(str(exc))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for to in ("r1", "r2") * 50:
            plan = plan_rollback(config, RollbackRequest("web", None, to=to))
            assert execute_rollback(config, plan).ok
    finally:
        done.set()
        reader.join()
    assert missing == []
    assert link.resolve() == (tmp_path / "releases" / "r2").resolve()
    assert not list(tmp_path.glob(".current.vigil-*"))


def test_command_strategy_is_told_what_to_roll_back(tmp_path: Path) -> None:
    seen = tmp_path / "env.txt"
    config = CommandRollback(
        type="command",
        command=f'echo "$VIGIL_TARGET $VIGIL_RELEASE $VIGIL_PREVIOUS_RELEASE" > {seen}',
    )
    plan = plan_rollback(config, RollbackRequest("web", "r3", known_good=("r3", "r2")))
    result = execute_rollback(config, plan)
    assert result.ok and seen.read_text() == "web r3 r2\n"
    unknown = plan_rollback(config, RollbackRequest("web", "r3"))
    assert "VIGIL_PREVIOUS_RELEASE=(empty)" in unknown.actions[0]


def test_a_hanging_command_is_killed_at_its_timeout_with_its_output_kept() -> None:
    started = time.monotonic()
    step = run_command("echo getting there; sleep 30", timeout=0.5)
    assert time.monotonic() - started < 5
    assert (step.ok, step.exit_code, step.error) == (False, None, "timed out after 500ms")
    assert step.output == "getting there\n"


def test_a_restart_that_leaves_a_daemon_running_does_not_hang(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    started = time.monotonic()
    step = run_command(f"sleep 30 & echo $! > {pidfile}; echo restarted", timeout=10)
    try:
        assert step.ok and step.output == "restarted\n"
        assert time.monotonic() - started < 5
    finally:
        os.kill(int(pidfile.read_text()), 9)


def test_output_is_redacted() -> None:
    step = run_command("echo postgresql://app:hunter22@db/app; exit 4", timeout=5)
    assert (step.ok, step.error) == (False, "exited 4")
    assert "hunter22" not in step.output and "app:***@db" in step.output


def test_commands_are_asked_for_no_colour_and_escapes_never_reach_the_output() -> None:
    step = run_command(r'printf "\033[31merrored\033[0m NO_COLOR=$NO_COLOR\n"', timeout=5)
    assert step.output == "errored NO_COLOR=1\n"
