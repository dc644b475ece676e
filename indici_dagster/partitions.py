"""The daily partitions every asset shares."""

from dagster import BackfillPolicy, DailyPartitionsDefinition

from indici_dagster.core.settings import Settings


def daily_partitions(settings: Settings) -> DailyPartitionsDefinition:
    """One partition per local day in the configured zone, today included (files land daily)."""
    return DailyPartitionsDefinition(
        start_date=settings.start_date, timezone=settings.timezone, end_offset=1
    )


RANGE_BACKFILL = BackfillPolicy.single_run()
"""A backfill of a date range runs as one run: one load pass and one rpt upsert for the range."""
