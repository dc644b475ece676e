"""The daily partitions every asset shares."""

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from dagster import BackfillPolicy, DailyPartitionsDefinition

from indici_dagster.core.settings import Settings

T = TypeVar("T")


def daily_partitions(settings: Settings) -> DailyPartitionsDefinition:
    """One partition per local day in the configured zone, today included (files land daily)."""
    return DailyPartitionsDefinition(
        start_date=settings.start_date, timezone=settings.timezone, end_offset=1
    )


RANGE_BACKFILL = BackfillPolicy.single_run()
"""A backfill of a date range runs as one run: one load pass and one rpt upsert for the range."""


def group_by_partition(
    partition_keys: Sequence[str], items: Iterable[T], partition_key_of: Callable[[T], str]
) -> dict[str, list[T]]:
    """`items` grouped by the date they belong to, with an entry for every date of the run.

    Each date's materialization then shows only its own files: a year-long range run would
    otherwise copy every file's details into each of its 365 events.
    """
    grouped: dict[str, list[T]] = {key: [] for key in partition_keys}
    for item in items:
        # an item dated outside the run (only if the time zone setting changed) stays in the
        # audit log; Dagster refuses metadata for a partition the run does not materialize
        if (key := partition_key_of(item)) in grouped:
            grouped[key].append(item)
    return grouped
