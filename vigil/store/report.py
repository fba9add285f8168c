"""A prune's outcome in words, the same for `vigil records prune` and the housekeeping run's
log and artifact: per table what was (or would be) deleted, then the space given back."""

from __future__ import annotations

from typing import Any

from vigil.durations import format_size
from vigil.store.prune import PruneOutcome


def prune_lines(outcome: PruneOutcome) -> list[str]:
    verb = "would delete" if outcome.dry_run else "deleted"
    lines = [f"records retention ({'dry run' if outcome.dry_run else 'done'}):"]
    for table in outcome.tables:
        number = table.eligible if outcome.dry_run else table.deleted
        batches = f" in {table.batches} batch(es)" if table.batches else ""
        lines.append(
            f"  {table.table:<22} {verb} {number:>9,} row(s) older than {table.keep:>6} "
            f"(before {table.before}){batches}"
        )
    total = outcome.eligible if outcome.dry_run else outcome.deleted
    lines.append(f"  {'total':<22} {verb} {total:>9,} row(s)")
    lines.append(f"  size: {_size(outcome.size_before)} -> {_size(outcome.size_after)}")
    if outcome.vacuum:
        lines.append(f"  vacuum: {outcome.vacuum}")
    return lines


def prune_table(outcome: PruneOutcome) -> list[dict[str, Any]]:
    """Rows for a table artifact."""
    return [
        {
            "table": t.table,
            "keep": t.keep,
            "before": t.before,
            "eligible": t.eligible,
            "deleted": t.deleted,
            "batches": t.batches,
        }
        for t in outcome.tables
    ]


def _size(value: int | None) -> str:
    return "?" if value is None else format_size(value)
