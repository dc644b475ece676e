"""Settling the ledger: which versions are `done`, which need their rpt step, which need attention.

A version is settled from what runs recorded on it (`run_id`: the run that copied it, or the
rpt-only run the sensor requested for it; `staged_run_id`, `rpt_run_id`: the runs whose staging
and rpt steps loaded and applied it) and how Dagster says those runs and their steps ended,
never from a run key or a run's root: it is `done` once the staging step that loaded it and the
rpt step that applied it (of its dataset, in the runs that recorded them) both succeeded. A
re-execution of other steps, or a run without the rpt step, never settles it `done`. Pure
decisions and set-based statements; the sensor asks Dagster how the runs and steps ended.
"""

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.pipeline_names import LEDGER_TABLE, STAGING_SCHEMA
from indici_dagster.core.warehouse.ledger import (
    LEDGER,
    STEP_COLUMNS,
    UNSETTLED,
    LedgerEntry,
    Outcome,
)


class RunEnd(StrEnum):
    """How a run stands, as far as settling goes."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCELED = "canceled"
    UNFINISHED = "unfinished"
    UNKNOWN = "unknown"
    """Not in this Dagster instance (deleted, or another instance's run)."""


ENDED_BADLY = (RunEnd.FAILURE, RunEnd.CANCELED)


@dataclass(frozen=True)
class UnsettledGroup:
    """Unsettled versions of one dataset sharing the runs that recorded them."""

    run_id: str
    staged_run_id: str | None
    rpt_run_id: str | None
    dataset: str | None
    files: int
    first_date: str | None
    last_date: str | None

    @property
    def span(self) -> str:
        """The dates of the group, for a log line."""
        if self.first_date == self.last_date:
            return str(self.first_date)
        return f"{self.first_date} to {self.last_date}"


StepKey = tuple[str, str, str]
"""(run id, `staging` or `rpt`, dataset): one step of one run."""


@dataclass(frozen=True)
class Decision:
    """What to make of a group: a new outcome (None: leave it), and a line needing attention."""

    outcome: Outcome | None = None
    message: str | None = None
    attention: str | None = None


def require_step_columns(cursor: Cursor) -> None:
    """Raise one line naming the missing column when the ledger predates the step columns and
    the pipeline's role may not add them (bootstrap's owner role owns it)."""
    cursor.execute(
        "SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = "
        "pg_catalog.to_regclass(%s) AND a.attname = ANY(%s) AND NOT a.attisdropped",
        (f'"{STAGING_SCHEMA}"."{LEDGER_TABLE}"', list(STEP_COLUMNS)),
    )
    present = {name for (name,) in cursor.fetchall()}
    for column in STEP_COLUMNS:
        if column not in present:
            raise RuntimeError(
                f"{STAGING_SCHEMA}.{LEDGER_TABLE} has no column {column}: run `indici bootstrap` "
                "(this version of the pipeline adds it)"
            )


def unsettled_groups(cursor: Cursor, limit: int = 200) -> list[UnsettledGroup]:
    """The unsettled versions, grouped by dataset and the runs that recorded them, oldest
    first."""
    cursor.execute(
        sql.SQL(
            "SELECT run_id, staged_run_id, rpt_run_id, dataset, count(*), min(partition_key), "
            "max(partition_key) FROM {} WHERE outcome = ANY(%s) AND run_id IS NOT NULL "
            "GROUP BY 1, 2, 3, 4 ORDER BY min(updated_at) LIMIT %s"
        ).format(LEDGER),
        ([str(o) for o in UNSETTLED], limit),
    )
    return [UnsettledGroup(*row) for row in cursor.fetchall()]


def steps_to_ask(groups: Iterable[UnsettledGroup]) -> set[StepKey]:
    """The steps whose outcome settling these groups depends on."""
    steps = set()
    for group in groups:
        if group.dataset and group.staged_run_id and group.rpt_run_id:
            steps.add((group.staged_run_id, "staging", group.dataset))
            steps.add((group.rpt_run_id, "rpt", group.dataset))
        elif group.dataset and group.staged_run_id:
            steps.add((group.staged_run_id, "staging", group.dataset))
    return steps


def decide(
    group: UnsettledGroup, ends: Mapping[str, RunEnd], succeeded: Collection[StepKey]
) -> Decision:
    """Pure: `done` once the staging step that loaded the versions and the rpt step that
    applied them both succeeded (`succeeded`: steps Dagster reports succeeded); otherwise wait
    while a run that recorded them has not ended; `run_failed` when their run failed or was
    cancelled, or succeeded without loading them into staging; `needs_rpt` when it succeeded
    and a successful staging step loaded them, but no successful rpt step applied them."""
    dataset = group.dataset or ""
    staged = bool(group.staged_run_id) and (group.staged_run_id, "staging", dataset) in succeeded
    applied = bool(group.rpt_run_id) and (group.rpt_run_id, "rpt", dataset) in succeeded
    if staged and applied:
        return Decision(Outcome.DONE)
    run = ends.get(group.run_id, RunEnd.UNKNOWN)
    if run is RunEnd.UNKNOWN:
        return Decision(
            attention=f"run {group.run_id} ({group.files} file(s)) is unknown to Dagster"
        )
    others = [ends.get(r) for r in (group.staged_run_id, group.rpt_run_id) if r]
    if RunEnd.UNFINISHED in (run, *others):
        return Decision()
    if run in ENDED_BADLY:
        return Decision(
            Outcome.RUN_FAILED,
            f"run {run}",
            f"run {group.run_id} ({group.span}, {group.files} file(s)) ended {run}: its files "
            "are not done; re-execute the run or backfill the date",
        )
    if staged:
        return Decision(Outcome.NEEDS_RPT, "staged by a run that did not apply it to rpt")
    return Decision(
        Outcome.RUN_FAILED,
        "its run succeeded without loading it into staging",
        f"run {group.run_id} ({group.span}) succeeded without loading {group.files} file(s) "
        "into staging (see `indici audit`): backfill the date once they can load",
    )


def settle_group(cursor: Cursor, group: UnsettledGroup, decision: Decision) -> int:
    """Give the group's versions the decision's outcome, if they are still as the group saw
    them (a step that recorded itself since is left for the next tick); returns how many."""
    if decision.outcome is None:
        return 0
    cursor.execute(
        sql.SQL(
            "UPDATE {} SET outcome = %s, message = %s, updated_at = now() WHERE run_id = %s "
            "AND staged_run_id IS NOT DISTINCT FROM %s::text "
            "AND rpt_run_id IS NOT DISTINCT FROM %s::text "
            "AND dataset IS NOT DISTINCT FROM %s::text AND outcome = ANY(%s) AND outcome <> %s"
        ).format(LEDGER),
        (
            str(decision.outcome),
            decision.message,
            group.run_id,
            group.staged_run_id,
            group.rpt_run_id,
            group.dataset,
            [str(o) for o in UNSETTLED],
            str(decision.outcome),
        ),
    )
    return cursor.rowcount


def needing_rpt(cursor: Cursor, limit: int = 5000) -> list[LedgerEntry]:
    """Versions waiting for their rpt step, by date; whole dates only (a date cut by `limit`
    waits for the next tick, so its request holds all its versions)."""
    cursor.execute(
        sql.SQL(
            "SELECT source_key, etag, size, outcome, file_name, dataset, partition_key, run_key, "
            "message, run_id FROM {} WHERE outcome = %s "
            "ORDER BY partition_key, source_key, etag LIMIT %s"
        ).format(LEDGER),
        (str(Outcome.NEEDS_RPT), limit + 1),
    )
    entries = [
        LedgerEntry(k, e, s, Outcome(o), f, d, p, rk, m, r)
        for k, e, s, o, f, d, p, rk, m, r in cursor.fetchall()
    ]
    if len(entries) > limit:
        cut = entries[limit].partition_key
        entries = [e for e in entries[:limit] if e.partition_key != cut]
    return entries


def recorded_by(cursor: Cursor, run_id: str, versions: Iterable[LedgerEntry], *, rpt: bool) -> bool:
    """True when `run_id` recorded every one of these versions: copied them (`run_id`; a
    version refused for its name counts, it is recorded too), or, with `rpt`, applied them to
    rpt (`rpt_run_id`)."""
    column = sql.Identifier("rpt_run_id" if rpt else "run_id")
    keys = list(versions)
    cursor.execute(
        sql.SQL(
            "SELECT count(*) FROM {} l JOIN unnest(%s::text[], %s::text[]) "
            "AS t(source_key, etag) USING (source_key, etag) WHERE l.{} = %s"
        ).format(LEDGER, column),
        ([e.source_key for e in keys], [e.etag for e in keys], run_id),
    )
    return cursor.fetchone()[0] == len({(e.source_key, e.etag) for e in keys})


def hand_to_failed_run(
    cursor: Cursor, versions: Sequence[LedgerEntry], run_id: str, message: str
) -> int:
    """Versions waiting for their rpt step whose requested rpt run failed or was cancelled:
    `run_failed` under that run (what they were staged by is kept); returns how many."""
    cursor.execute(
        sql.SQL(
            "UPDATE {} l SET outcome = %s, run_id = %s, message = %s, updated_at = now() "
            "FROM unnest(%s::text[], %s::text[]) AS t(source_key, etag) "
            "WHERE l.source_key = t.source_key AND l.etag = t.etag AND l.outcome = %s"
        ).format(LEDGER),
        (
            str(Outcome.RUN_FAILED),
            run_id,
            message,
            [e.source_key for e in versions],
            [e.etag for e in versions],
            str(Outcome.NEEDS_RPT),
        ),
    )
    return cursor.rowcount
