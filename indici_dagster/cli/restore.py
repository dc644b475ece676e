"""`indici restore`: request restores of the archived files of a date range."""

import argparse

from indici_dagster.cli.errors import CliError
from indici_dagster.core.landing.restore import (
    RestoreInputError,
    check_request,
    parse_range,
    restore_range,
)
from indici_dagster.core.rules.store import load_rules
from indici_dagster.core.settings import Settings
from indici_dagster.core.storage.archive import TIERS
from indici_dagster.core.storage.open_storage import open_storage

DEFAULT_DAYS = 7
"""How long S3 keeps a restored copy readable: long enough to replay the dates."""


def restore(args: argparse.Namespace, settings: Settings) -> int:
    """Request a restore of every archived landed and partitioned file of the dates, and say
    per file what was requested, what is already being restored, what is available."""
    try:
        check_request(args.days, args.tier)
        known = set(load_rules(settings.rules)) if args.dataset is not None else set()
        wanted = parse_range(args.first, args.last, args.dataset, known)
    except RestoreInputError as error:
        raise CliError(str(error), exit_code=2) from None
    report = restore_range(
        open_storage(settings.landing),
        open_storage(settings.partitioned),
        wanted,
        timezone=settings.timezone,
        days=args.days,
        tier=args.tier,
    )
    for location in report.requested:
        print(f"requested | {location}")
    for location in report.restoring:
        print(f"already being restored | {location}")
    for location in report.available:
        print(f"available | {location}")
    scope = f" of dataset {wanted.dataset}" if wanted.dataset else ""
    print(
        f"{wanted.first} to {wanted.last}{scope}: requested {len(report.requested)} restore(s) "
        f"({args.tier}, readable for {args.days} days), {len(report.restoring)} already being "
        f"restored, {len(report.available)} available"
    )
    if report.requested or report.restoring:
        print(
            "once the restores complete (hours; Deep Archive up to 48), run this again to check, "
            "then replay the dates (backfill them)"
        )
    return 0


def add_restore_command(commands: argparse._SubParsersAction) -> None:
    """Add `indici restore --from YYYY-MM-DD --to YYYY-MM-DD [--dataset D] [--days N]
    [--tier T]`."""
    command = commands.add_parser(
        "restore", help="request restores of archived files of a date range (S3)"
    )
    command.add_argument("--from", dest="first", required=True, help="first date, YYYY-MM-DD")
    command.add_argument("--to", dest="last", required=True, help="last date, YYYY-MM-DD")
    command.add_argument("--dataset", help="only this dataset (default: every dataset)")
    command.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        help="days a restored copy stays readable (default: %(default)s)",
    )
    command.add_argument(
        "--tier", default="Standard", choices=TIERS, help="restore tier (default: %(default)s)"
    )
    command.set_defaults(handler=restore)
