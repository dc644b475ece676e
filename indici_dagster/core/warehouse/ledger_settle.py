"""Settling the ledger: which versions are `done`, which need their rpt step, which need attention.

Each version is settled by its own outcome, never by how its run as a whole ended: the runs that
loaded and applied it record themselves on it (`staged_run_id`, `rpt_run_id`) in the very
transaction that loads its rows into staging or applies them to rpt, so a version with
`rpt_run_id` is in rpt: `done`, even when its run failed on another file. A version its run
staged but did not apply becomes `needs_rpt` (the sensor requests its rpt step), unless the
audit log says its own rpt upsert failed; a version its run did not stage is `run_failed`
(needs attention), with the reason its audit rows give. So only the files that did not load
need attention. A version replaced by a newer version of the same key that is `done` is
settled with it. A run Dagster does not know (deleted by retention, or another instance's) is
judged from the ledger and the audit log alone, and said once, when its versions settle.
Pure decisions and set-based statements; the sensor asks Dagster only whether runs ended.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.pipeline_names import AUDIT_TABLE, LEDGER_TABLE, STAGING_SCHEMA
from indici_dagster.core.warehouse.ledger import (
    LEDGER,
    STEP_COLUMNS,
    UNSETTLED,
    LedgerEntry,
    Outcome,
)
from indici_dagster.core.warehouse.sql import qualified

AUDIT = qualified(STAGING_SCHEMA, AUDIT_TABLE)
MAX_NAMED_FILES = 3
"""Files named in one attention line; the rest are counted."""


class RunEnd(StrEnum):
    """How a run stands, as far as settling goes."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCELED = "canceled"
    UNFINISHED = "unfinished"
    UNKNOWN = "unknown"
    """Not in this Dagster instance (deleted, or another instance's run)."""


@dataclass(frozen=True)
class UnsettledVersion:
    """One unsettled version, the runs that recorded it, and what its audit rows say."""

    source_key: str
    etag: str
    outcome: Outcome
    run_id: str
    staged_run_id: str | None
    rpt_run_id: str | None
    dataset: str | None
    file_name: str | None
    partition_key: str | None
    staging_failed: bool = False
    """Its run audited its staging load as `error`."""
    rpt_failed: bool = False
    """The run that staged it audited its rpt upsert as `error`."""


@dataclass(frozen=True)
class Decision:
    """What to make of a version: a new outcome (None: leave it) and its message, and why it
    needs attention (None: it does not, or it was said when it settled)."""

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


def unsettled_versions(cursor: Cursor, limit: int = 2000) -> list[UnsettledVersion]:
    """The unsettled versions a run recorded, with their audit evidence; those already
    `run_failed` last, so a pile of them never keeps new versions from settling."""
    cursor.execute(
        sql.SQL(
            "SELECT l.source_key, l.etag, l.outcome, l.run_id, l.staged_run_id, l.rpt_run_id, "
            "l.dataset, l.file_name, l.partition_key, "
            "EXISTS (SELECT 1 FROM {audit} a WHERE a.run_id = l.run_id AND a.step = 'staging' "
            "AND a.status = 'error' AND a.source_file = l.file_name "
            "AND a.dataset IS NOT DISTINCT FROM l.dataset), "
            "EXISTS (SELECT 1 FROM {audit} a WHERE a.run_id = l.staged_run_id AND a.step = 'rpt' "
            "AND a.status = 'error' AND a.source_file = l.file_name "
            "AND a.dataset IS NOT DISTINCT FROM l.dataset) "
            "FROM {ledger} l WHERE l.outcome = ANY(%s) AND l.run_id IS NOT NULL "
            "ORDER BY l.outcome = %s, l.updated_at, l.source_key LIMIT %s"
        ).format(audit=AUDIT, ledger=LEDGER),
        ([str(o) for o in UNSETTLED], str(Outcome.RUN_FAILED), limit),
    )
    return [
        UnsettledVersion(k, e, Outcome(o), r, s, a, d, f, p, sf, rf)
        for k, e, o, r, s, a, d, f, p, sf, rf in cursor.fetchall()
    ]


