"""`vigil records prune [--dry-run]`: apply the records retention now, by hand.

The same plan and deletes as the daily `records-housekeeping` duty (vigil.retention,
vigil.store.prune), run directly on the records store: no Prefect server is needed, so it
also works when the server is the thing being repaired. `--dry-run` counts what a real run
would delete, table by table, and deletes nothing.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vigil import clock
from vigil.cliutil import ConfigOption, JsonOption, config_for, out, print_json

records_app = typer.Typer(
    help="vigil's records store: retention.", no_args_is_help=True, add_completion=False
)


def register(app: typer.Typer) -> None:
    app.add_typer(records_app, name="records")


@records_app.command("prune")
def prune_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")
    ] = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete records older than the config's `retention:` (in batches), then vacuum."""
    from vigil.retention import plan
    from vigil.store import open_store
    from vigil.store.prune import prune
    from vigil.store.report import prune_lines

    loaded = config_for(config)
    cuts = plan(loaded.retention, clock.now(), tuple(m.name for m in loaded.monitors))
    with open_store(loaded.store.url) as store:
        outcome = prune(store, cuts, dry_run=dry_run, batch_size=loaded.retention.batch_size)
    if json_output:
        print_json(
            {
                "dry_run": outcome.dry_run,
                "deleted": outcome.deleted,
                "eligible": outcome.eligible,
                "size_before": outcome.size_before,
                "size_after": outcome.size_after,
                "vacuum": outcome.vacuum,
                "tables": [t.__dict__ for t in outcome.tables],
            }
        )
        return
    for line in prune_lines(outcome):
        out.print(line, markup=False)
