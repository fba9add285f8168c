"""The layers point one way (ARCHITECTURE.md): entry points -> flows -> tasks -> core.

Every import in vigil's own packages is read from the source (module level and inside
functions alike) and checked against the rules; the checker itself is shown failing on a
planted violation, so a green run means something."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("vigil", "tasks", "flows", "deployments")
ENTRY_POINTS = ("vigil/cli.py", "vigil/commands/")
# What each layer may not import: the layers above it.
FORBIDDEN = {
    "vigil": ("tasks", "flows", "deployments"),
    "tasks": ("flows", "deployments"),
    "flows": ("deployments",),
    "deployments": (),
}
PRIVATE_PREFECT = ("prefect._internal", "prefect._vendor")
# Artifacts are published only through the boundary, which masks and neutralises them.
ARTIFACTS = "prefect.artifacts"
BOUNDARY = "vigil/boundary.py"


def imported(source: str) -> Iterator[tuple[int, str]]:
    """(line, module) of every absolute import in `source`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:  # `from prefect import _internal`
                yield node.lineno, f"{node.module}.{alias.name}"


def violations(root: Path) -> list[str]:
    """Every import under `root` that points up a layer or into Prefect's private modules."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if "/migrations/" in relative:
                continue
            entry = relative.startswith(ENTRY_POINTS)
            for line, module in imported(path.read_text()):
                top = module.split(".")[0]
                where = f"{relative}:{line}"
                if top in FORBIDDEN[package] and not entry:
                    found.setdefault(where, f"{where} imports {module} ({package} is below {top})")
                if module.startswith(PRIVATE_PREFECT):
                    found.setdefault(where, f"{where} imports {module} (a private Prefect module)")
                if module.startswith(ARTIFACTS) and relative != BOUNDARY:
                    found.setdefault(where, f"{where} imports {module} (publish via {BOUNDARY})")
    return sorted(found.values())


# Left to mend by the restructuring under way (issue 13); each entry goes when it is fixed.
KNOWN: set[str] = set()


def test_no_import_points_up_a_layer() -> None:
    found = violations(ROOT)
    files = {v.split(":")[0] for v in found}
    assert [v for v in found if v.split(":")[0] not in KNOWN] == []
    assert not KNOWN - files, f"mended, remove from KNOWN: {sorted(KNOWN - files)}"


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("vigil/restore.py", "from tasks.storage import Storage\n"),
        ("vigil/status.py", "def f():\n    import flows.sweep\n"),
        ("tasks/probe.py", "from flows.sweep import uptime_sweep\n"),
        ("flows/sweep.py", "from deployments.serve import serve\n"),
        ("vigil/cron.py", "from prefect._vendor.croniter import croniter\n"),
        ("tasks/x.py", "from prefect import _internal\n"),
        ("flows/sweep.py", "from prefect.artifacts import create_table_artifact\n"),
    ],
)
def test_the_check_sees_each_kind_of_violation(tmp_path: Path, path: str, source: str) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / path).write_text(source)
    assert len(violations(tmp_path)) == 1, violations(tmp_path)


def test_entry_points_may_run_flows(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "vigil" / "commands").mkdir()
    (tmp_path / "vigil" / "commands" / "sweep.py").write_text("from flows.sweep import x\n")
    (tmp_path / "vigil" / "cli.py").write_text("import deployments.serve\n")
    (tmp_path / "deployments" / "serve.py").write_text("import flows.sweep, tasks.http\n")
    assert violations(tmp_path) == []
