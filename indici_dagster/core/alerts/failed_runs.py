"""A failed run as the audit log and an alert describe it: names and classes, never values.

Error messages can quote row values (a database error, a file's content), so nothing here
carries one: the run id, the job, the partition, the keys of the failed steps and the class
names of their errors.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from indici_dagster.core.text import printable
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
MAX_NAMED = 20
"""Failed steps or error classes named one by one; the rest are counted."""


@dataclass(frozen=True)
class FailedRun:
    """What is said of a failed run."""

    run_id: str
    job: str
    partition: str | None
    failed_steps: tuple[str, ...]
    error_classes: tuple[str, ...]


def partition_of(tags: Mapping[str, str]) -> str | None:
    """The run's partition (`2026-11-24`), its range (`2026-11-01...2026-11-30`), or None."""
    if tags.get(PARTITION_TAG):
        return tags[PARTITION_TAG]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}...{end}"
    return None


def _names(values: Iterable[str]) -> tuple[str, ...]:
    """Distinct, printable, bounded names in first-seen order."""
    seen: dict[str, None] = {}
    for value in values:
        if value:
            seen.setdefault(printable(value, limit=200), None)
    return tuple(seen)


def failed_run(
    run_id: str,
    job: str,
    tags: Mapping[str, str],
    failed_steps: Iterable[str],
    error_classes: Iterable[str],
) -> FailedRun:
    """A `FailedRun` from the run's identity, tags, failed step keys and error class names."""
    return FailedRun(run_id, job, partition_of(tags), _names(failed_steps), _names(error_classes))


def _listed(names: tuple[str, ...], none: str) -> str:
    if not names:
        return none
    shown = ", ".join(names[:MAX_NAMED])
    return shown if len(names) <= MAX_NAMED else f"{shown} and {len(names) - MAX_NAMED} more"


def run_link(ui_url: str | None, run_id: str) -> str | None:
    """`<ui_url>/runs/<run id>`, or None without a UI address."""
    return f"{ui_url.rstrip('/')}/runs/{run_id}" if ui_url else None


def audit_entry(run: FailedRun) -> AuditEntry:
    """The run's audit row: step `run`, status `error`, no file; the message names the job, the
    failed steps and the error classes."""
    return AuditEntry(
        Step.RUN,
        Status.ERROR,
        source_file=None,
        partition_key=run.partition,
        run_id=run.run_id,
        message=(
            f"run failed: job {run.job}; failed steps: {_listed(run.failed_steps, 'none')}; "
            f"errors: {_listed(run.error_classes, 'unknown')}"
        ),
    )


def alert_text(run: FailedRun, ui_url: str | None) -> tuple[str, str]:
    """(subject, body) of the alert for a failed run; the subject fits SNS's 100 characters."""
    where = f"{run.job}, {run.partition}" if run.partition else run.job
    subject = f"indici: run failed ({where})"
    if len(subject) > 100:
        subject = subject[:97] + "..."
    lines = [
        "An indici run failed.",
        f"Run: {run.run_id}",
        f"Job: {run.job}",
        f"Partition: {run.partition or '-'}",
        f"Failed steps: {_listed(run.failed_steps, 'none (the run failed outside its steps)')}",
        f"Errors: {_listed(run.error_classes, 'unknown')}",
    ]
    link = run_link(ui_url, run.run_id)
    if link:
        lines.append(f"Run in Dagster: {link}")
    lines.append(
        "The step logs say what failed; `indici audit <file>` shows each file's fate. "
        "Re-execute the run once the cause is fixed, or backfill the date."
    )
    return subject, "\n".join(lines)
