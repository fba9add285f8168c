"""Did the restore bring back everything a logical backup holds besides rows? The manifest's
catalog objects, sequence values, large objects, materialized views and table fingerprints,
compared with the restored copy's, each difference named object by object ("policy
tenant_isolation on app.accounts missing", "sequence app.orders_id_seq at 1, expected 52
(is_called)", "large objects: 0 of 3 restored").

Pure: `tasks.completeness` reads both sides with the same queries; `vigil.recovery.judge`
calls these. A manifest written before a section existed is judged without it, saying so
("not recorded in this backup"), never failing for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vigil.backup.facts import Contents, Fingerprint
from vigil.recovery import Finding, RestoredFacts

NOT_RECORDED = "not recorded in this backup (written by an older vigil)"
# Kinds that are privileges: a restore without them (--no-privileges, as the restore test
# and the drill run) cannot bring them back, so they are compared only after one with them.
PRIVILEGE_KINDS = ("grants on ", "default acl")
# How many differences one finding spells out; the rest are counted.
SHOWN = 12


def judge_completeness(manifest: Mapping[str, Any], restored: RestoredFacts) -> list[Finding]:
    """Everything besides rows, indexes and constraints the manifest records, compared."""
    schema = restored.schema
    same_major = int(manifest["server_version_num"]) // 10000 == schema.server_version_num // 10000
    # Data first: a lost large object or a sequence set back is what an operator must see
    # at the top of the alert; the object lists follow.
    findings = [compare_sequences(manifest.get("sequences"), schema.sequences)]
    recorded = manifest.get("contents")
    contents = restored.contents or Contents(0, "", {})
    if recorded is None:
        for name in ("large_objects", "matviews"):
            findings.append(Finding(name, True, "as in the backup", NOT_RECORDED))
    else:
        findings.append(compare_large_objects(recorded.get("large_objects"), contents))
        findings.append(compare_matviews(recorded.get("matviews"), contents))
        findings += compare_fingerprints(recorded.get("fingerprints"), contents)
    findings += compare_objects(
        manifest.get("objects"),
        schema.objects,
        privileges=restored.privileges,
        definitions=same_major,
    )
    return findings


def compare_objects(
    recorded: Mapping[str, Mapping[str, str]] | None,
    restored: Mapping[str, Mapping[str, str]],
    *,
    privileges: bool,
    definitions: bool,
) -> list[Finding]:
    """One finding per kind that differs (or one that says all is there): every object of
    the manifest present, with its definition when `definitions` (same major version)."""
    expected = "every object of the backup, as defined there"
    if recorded is None:
        return [Finding("objects", True, expected, NOT_RECORDED)]
    findings, total, skipped = [], 0, []
    for kind in sorted(set(recorded) | set(restored)):
        if not privileges and kind.startswith(PRIVILEGE_KINDS):
            skipped.append(kind)
            continue
        wanted, got = recorded.get(kind, {}), restored.get(kind, {})
        total += len(wanted)
        problems = object_differences(kind, wanted, got, definitions=definitions)
        if problems:
            findings.append(_listed(f"objects: {kind}", problems, f"{len(wanted)} as backed up"))
    if not findings:
        observed = f"{total} objects of {len(recorded)} kinds as in the manifest"
        if skipped:
            observed += " (grants not compared: restored without privileges)"
        findings.append(Finding("objects", True, expected, observed))
    return findings


def object_differences(
    kind: str, wanted: Mapping[str, str], got: Mapping[str, str], *, definitions: bool
) -> list[str]:
    """The sentences naming what of `kind` is missing, changed or unexpected."""
    problems = []
    for identity in sorted(set(wanted) - set(got)):
        problems.append(_missing(kind, identity, wanted[identity]))
    if definitions:
        for identity in sorted(set(wanted) & set(got)):
            if wanted[identity] != got[identity]:
                problems.append(
                    f"{kind} {identity}: {_shown(wanted[identity])} in the backup, "
                    f"{_shown(got[identity])} restored"
                )
    for identity in sorted(set(got) - set(wanted)):
        problems.append(f"{kind} {identity} restored but not in the backup")
    return problems


def _missing(kind: str, identity: str, definition: str) -> str:
    if kind == "partition" or kind == "index partition":
        parent, _, bound = definition.removeprefix("of ").partition(" ")
        return f"{kind} {identity} not attached to {parent}" + (f" ({bound})" if bound else "")
    if kind == "row security on":
        return f"row security on {identity}: {definition} in the backup, disabled restored"
    return f"{kind} {identity} missing"


def _shown(definition: str) -> str:
    if not definition:
        return "(none)"
    if definition.startswith("md5:"):
        return f"definition {definition[4:12]}"
    return repr(definition)


def _listed(name: str, problems: Sequence[str], expected: str) -> Finding:
    shown = "; ".join(problems[:SHOWN])
    more = len(problems) - SHOWN
    text = shown + (f"; and {more} more" if more > 0 else "")
    return Finding(name, False, expected, f"{len(problems)} differ", text)


def compare_sequences(
    recorded: Mapping[str, Any] | None, restored: Mapping[str, Mapping[str, Any]]
) -> Finding:
    """Every sequence at least where the backup left it: a restored sequence behind its
    recorded value hands out keys that already exist. (pg_dump reads a sequence when it
    dumps it, after the manifest read it: a busy sequence may come back further on.)"""
    expected = "every sequence at least at its backed-up value"
    if recorded is None:
        return Finding("sequences", True, expected, NOT_RECORDED)
    problems = []
    for name, want in sorted(recorded.items()):
        got = restored.get(name)
        if got is None:
            problems.append(f"sequence {name} missing, expected {_position(want)}")
        elif _behind(got, want):
            problems.append(f"sequence {name} at {_position(got)}, expected {_position(want)}")
    if problems:
        return _listed("sequences", problems, expected)
    return Finding("sequences", True, expected, f"{len(recorded)} at their backed-up values")


def _position(value: Mapping[str, Any]) -> str:
    called = "is_called" if value["is_called"] else "not called"
    return f"{value['last_value']} ({called})"


def _behind(got: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """Whether the next value `got` hands out comes before the one `want` would."""
    step = int(want.get("increment", 1)) or 1

    def upcoming(value: Mapping[str, Any]) -> int:
        return int(value["last_value"]) + (step if value["is_called"] else 0)

    ahead = upcoming(got) - upcoming(want)
    return ahead < 0 if step > 0 else ahead > 0


def compare_large_objects(recorded: Mapping[str, Any] | None, restored: Contents) -> Finding:
    expected = "every large object, with its data"
    if recorded is None:
        return Finding("large_objects", True, expected, NOT_RECORDED)
    count, digest = int(recorded["count"]), str(recorded["sha256"])
    if restored.large_objects != count:
        problem = f"large objects: {restored.large_objects} of {count} restored"
        return Finding("large_objects", False, f"{count}", f"{restored.large_objects}", problem)
    if restored.large_objects_sha256 != digest:
        problem = (
            f"large objects: {count} restored, but their data differs from the backup's "
            f"(checksum {restored.large_objects_sha256[:19]}, backed up {digest[:19]})"
        )
        return Finding("large_objects", False, digest, restored.large_objects_sha256, problem)
    return Finding("large_objects", True, expected, f"{count}, data as backed up")


def compare_matviews(recorded: Mapping[str, Any] | None, restored: Contents) -> Finding:
    """Populated exactly when the backup's were. Rows are computed again by the restore's
    REFRESH from the restored tables: none where the backup had some is data lost; another
    count is what a view that was stale at backup time shows, said but not failed."""
    expected = "populated as in the backup"
    if recorded is None:
        return Finding("matviews", True, expected, NOT_RECORDED)
    problems, notes = [], []
    for name, rows in sorted(recorded.items()):
        if name not in restored.matviews:
            problems.append(f"materialized view {name} missing")
            continue
        got = restored.matviews[name]
        if rows is not None and got is None:
            problems.append(
                f"materialized view {name} not populated, expected {rows:,} rows "
                "(its REFRESH was not restored)"
            )
        elif rows is None and got is not None:
            problems.append(f"materialized view {name} populated, but WITH NO DATA in the backup")
        elif rows and got == 0:
            problems.append(f"materialized view {name}: {rows:,} rows in the backup, 0 restored")
        elif rows != got:
            notes.append(f"{name} {got:,} rows (the backup's was stale at {rows:,})")
    if problems:
        return _listed("matviews", problems, expected)
    observed = f"{len(recorded)} as in the backup" + (f"; {', '.join(notes)}" if notes else "")
    return Finding("matviews", True, expected, observed)


def compare_fingerprints(recorded: Mapping[str, Any] | None, restored: Contents) -> list[Finding]:
    """Each named table's rows, hashed in key order, equal to the backup's."""
    findings = []
    for name, want in sorted((recorded or {}).items()):
        label, expected = f"fingerprint {name}", f"{want['rows']:,} rows, {want['sha256'][:19]}"
        got: Fingerprint | None = restored.fingerprints.get(name)
        if got is None:
            findings.append(Finding.failed(label, f"{label}: table missing from the restore"))
        elif got.sha256 != want["sha256"]:
            problem = (
                f"{label}: contents differ from the backup's ({want['rows']:,} rows backed up, "
                f"{got.rows:,} restored)"
            )
            findings.append(Finding(label, False, expected, f"{got.rows:,} rows differ", problem))
        else:
            findings.append(Finding(label, True, expected, f"{got.rows:,} rows, as backed up"))
    return findings
