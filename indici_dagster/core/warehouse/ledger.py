"""The landing ledger: what became of every landed object version (key + ETag).

Runs record the versions they processed: the partitioned step writes `in_run` with its run
(`run_id`); each file's staging load writes `staged_run_id` and each rpt upsert `rpt_run_id`, in
the transaction that loads or applies the rows (`mark_staged`, `mark_applied`). The sensor
settles each version by its own marks (`ledger_settle`), never by how its run as a whole ended:
`done` once an rpt upsert applied it; `needs_rpt` when a run staged it without applying it (the
sensor requests that step); `run_failed` (needs attention) when no run loaded it into staging,
or its own rpt upsert failed. So a run failing on one file leaves only that file needing
attention, and a version is settled with its successor once a re-sent version loads. The sensor
itself records only versions it refuses (unrecognised names, dates out of range, keys that can
never be read) and requested ones whose run failed before recording them: never a hand-over
Dagster may not have stored. An unchanged file is never requested twice, a re-sent file with new
content is new work, and files of a dataset without a rule wait here until a rule exists.
"""

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.escaping import escape_text
from indici_dagster.core.filenames import LandedFileName
from indici_dagster.core.pipeline_names import LEDGER_TABLE, STAGING_SCHEMA
from indici_dagster.core.storage.base import StoredObject
from indici_dagster.core.warehouse.sql import qualified

LEDGER = qualified(STAGING_SCHEMA, LEDGER_TABLE)

CREATE_LEDGER_TABLE = sql.SQL(
    """
    CREATE TABLE IF NOT EXISTS {ledger} (
        source_key text NOT NULL,
        etag text NOT NULL,
        size bigint,
        file_name text,
        dataset text,
        partition_key text,
        outcome text NOT NULL,
        run_key text,
        run_id text,
        staged_run_id text,
        rpt_run_id text,
        message text,
        first_seen_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source_key, etag)
    );
    DO $$ DECLARE added text; BEGIN
        -- ledgers made before runs recorded themselves and their steps; ALTER only then (it
        -- needs the owner)
        FOREACH added IN ARRAY ARRAY['run_id', 'staged_run_id', 'rpt_run_id'] LOOP
            IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                           WHERE attrelid = {name}::pg_catalog.regclass
                           AND attname = added AND NOT attisdropped) THEN
                EXECUTE 'ALTER TABLE {ledger} ADD COLUMN '
                    || pg_catalog.quote_ident(added) || ' text';
            END IF;
        END LOOP;
    END $$;
    CREATE INDEX IF NOT EXISTS landing_ledger_outcome_idx ON {ledger} (outcome)
    """
).format(ledger=LEDGER, name=sql.Literal(f"{STAGING_SCHEMA}.{LEDGER_TABLE}"))


class Outcome(StrEnum):
    """What became of an object version."""

    IN_RUN = "in_run"
    """A run copied it; the run's end has not been seen yet."""
    DONE = "done"
    """An rpt upsert applied it (after its staging load), or a newer version of its key did."""
    NEEDS_RPT = "needs_rpt"
    """A run that ended loaded it into staging without applying it to rpt: the sensor requests
    the rpt step of its dataset and date (run key `<date>:rpt:<digest>`)."""
    RUN_FAILED = "run_failed"
    """No run loaded it into staging, or its own rpt upsert failed (or the rpt-only run
    requested for it did): needs attention (re-execute the run or backfill the date)."""
    NO_RULE = "no_rule"
    NAME_CLASH = "name_clash"
    UNRECOGNISED = "unrecognised"
    OUT_OF_RANGE = "out_of_range"
    UNREADABLE = "unreadable"


UNSETTLED = (Outcome.IN_RUN, Outcome.NEEDS_RPT, Outcome.RUN_FAILED)
"""Outcomes whose runs the sensor checks every tick; a staging load or an rpt upsert records
itself only on versions in these."""
STEP_COLUMNS = ("run_id", "staged_run_id", "rpt_run_id")
"""The columns runs record themselves in (added to ledgers made before them)."""


@dataclass(frozen=True)
class LedgerEntry:
    """One object version and what the sensor decided for it."""

    source_key: str
    etag: str
    size: int | None
    outcome: Outcome
    file_name: str | None = None
    dataset: str | None = None
    partition_key: str | None = None
    run_key: str | None = None
    message: str | None = None
    run_id: str | None = None


