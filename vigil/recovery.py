"""The judgement of a restored copy: one comparison of what a restore brought back with what
the manifest recorded at backup time, and one finding type, for `vigil restore`, the weekly
restore test and the DR drill alike.

The restored copy's facts are read by `tasks.recovery.inspect`; here they are only
compared, so every verdict is a pure function of (manifest, facts) and is tested without a
server. A finding keeps what was expected next to what was observed, and the sentence a
person reads when it failed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from vigil.backup.facts import Contents, SnapshotFacts
from vigil.backup.manifest import (
    leaf_tables,
    manifest_rows,
    partition_tree,
    rows_through_leaves,
)
from vigil.durations import format_duration, format_size

# Application clocks drift: data stamped a little after the snapshot still counts.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Finding:
    """One judged property, kept with both sides for the record; `problem` is the sentence
    a person reads when it failed."""

    name: str
    ok: bool
    expected: str
    observed: str
    problem: str | None = None

    @classmethod
    def failed(cls, name: str, problem: str, expected: str = "", observed: str = "") -> Finding:
        return cls(name, False, expected, observed or problem, problem)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "expected": self.expected,
            "observed": self.observed,
        }

    def line(self) -> str:
        if self.ok:
            return f"{self.name}: ok ({self.observed})"
        return self.problem or f"{self.name}: expected {self.expected}, observed {self.observed}"


@dataclass(frozen=True)
class TableScan:
    """A table of the restored copy read whole: its exact rows and newest timestamp."""

    name: str
    rows: int
    newest: datetime | None


@dataclass(frozen=True)
class IndexCheck:
    """`bt_index_check` of one index: `problem` is None when it passed; `corrupt` says
    whether the error was amcheck finding the index inconsistent, rather than the check
    being refused (a lock, a permission, an index amcheck cannot read)."""

    name: str
    problem: str | None
    seconds: float
    corrupt: bool = True


@dataclass(frozen=True)
class RestoredFacts:
    """What reading the restored copy showed. `amcheck` is None when it was not asked for;
    `amcheck_skipped` says why it could not run; `privileges` whether the restore brought
    grants back (without them, as a scratch restore runs, grants are not compared)."""

    schema: SnapshotFacts
    scans: Sequence[TableScan]
    invalid_indexes: Sequence[str]
    amcheck: Sequence[IndexCheck] | None = None
    amcheck_skipped: str | None = None
    contents: Contents | None = None
    privileges: bool = False

    @property
    def recovery_point(self) -> datetime | None:
        return max((s.newest for s in self.scans if s.newest is not None), default=None)


@dataclass(frozen=True)
class Comparison:
    findings: list[Finding]
    recovery_point: datetime | None
    # amcheck is work a bare restore never does: its time (summed over the connections
    # that shared it) is kept apart to be seen.
    amcheck_s: float | None = None


def judge(manifest: dict[str, Any], restored: RestoredFacts) -> Comparison:
    """Everything the manifest promised, against what the restored copy holds."""
    schema = restored.schema
    taken = datetime.fromisoformat(manifest["snapshot"]["taken_at"])
    tree = schema.partitions if "partitions" in manifest else None
    findings = compare_rows(manifest, {s.name: s.rows for s in restored.scans}, tree)
    findings.append(compare_set("indexes", manifest["indexes"], schema.indexes, words=1))
    findings.append(
        compare_set("constraints", manifest["constraints"], schema.constraints, words=2)
    )
    findings.append(valid_indexes(restored.invalid_indexes))
    findings.append(compare_fingerprint(manifest, schema.fingerprint, schema.server_version_num))
    from vigil.completeness import judge_completeness  # it builds on this module's types

    findings += judge_completeness(manifest, restored)
    amcheck_s = None
    if restored.amcheck is not None:
        findings.append(btree_finding(restored.amcheck, restored.amcheck_skipped))
        amcheck_s = sum(c.seconds for c in restored.amcheck)
    findings.append(freshness(restored.recovery_point, taken))
    return Comparison(findings, restored.recovery_point, amcheck_s)


def compare_rows(
    manifest: dict[str, Any],
    restored: dict[str, int],
    tree: Mapping[str, Sequence[str]] | None = None,
) -> list[Finding]:
    """One finding per table of the manifest: present, with exactly its recorded rows (a
    partitioned table's counted through its leaves, which have their own findings too: in
    the manifest's tree, and in the restored copy's `tree`, so a partition left detached
    shows as rows missing from its parent)."""
    findings = []
    recorded = manifest_rows(manifest)
    for name in sorted(recorded):
        facts = rows_through_leaves(manifest, name) or recorded[name]
        leaves = leaf_tables(tree if tree is not None else partition_tree(manifest), name)
        got = sum(restored.get(leaf, 0) for leaf in leaves) if name in restored else None
        expected = f"{facts.rows:,}" if facts.exact else f"~{facts.rows:,} (estimate)"
        if got is None:
            problem = f"{name}: {expected} rows in the manifest, table missing from the restore"
            findings.append(Finding(f"rows {name}", False, expected, "missing", problem))
        elif facts.exact and got != facts.rows:
            problem = f"{name}: {facts.rows:,} rows in the manifest, {got:,} restored"
            findings.append(Finding(f"rows {name}", False, expected, f"{got:,}", problem))
        else:
            findings.append(Finding(f"rows {name}", True, expected, f"{got:,}"))
    extra = sorted(set(restored) - set(recorded))
    if extra:
        problem = f"tables: restored tables not in the manifest: {', '.join(extra)}"
        findings.append(Finding("tables", False, "only the manifest's tables", problem, problem))
    return findings


def compare_set(
    what: str, recorded: Sequence[str], restored: Sequence[str], *, words: int
) -> Finding:
    """Indexes or constraints, by full definition: a changed definition shows as one
    missing and one unexpected. Messages name each by its first `words` words
    (`schema.index`, or `schema.table constraint`)."""
    missing = sorted(set(recorded) - set(restored))
    extra = sorted(set(restored) - set(recorded))
    expected, observed = f"{len(recorded)} as in the manifest", f"{len(restored)} restored"
    if not missing and not extra:
        return Finding(what, True, expected, observed)
    parts = [f"{what}: {len(recorded)} in the manifest, {len(restored)} restored"]
    parts += [f"missing {_names(missing, words)}"] if missing else []
    parts += [f"unexpected {_names(extra, words)}"] if extra else []
    return Finding(what, False, expected, observed, "; ".join(parts))


def _names(definitions: Sequence[str], words: int) -> str:
    return ", ".join(" ".join(d.split(" ")[:words]) for d in definitions)


def valid_indexes(invalid: Sequence[str]) -> Finding:
    if not invalid:
        return Finding("valid_indexes", True, "no invalid index", "all valid")
    names = ", ".join(invalid)
    return Finding(
        "valid_indexes",
        False,
        "no invalid index",
        f"invalid: {names}",
        f"valid_indexes: {len(invalid)} invalid index(es) in the restore (pg_index.indisvalid "
        f"false): {names}",
    )


def compare_fingerprint(manifest: dict[str, Any], fingerprint: str, version_num: int) -> Finding:
    """Equal on the same major version; across majors the catalog spells defaults and
    types differently, so only the other checks apply."""
    expected = str(manifest["schema_fingerprint"])
    if "objects" in manifest:
        observed = "superseded: columns and defaults are compared one by one (objects)"
        return Finding("schema_fingerprint", True, expected, observed)
    backed_up = int(manifest["server_version_num"]) // 10000
    if backed_up != version_num // 10000:
        observed = (
            f"not compared: backed up on PostgreSQL {backed_up}, restored on {version_num // 10000}"
        )
        return Finding("schema_fingerprint", True, expected, observed)
    if fingerprint == expected:
        return Finding("schema_fingerprint", True, expected, fingerprint)
    problem = f"schema_fingerprint: {expected} in the manifest, {fingerprint} restored"
    return Finding("schema_fingerprint", False, expected, fingerprint, problem)


def btree_finding(checks: Sequence[IndexCheck], skipped: str | None) -> Finding:
    """Only corruption amcheck reports fails the copy; an index it could not check is
    named as such (unchecked is not corrupt, and not proven sound either)."""
    expected = "bt_index_check passes on every B-tree index"
    if skipped is not None:
        return Finding("amcheck", True, expected, skipped)
    broken = sorted(c.problem for c in checks if c.problem is not None and c.corrupt)
    unchecked = sorted(c.problem for c in checks if c.problem is not None and not c.corrupt)
    checked = len(checks) - len(unchecked)
    observed = f"{checked} indexes checked"
    if unchecked:
        observed += f"; {len(unchecked)} could not be checked: " + "; ".join(unchecked)
    if not broken:
        return Finding("amcheck", True, expected, observed)
    problem = f"amcheck: {len(broken)} of {checked} B-tree indexes corrupt: " + "; ".join(broken)
    if unchecked:
        problem += f" ({len(unchecked)} more could not be checked: " + "; ".join(unchecked) + ")"
    return Finding("amcheck", False, expected, f"{len(broken)} corrupt", problem)


def freshness(newest: datetime | None, taken: datetime) -> Finding:
    """The real recovery point: informative, since the backup's age is judged elsewhere."""
    expected = f"data up to the snapshot at {taken.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if newest is None:
        return Finding("recovery_point", True, expected, "no timestamp column holds data")
    lag = max(taken - newest, timedelta())
    observed = f"newest row {newest:%Y-%m-%d %H:%M:%S} UTC, {format_duration(lag)} before it"
    return Finding("recovery_point", True, expected, observed)