def decide(version: UnsettledVersion, ends: Mapping[str, RunEnd]) -> Decision:
    """Pure: `done` once a run applied the version to rpt; otherwise wait while a run that
    recorded it has not ended; `needs_rpt` when a run staged it and its rpt upsert did not fail;
    `run_failed` when its rpt upsert failed or no run loaded it into staging. A version already
    `run_failed` stays so and needs attention every tick while its run is known; once its run
    is unknown to Dagster it is said no more (it was said when it settled)."""
    if version.rpt_run_id:
        return Decision(Outcome.DONE, None)
    run = ends.get(version.run_id, RunEnd.UNKNOWN)
    staged_by = ends.get(version.staged_run_id or "", RunEnd.UNKNOWN)
    if RunEnd.UNFINISHED in (run, staged_by):
        return Decision()
    if version.outcome is Outcome.RUN_FAILED:
        return Decision(attention=None if run is RunEnd.UNKNOWN else _why(version, run))
    if version.staged_run_id and not version.rpt_failed:
        return Decision(Outcome.NEEDS_RPT, "staged by a run that did not apply it to rpt")
    why = _why(version, run)
    return Decision(Outcome.RUN_FAILED, why, why)


def _why(version: UnsettledVersion, run: RunEnd) -> str:
    """Why a version did not load, from its audit rows and how its run ended."""
    if version.staged_run_id and version.rpt_failed:
        return "its rpt upsert failed"
    if version.staged_run_id:
        return f"its rpt step ended {run} without applying it"
    if version.staging_failed:
        return "its staging load failed"
    if run is RunEnd.UNKNOWN:
        return "its run is unknown to Dagster (deleted, or another instance's) and did not stage it"
    if run is RunEnd.SUCCESS:
        return "its run succeeded without loading it into staging"
    return f"its run ended {run} before loading it into staging"


def attention_lines(
    decided: Iterable[tuple[UnsettledVersion, Decision]], ends: Mapping[str, RunEnd]
) -> list[str]:
    """One line per run and reason, naming the files that did not load (a few, then a count)."""
    by_run: dict[tuple[str, str], list[UnsettledVersion]] = defaultdict(list)
    for version, decision in decided:
        if decision.attention:
            by_run[(version.run_id, decision.attention)].append(version)
    lines = []
    for (run_id, why), versions in sorted(by_run.items()):
        names = sorted({v.file_name or v.source_key for v in versions})
        named = ", ".join(names[:MAX_NAMED_FILES])
        more = f" and {len(names) - MAX_NAMED_FILES} more" if len(names) > MAX_NAMED_FILES else ""
        dates = sorted({v.partition_key or "?" for v in versions})
        span = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
        ended = ends.get(run_id, RunEnd.UNKNOWN)
        how = "unknown to Dagster" if ended is RunEnd.UNKNOWN else f"ended {ended}"
        lines.append(
            f"run {run_id} ({span}, {how}): {len(names)} file(s) did not load "
            f"({named}{more}): {why}; see `indici audit FILE`, then re-execute the run or "
            "backfill the date"
        )
    return lines


def settle_versions(cursor: Cursor, decided: Sequence[tuple[UnsettledVersion, Decision]]) -> int:
    """Give each version its decision's outcome, if it is still as it was read (a step that
    recorded itself since is left for the next tick); one statement; returns how many."""
    rows = [(v, d) for v, d in decided if d.outcome is not None and d.outcome is not v.outcome]
    if not rows:
        return 0
    cursor.execute(
        sql.SQL(
            "UPDATE {} l SET outcome = t.outcome, message = t.message, updated_at = now() "
            "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::text[]) AS t(source_key, etag, was, staged, applied, outcome, message) "
            "WHERE l.source_key = t.source_key AND l.etag = t.etag AND l.outcome = t.was "
            "AND l.staged_run_id IS NOT DISTINCT FROM t.staged "
            "AND l.rpt_run_id IS NOT DISTINCT FROM t.applied"
        ).format(LEDGER),
        [
            [v.source_key for v, _ in rows],
            [v.etag for v, _ in rows],
            [str(v.outcome) for v, _ in rows],
            [v.staged_run_id for v, _ in rows],
            [v.rpt_run_id for v, _ in rows],
            [str(d.outcome) for _, d in rows],
            [d.message for _, d in rows],
        ],
    )
    return cursor.rowcount


def settle_replaced(cursor: Cursor) -> int:
    """Settle `done` every unsettled version of a key whose newer version (first seen later) is
    `done`: the file was re-sent and its successor loaded; returns how many."""
    cursor.execute(
        sql.SQL(
            "UPDATE {ledger} l SET outcome = %s, message = %s, updated_at = now() "
            "WHERE l.outcome = ANY(%s) AND EXISTS (SELECT 1 FROM {ledger} n "
            "WHERE n.source_key = l.source_key AND n.etag <> l.etag AND n.outcome = %s "
            "AND n.first_seen_at > l.first_seen_at)"
        ).format(ledger=LEDGER),
        (
            str(Outcome.DONE),
            "replaced by a newer version of the file, which loaded",
            [str(o) for o in UNSETTLED],
            str(Outcome.DONE),
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