def find_unseen(cursor: Cursor, objects: Sequence[StoredObject]) -> list[StoredObject]:
    """Return the objects whose key + ETag the ledger does not hold, or holds as a name clash
    (looked at again: once one of the pair is gone the other goes through); one query."""
    if not objects:
        return []
    cursor.execute(
        sql.SQL(
            "SELECT t.ordinality - 1 FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY "
            "AS t(source_key, etag, ordinality) WHERE NOT EXISTS (SELECT 1 FROM {} l "
            "WHERE l.source_key = t.source_key AND l.etag = t.etag AND l.outcome <> %s)"
        ).format(LEDGER),
        ([o.key for o in objects], [o.etag for o in objects], str(Outcome.NAME_CLASH)),
    )
    return [objects[index] for (index,) in cursor.fetchall()]


def waiting_for_rule(cursor: Cursor) -> list[LedgerEntry]:
    """Every recorded file whose dataset had no rule when it was handed over."""
    cursor.execute(
        sql.SQL(
            "SELECT source_key, etag, size, outcome, file_name, dataset, partition_key "
            "FROM {} WHERE outcome = %s ORDER BY source_key"
        ).format(LEDGER),
        (str(Outcome.NO_RULE),),
    )
    return [LedgerEntry(k, e, s, Outcome(o), f, d, p) for k, e, s, o, f, d, p in cursor.fetchall()]


def record(cursor: Cursor, entries: Iterable[LedgerEntry]) -> None:
    """Insert or update ledger rows for these object versions (one statement, any number)."""
    rows = list(entries)
    if not rows:
        return
    columns = [
        ("source_key", "text", [e.source_key for e in rows]),
        ("etag", "text", [e.etag for e in rows]),
        ("size", "bigint", [e.size for e in rows]),
        ("file_name", "text", [e.file_name for e in rows]),
        ("dataset", "text", [e.dataset for e in rows]),
        ("partition_key", "text", [e.partition_key for e in rows]),
        ("outcome", "text", [str(e.outcome) for e in rows]),
        ("run_key", "text", [e.run_key for e in rows]),
        ("run_id", "text", [e.run_id for e in rows]),
        ("message", "text", [e.message for e in rows]),
    ]
    cursor.execute(
        sql.SQL(
            "INSERT INTO {ledger} ({names}) SELECT * FROM unnest({arrays}) "
            "ON CONFLICT (source_key, etag) DO UPDATE SET outcome = EXCLUDED.outcome, "
            "run_key = EXCLUDED.run_key, run_id = EXCLUDED.run_id, message = EXCLUDED.message, "
            "updated_at = now()"
        ).format(
            ledger=LEDGER,
            names=sql.SQL(", ").join(sql.Identifier(name) for name, _, _ in columns),
            # the array types are constants of this function, never input
            arrays=sql.SQL(", ").join(sql.SQL(f"%s::{kind}[]") for _, kind, _ in columns),
        ),
        [values for _, _, values in columns],
    )


def processed_entries(
    files: Iterable[tuple[StoredObject, LandedFileName]],
    *,
    refused: Collection[str],
    failed: Collection[str],
    datasets_with_rules: Collection[str],
    run_id: str,
    run_key: str | None,
) -> list[LedgerEntry]:
    """What a run records for the files it copied: `in_run` (settled later by the sensor),
    `no_rule` for datasets without a rule, `name_clash` for the `refused` keys. Keys whose copy
    `failed` are not recorded: the run fails, and the sensor finds them again."""
    entries = []
    for obj, name in files:
        if obj.key in failed:
            continue
        outcome, message = Outcome.IN_RUN, None
        if obj.key in refused:
            outcome, message = Outcome.NAME_CLASH, "another key has the same file name; not copied"
        elif name.dataset not in datasets_with_rules:
            outcome = Outcome.NO_RULE
        entries.append(
            LedgerEntry(
                obj.key,
                obj.etag,
                obj.size,
                outcome,
                name.file_name,
                name.dataset,
                name.partition_key,
                run_key,
                message,
                run_id,
            )
        )
    return entries


