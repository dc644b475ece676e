"""What the daily audit summary's checks compare it with: the same counts, recomputed in Python
from the raw audit rows and the ledger (`warehouse.audit_summary.audit_rows`, `landed_files`),
independently of the SQL that wrote the summary. Counts and file names only, never a value."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from indici_dagster.core.warehouse.audit_summary import COUNTS, DailySummary

_OUTCOME_COLUMN = {
    "loaded": "files_loaded",
    "empty": "files_empty",
    "failed": "files_failed",
    "no_rule": "files_no_rule",
}


@dataclass
class _File:
    latest: tuple[str, str] | None = None  # (step, status) of the newest row
    staging: tuple | None = None  # the newest staging row
    rpt: tuple | None = None  # the newest rpt row


def _outcome(latest: tuple[str, str] | None) -> str | None:
    if latest is None:
        return None
    step, status = latest
    if step == "rpt" and status in ("success", "static"):
        return "loaded"
    return {"empty": "empty", "error": "failed", "no_rule": "no_rule"}.get(status)


def expected_counts(
    audit: Iterable[tuple], landed: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str], dict[str, int]]:
    """(date, dataset) -> the summary's counts, from audit rows (as `audit_rows` returns them,
    oldest first) and the ledger's files: each file once, by its newest row."""
    files: dict[tuple[str, str, str], _File] = defaultdict(_File)
    for date, dataset, name in landed:
        files.setdefault((date, dataset, name), _File())  # counts even with no audit row yet
    for row in audit:
        _, dataset, date, name, step, status = row[:6]
        state = files[(date, dataset, name)]
        state.latest = (step, status)
        if step == "staging":
            state.staging, state.rpt = row, None  # a new attempt: its rpt row comes later
        elif step == "rpt":
            state.rpt = row
    totals: dict[tuple[str, str], dict[str, int]] = {}
    for (date, dataset, _), state in files.items():
        counts = totals.setdefault((date, dataset), dict.fromkeys(COUNTS, 0))
        counts["files_received"] += 1
        if (column := _OUTCOME_COLUMN.get(_outcome(state.latest) or "")) is not None:
            counts[column] += 1
        if state.staging is not None:
            counts["rows_read"] += state.staging[6] or 0
            counts["rows_loaded"] += state.staging[7] or 0
        if state.rpt is not None:
            for offset, column in enumerate(COUNTS[7:], start=8):
                counts[column] += state.rpt[offset] or 0
    return totals


@dataclass(frozen=True)
class Reconciliation:
    """How the stored summary of some dates compares with the recount."""

    missing_files: dict[str, dict[str, int]] = field(default_factory=dict)
    """`date dataset` -> files the ledger holds (`landed`) and the summary counts (`counted`),
    where it counts fewer."""
    mismatched: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    """`date dataset` -> column -> [stored, recounted], for every count that differs."""


def reconcile(
    stored: Sequence[DailySummary],
    audit: Sequence[tuple],
    landed: Sequence[tuple[str, str, str]],
) -> Reconciliation:
    """Compare the stored summary with the recount: every ledger file of a date must be counted
    in its dataset's row (`missing_files`), and every count must equal the audit log's
    (`mismatched`, which also names rows the summary has and the recount does not)."""
    expected = expected_counts(audit, landed)
    rows = {(str(s.partition_key), s.dataset): s for s in stored}
    missing: dict[str, dict[str, int]] = {}
    by_dataset: dict[tuple[str, str], set[str]] = defaultdict(set)
    for date, dataset, name in landed:
        by_dataset[(date, dataset)].add(name)
    for key, names in sorted(by_dataset.items()):
        counted = rows[key].files_received if key in rows else 0
        if counted < len(names):
            missing[" ".join(key)] = {"landed": len(names), "counted": counted}
    mismatched: dict[str, dict[str, list[int]]] = {}
    for key in sorted(set(expected) | set(rows)):
        want = expected.get(key, dict.fromkeys(COUNTS, 0))
        have = rows.get(key)
        got = {c: getattr(have, c) for c in COUNTS} if have else dict.fromkeys(COUNTS, 0)
        differ = {c: [got[c], want[c]] for c in COUNTS if got[c] != want[c]}
        if differ or (have is None) != (key not in expected):
            mismatched[" ".join(key)] = differ or {"row": [int(have is not None), 1]}
    return Reconciliation(missing, mismatched)
