"""One module per duty's CLI commands; each exposes `register(app)` so duties stay separate."""

from __future__ import annotations

import importlib
import pkgutil

import typer


def register_all(app: typer.Typer) -> None:
    """Import every module in this package and let it add its commands."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(app)
    summarise(app)


def summarise(app: typer.Typer) -> None:
    """Give each command a one-line summary for the command list: the first paragraph of its
    docstring, joined into one line (the list otherwise keeps the docstring's line breaks and
    shows sentences broken off mid-way), on this app and on its sub-apps."""
    for command in app.registered_commands:
        if command.short_help is None and command.callback is not None:
            command.short_help = first_paragraph(command.callback.__doc__)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            summarise(group.typer_instance)


def first_paragraph(doc: str | None) -> str | None:
    if not doc:
        return None
    return " ".join(doc.strip().split("\n\n")[0].split())