def mark_staged(
    cursor: Cursor, dataset: str, partition_key: str, file_name: str, run_id: str
) -> int:
    """Inside the transaction that loads a file into staging: record `run_id` as the run whose
    staging step loaded the unsettled versions of this file (any earlier rpt mark is cleared:
    it described rows this load replaced). Returns how many versions it marked."""
    cursor.execute(
        sql.SQL(
            "UPDATE {} SET staged_run_id = %s, rpt_run_id = NULL, updated_at = now() "
            "WHERE dataset = %s AND partition_key = %s AND file_name = %s AND outcome = ANY(%s)"
        ).format(LEDGER),
        (run_id, dataset, partition_key, file_name, [str(o) for o in UNSETTLED]),
    )
    return cursor.rowcount


def mark_applied(
    cursor: Cursor,
    dataset: str,
    partition_keys: Collection[str],
    run_id: str,
    *,
    only: Collection[str] | None = None,
    excluding: Collection[str] = (),
) -> int:
    """Inside the transaction of an rpt upsert, holding the table's lock: record `run_id` as
    the run whose rpt step applied the unsettled, already staged versions of `dataset` dated
    `partition_keys` (every staged file of those dates is in the upsert's window; an empty file
    has no rows to apply). `only` limits it to these file names, `excluding` leaves out files
    whose upsert failed. Returns how many versions it marked."""
    cursor.execute(
        sql.SQL(
            "UPDATE {} SET rpt_run_id = %s, updated_at = now() WHERE dataset = %s "
            "AND partition_key = ANY(%s) AND staged_run_id IS NOT NULL AND outcome = ANY(%s) "
            "AND (%s::text[] IS NULL OR file_name = ANY(%s::text[])) "
            "AND NOT (file_name = ANY(%s::text[]))"
        ).format(LEDGER),
        (
            run_id,
            dataset,
            sorted(partition_keys),
            [str(o) for o in UNSETTLED],
            None if only is None else sorted(only),
            None if only is None else sorted(only),
            sorted(excluding),
        ),
    )
    return cursor.rowcount


def name_clashes(cursor: Cursor, limit: int = 50) -> list[tuple[str, str | None]]:
    """(key, partition key) of versions refused because another key has the same file name."""
    cursor.execute(
        sql.SQL(
            "SELECT source_key, partition_key FROM {} WHERE outcome = %s ORDER BY 1 LIMIT %s"
        ).format(LEDGER),
        (str(Outcome.NAME_CLASH), limit),
    )
    return cursor.fetchall()


LEDGER_COLUMNS = (
    "ledger",
    "source_key",
    "etag",
    "partition_key",
    "outcome",
    "runs",
    "updated_at",
    "note",
)
"""The header of `file_states`' lines."""


def file_states(cursor: Cursor, file_name: str) -> list[str]:
    """One line per ledger row of a file (every key and version it landed as), saying whether
    it is done or needs attention; for `indici audit`."""
    cursor.execute(
        sql.SQL(
            "SELECT source_key, etag, outcome, partition_key, run_id, staged_run_id, rpt_run_id, "
            "message, updated_at FROM {} WHERE file_name = %s ORDER BY first_seen_at, source_key"
        ).format(LEDGER),
        (file_name,),
    )
    attention = {
        Outcome.IN_RUN: "its run has not been seen to finish",
        Outcome.NEEDS_RPT: "staged without its rpt step; the sensor requests that step",
        Outcome.RUN_FAILED: "NEEDS ATTENTION: it did not load (its run ended before loading it "
        "into staging, or its own load or rpt upsert failed); re-execute the run or backfill "
        "the date",
        Outcome.NAME_CLASH: "NEEDS ATTENTION: another key has the same file name",
    }
    lines = []
    for (
        key,
        etag,
        outcome,
        partition_key,
        run_id,
        staged,
        applied,
        message,
        updated_at,
    ) in cursor.fetchall():
        note = attention.get(outcome, message or "")
        lines.append(
            f"ledger | {escape_text(key)} | {etag} | {partition_key} | {outcome} | "
            f"run {run_id or '-'} (staged by {staged or '-'}, rpt by {applied or '-'}) | "
            f"{updated_at:%Y-%m-%d %H:%M:%S%z} | {note}"
        )
    return lines
