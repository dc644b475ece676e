"""`indici status [--date YYYY-MM-DD]`: one date's audit summary for a person, with every file
needing attention. The counting is the summary asset's (`core/warehouse/audit_summary.py`),
computed from the audit log and the ledger now, so it is current even before the asset ran."""

import argparse
import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from indici_dagster.cli.context import require_catalog, warehouse_dsn
from indici_dagster.cli.errors import CliError
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.rules.store import load_rules
from indici_dagster.core.settings import Settings
from indici_dagster.core.text import printable
from indici_dagster.core.warehouse import audit_summary
from indici_dagster.core.warehouse.dsn import describe_dsn
from indici_dagster.core.warehouse.facade import Warehouse

_COLUMNS = (
    ("received", "files_received"),
    ("loaded", "files_loaded"),
    ("empty", "files_empty"),
    ("failed", "files_failed"),
    ("no_rule", "files_no_rule"),
    ("not_yet", "files_pending"),
    ("rows_read", "rows_read"),
    ("loaded_rows", "rows_loaded"),
    ("inserted", "rows_inserted"),
    ("updated", "rows_updated"),
    ("unchanged", "rows_unchanged"),
    ("rejected", "rows_rejected"),
)
"""(heading, DailySummary attribute) of each printed column."""

_OUTCOME_WORDS = {
    "failed": "FAILED",
    "no_rule": "NO RULE",
    "pending": "NOT YET LOADED",
    "loaded": "loaded",
    "empty": "empty",
}


def _date(given: str | None, timezone: str) -> tuple[str, str]:
    """The date asked for and how it was chosen; the default is yesterday in the zone."""
    if given is None:
        yesterday = dt.datetime.now(ZoneInfo(timezone)).date() - dt.timedelta(days=1)
        return yesterday.isoformat(), f"yesterday in {timezone}"
    try:
        return dt.date.fromisoformat(given).isoformat(), "as asked"
    except ValueError:
        raise CliError(
            f"--date {printable(given)} is not a date of the form YYYY-MM-DD", exit_code=2
        ) from None


def status_lines(
    rows: list[audit_summary.DailySummary], files: list[audit_summary.FileState]
) -> list[str]:
    """The table of `rows` (one line per dataset, then the total) and the files needing
    attention among `files`, as printed lines."""
    width = max([len("dataset"), *(len(r.dataset) for r in rows)])
    lines = [f"{'dataset':<{width}} " + " ".join(f"{h:>{len(h)}}" for h, _ in _COLUMNS)]
    for label, values in [(r.dataset, r) for r in rows]:
        cells = [f"{getattr(values, a):>{len(h)}}" for h, a in _COLUMNS]
        lines.append(f"{printable(label):<{width}} " + " ".join(cells))
    totals = [sum(getattr(r, a) for r in rows) for _, a in _COLUMNS]
    lines.append(
        f"{'total':<{width}} "
        + " ".join(f"{t:>{len(h)}}" for t, (h, _) in zip(totals, _COLUMNS, strict=True))
    )
    attention = [f for f in files if f.needs_attention]
    if not attention:
        lines.append("nothing needs attention: every file of the date was loaded or was empty")
        return lines
    lines.append(f"{len(attention)} file(s) need attention:")
    for f in attention:
        latest = f"{f.latest_step} {f.latest_status}" if f.latest_step else "no audit row yet"
        lines.append(
            " | ".join(
                [
                    f"  {_OUTCOME_WORDS.get(f.outcome, f.outcome)}",
                    printable(f.file_name),
                    f"ledger {f.ledger_outcome or '-'}",
                    f"latest {latest}",
                    printable(f.message or ""),
                ]
            )
        )
    lines.append("see one file's history with `indici audit <file name>`")
    return lines


def silent_datasets(rules: Mapping[str, Rule], rows: list[audit_summary.DailySummary]) -> list[str]:
    """The datasets expected every day (keyed, `max_file_age_hours` above 0) that have no file
    dated this date: the summary has no row for them, so they are named apart."""
    present = {row.dataset for row in rows}
    return sorted(
        dataset
        for dataset, rule in rules.items()
        if not rule.is_static and rule.max_file_age_hours > 0 and dataset not in present
    )


def status(args: argparse.Namespace, settings: Settings) -> int:
    """Print one date's audit summary (default: yesterday in the deployment's time zone) and
    every file needing attention: failed, without a rule, not yet loaded, or not settled by the
    ledger. Read-only; exit 0 whatever the files' state (1 only if the command failed)."""
    date, chosen = _date(args.date, settings.timezone)
    dsn = warehouse_dsn(settings)
    require_catalog(dsn)
    warehouse = Warehouse(dsn, settings.timezone)
    with warehouse.connection() as connection, connection.cursor() as cursor:
        rows = audit_summary.summarise(cursor, [date])
        files = audit_summary.file_states(cursor, [date])
        latest = audit_summary.latest_date(cursor)
        connection.rollback()
    print(f"files dated {date} ({chosen}), from the audit log and ledger of {describe_dsn(dsn)}")
    if not rows:
        print(f"no file is dated {date}; the newest date with files is {latest or 'none'}")
        return 0
    for line in status_lines(rows, files):
        print(line)
    silent = silent_datasets(load_rules(settings.rules), rows)
    if silent:
        print(f"no file dated {date} from {len(silent)} dataset(s): {', '.join(silent)}")
    return 0


def add_status_command(commands: argparse._SubParsersAction) -> None:
    """Add `indici status` to the command's subcommands."""
    parser = commands.add_parser(
        "status", help="one date's files per dataset, and what needs attention"
    )
    parser.add_argument(
        "--date", help="YYYY-MM-DD (default: yesterday in the deployment's time zone)"
    )
    parser.set_defaults(handler=status)
