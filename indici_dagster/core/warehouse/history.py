"""A keyed dataset's history: every version of every rpt row, and rpt as of any time.

Kept by the rpt upsert in its own transaction (`before_upsert`, `after_upsert`), so rpt and its
history never disagree; rebuilt from staging on demand (`rebuild_history`). The objects are
created and widened only by the owner's `sync_history` (`owner_history_ddl.py`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core import pipeline_names
from indici_dagster.core.db_errors import CleanError, ErrorKind
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.warehouse import history_sql
from indici_dagster.core.warehouse import sql as statements
from indici_dagster.core.warehouse.catalog import existing_columns, lock, table_exists
from indici_dagster.core.warehouse.connections import Connections
from indici_dagster.core.warehouse.ddl_locks import run_ddl

Window = dict[str, datetime]


class NoHistoryError(CleanError):
    """A table has no history to read or rebuild (configuration: not retried)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorKind.PERMANENT)


def has_history(cursor: Cursor, table: str) -> bool:
    """Whether `rpt.<table>_history` exists."""
    return table_exists(cursor, pipeline_names.RPT_SCHEMA, pipeline_names.history_view(table))


def kept_off_note(cursor: Cursor, rule: Rule) -> str | None:
    """For a keyed rule with `history: false` whose history exists: one line saying it is kept,
    not dropped, and no longer brought up to date; else None."""
    if rule.is_static or rule.history or not has_history(cursor, rule.table):
        return None
    return (
        f"rule {rule.dataset}: history: false, but rpt.{rule.table}_history exists: kept, not "
        "dropped, and no longer kept up to date (turn history back on and run "
        f"`indici history rebuild {rule.table}`, or drop it by hand)"
    )


def state_before_upsert(cursor: Cursor, rule: Rule) -> tuple[bool, bool]:
    """(rpt table exists, its history exists), before an upsert (for `note_after_upsert`)."""
    return (
        table_exists(cursor, pipeline_names.RPT_SCHEMA, rule.table),
        has_history(cursor, rule.table),
    )


def note_after_upsert(cursor: Cursor, rule: Rule, before: tuple[bool, bool]) -> str | None:
    """The line an upsert's audit rows carry about history, if any: `kept_off_note`, or, when
    this upsert started the history of an rpt table that already existed (loaded before history
    existed, or while it was off), that the versions before are not in it yet."""
    off = kept_off_note(cursor, rule)
    if off is not None or not rule.history:
        return off
    rpt_existed, history_existed = before
    if rpt_existed and not history_existed:
        return (
            f"rpt.{rule.table}_history started with this upsert: the versions loaded before are "
            f"not in it yet (run `indici history rebuild {rule.table}`)"
        )
    return None


def sync(cursor: Cursor, rule: Rule) -> None:
    """Create the history of the rule's rpt table, or widen it to rpt's columns, through the
    owner's function; nothing when it is up to date."""
    run_ddl(
        cursor,
        history_sql.sync_history(rule.table, rule.primary_key),
        table=f"{pipeline_names.RPT_SCHEMA}.{pipeline_names.history_view(rule.table)}",
    )


def before_upsert(cursor: Cursor, rule: Rule, window: Window) -> None:
    """Inside the upsert's transaction, before it: bring the history up to rpt's columns and
    copy into it each current row the window's upsert will replace by another file's row."""
    sync(cursor, rule)
    rpt_columns = list(existing_columns(cursor, pipeline_names.RPT_SCHEMA, rule.table))
    cursor.execute(history_sql.archive_displaced(rule.table, rpt_columns, rule.primary_key), window)


def after_upsert(
    cursor: Cursor, rule: Rule, window: Window, applied: Sequence[tuple[str, int]]
) -> None:
    """Inside the upsert's transaction, after it: add the window's versions rpt does not hold
    as current (late ones, superseded ones), then set `valid_to` of every key that got one.

    `applied`: (file, rows it inserted or updated in rpt) per file of the window. When the
    window is one file and it made every one of its keys current, it has no other version, and
    the search for them (a look-up in rpt per staged row) is skipped."""
    if len(applied) == 1:
        cursor.execute(history_sql.window_keys(rule.table, rule.primary_key), window)
        every_key_current = cursor.fetchone()[0] == applied[0][1]
    else:
        every_key_current = False
    if not every_key_current:
        names = [c.name for c in rule.columns]
        as_text = [c.name for c in rule.columns if c.type == "json"]
        cursor.execute(
            history_sql.insert_past_versions(rule.table, names, rule.primary_key, as_text), window
        )
    cursor.execute(history_sql.set_valid_to(rule.table, rule.primary_key))


@dataclass(frozen=True)
class Rebuilt:
    """What `rebuild_history` did: past versions written, keys in rpt."""

    past_versions: int
    current_rows: int


def rebuild_history(connections: Connections, rule: Rule, lock_timeout: str) -> Rebuilt:
    """Rebuild the history of a keyed rule's rpt table from staging, in one transaction under
    the table's lock: every staged version older than rpt's current row of its key becomes a
    past version (rpt itself is not changed). For tables loaded before history existed, or
    after a rule change. Raises `NoHistoryError` for a static rule, a rule with
    `history: false`, or a table with no rpt rows yet."""
    if rule.is_static:
        raise NoHistoryError(f"rule {rule.dataset}: a static dataset has no history")
    if not rule.history:
        raise NoHistoryError(
            f"rule {rule.dataset}: history: false; set it back on before rebuilding"
        )
    with connections.connection() as connection, connection.cursor() as cursor:
        lock(cursor, rule.table, lock_timeout)
        for schema in (pipeline_names.STAGING_SCHEMA, pipeline_names.RPT_SCHEMA):
            if not table_exists(cursor, schema, rule.table):
                raise NoHistoryError(
                    f"rule {rule.dataset}: table {schema}.{rule.table} does not exist yet"
                )
        sync(cursor, rule)
        cursor.execute(history_sql.clear_past(rule.table))
        names = [c.name for c in rule.columns]
        as_text = [c.name for c in rule.columns if c.type == "json"]
        cursor.execute(statements.ALLOW_SEQUENTIAL_SCANS)
        cursor.execute(
            history_sql.insert_past_versions(
                rule.table, names, rule.primary_key, as_text, whole_table=True
            )
        )
        past_versions = cursor.rowcount
        cursor.execute(history_sql.set_valid_to(rule.table, rule.primary_key))
        cursor.execute(
            sql.SQL("SELECT count(*) FROM {}").format(
                statements.qualified(pipeline_names.RPT_SCHEMA, rule.table)
            )
        )
        (current_rows,) = cursor.fetchone()
        connection.commit()
    return Rebuilt(past_versions, current_rows)