def sql_check(name: str, query: str, row: tuple[Any, ...] | None, error: str | None) -> Finding:
    """A configured SQL check: its first value must be true (or non-zero)."""
    label = f"check {name}"
    if error is not None:
        return Finding(
            label, False, "true", f"error: {error}", f"{label}: the query failed: {error}"
        )
    value = row[0] if row else None
    observed = "no rows" if row is None else repr(value)
    # NaN is truthy in Python, and no answer to "is this true?"
    passed = bool(value) and not _is_nan(value)
    problem = None if passed else f"{label}: expected true, got {observed} ({query})"
    return Finding(label, passed, "true", observed, problem)


def _is_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, Decimal) and value.is_nan()


# --- one real recovery, as `vigil restore` reports it ----------------------------------------


@dataclass
class RecoveryReport:
    """A backup restored into a target by hand: where from, where to, how long, and the
    same findings as the restore test."""

    backup_id: str
    database: str
    target: str
    created_at: str
    size_bytes: int
    sha256: str
    jobs: int
    in_catalog: bool
    fetch_s: float = 0.0
    restore_s: float = 0.0
    check_s: float = 0.0
    total_s: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    recovery_point: datetime | None = None
    created_target: bool = False
    # what applying the backup's saved globals did (`GlobalsApplied`), when asked
    globals: dict[str, Any] | None = None
    globals_lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.findings) and all(f.ok for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "in_catalog": self.in_catalog,
            "created_target": self.created_target,
            "backup_id": self.backup_id,
            "database": self.database,
            "target": self.target,
            "created_at": self.created_at,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "jobs": self.jobs,
            "fetch_s": round(self.fetch_s, 3),
            "restore_s": round(self.restore_s, 3),
            "check_s": round(self.check_s, 3),
            "total_s": round(self.total_s, 3),
            "recovery_point": self.recovery_point.isoformat() if self.recovery_point else None,
            "globals": self.globals,
            "checks": [f.as_json() for f in self.findings],
            "problems": [f.line() for f in self.failures],
        }

    def lines(self) -> list[str]:
        source = (
            "catalog and manifest" if self.in_catalog else "manifest (not in this store's catalog)"
        )
        rows = [f for f in self.findings if f.name.startswith("rows ")]
        jobs = f"{self.jobs} job{'s' if self.jobs != 1 else ''}"
        verdict = "restored" if self.ok else "restored INCOMPLETE"
        created = " (created: it did not exist)" if self.created_target else ""
        lines = [
            f"{verdict} {self.backup_id} (database {self.database}, taken {self.created_at}) "
            f"into {self.target}{created}",
            f"  archive {format_size(self.size_bytes)}, sha256 {self.sha256} matches the {source}",
            f"  fetch {format_duration(self.fetch_s)}, pg_restore "
            f"{format_duration(self.restore_s)} ({jobs}), checks {format_duration(self.check_s)}, "
            f"total {format_duration(self.total_s)}",
            f"  {sum(f.ok for f in rows)} of {len(rows)} tables have the manifest's row counts; "
            f"{sum(f.ok for f in self.findings)} of {len(self.findings)} checks passed",
        ]
        lines += [f"  {line}" for line in self.globals_lines]
        lines += [f"  MISSING {f.line()}" for f in self.failures]
        if not self.ok:
            lines.append(
                "  the copy is INCOMPLETE: do not send traffic to it before what is missing "
                "is restored by other means"
            )
        return lines
