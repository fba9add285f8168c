"""`--help` reads as whole sentences: every command in the list has a one-line summary that
ends where its sentence ends, and every command's own help page renders."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from vigil.cli import app

runner = CliRunner()


def commands(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [(*prefix, c.name or "") for c in group.registered_commands]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None and sub.name
        found += commands(sub.typer_instance, (*prefix, sub.name))
    return found


def box_entries(text: str) -> dict[str, tuple[str, int]]:
    """The `Commands` box of a help page: each command's summary (its lines joined) and the
    number of lines it took."""
    entries: dict[str, tuple[str, int]] = {}
    current = None
    box = text.split("Commands")[-1]
    for line in box.splitlines():
        inner = line.strip("│ ╰╭─╯╮")
        match = re.match(r"^(\S+)\s{2,}(.*)$", inner)
        if match:
            current = match[1]
            entries[current] = (match[2].strip(), 1)
        elif current and inner.strip():
            summary, lines = entries[current]
            entries[current] = (f"{summary} {inner.strip()}", lines + 1)
    return entries


def test_every_summary_is_one_whole_sentence() -> None:
    # So wide that no summary needs wrapping: a summary on two lines was broken by its text.
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "400"}, terminal_width=400)
    entries = box_entries(result.output)
    assert len(entries) >= 15, result.output
    for name, (summary, lines) in entries.items():
        assert summary.endswith((".", ")")), f"{name}: {summary!r} is cut off"
        assert lines == 1, f"{name}: {summary!r} is broken over {lines} lines"


@pytest.mark.parametrize("command", commands(app), ids=" ".join)
def test_each_command_has_a_help_page(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
