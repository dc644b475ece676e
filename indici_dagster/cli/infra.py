"""`indici infra plan|apply`: provision what INDICI_LANDING, INDICI_PARTITIONED, INDICI_RULES
(and INDICI_CLOUDWATCH_PREFIX) name; `plan` changes nothing, `apply` is idempotent."""

import argparse
from typing import Any

from indici_dagster.cli.errors import CliError
from indici_dagster.core.infra.aws_apply import apply_changes
from indici_dagster.core.infra.aws_read import Clients, connect, read_current
from indici_dagster.core.infra.desired import (
    ARCHIVE_CLASS,
    InfraError,
    InfraOptions,
    check_options,
    desired_aspects,
    names_from,
)
from indici_dagster.core.infra.plan import Change, conflicts, describe_change, plan_changes
from indici_dagster.core.settings import Settings

NO_CHANGES = "no changes"


def _options(args: argparse.Namespace) -> InfraOptions:
    options = InfraOptions(
        tiering_days=args.tiering_days,
        archive_days=args.archive_days,
        kms_key=args.kms_key,
        log_retention_days=args.log_retention_days,
    )
    try:
        check_options(options)
    except InfraError as error:
        raise CliError(str(error), exit_code=2) from None
    return options


def _plan(args: argparse.Namespace, settings: Settings) -> tuple[Clients, list[Change]]:
    options = _options(args)
    try:
        names = names_from(settings)
        clients = connect(settings.aws_region)
        aspects = desired_aspects(names, options, clients.region, clients.account)
        return clients, plan_changes(aspects, read_current(clients, aspects))
    except InfraError as error:
        raise CliError(str(error)) from None


def infra_plan(args: argparse.Namespace, settings: Settings) -> int:
    """Print what `apply` would change, one line each (or "no changes"); change nothing.
    Exit 1 if a change is a conflict `apply` would refuse."""
    clients, changes = _plan(args, settings)
    print(f"account {clients.account}, region {clients.region}")
    for change in changes:
        print(describe_change(change))
    if not changes:
        print(NO_CHANGES)
        return 0
    print(f"{len(changes)} changes planned, nothing changed: run indici infra apply to make them")
    return 1 if conflicts(changes) else 0


def infra_apply(args: argparse.Namespace, settings: Settings) -> int:
    """Make the planned changes, printing each once made (or "no changes")."""
    clients, changes = _plan(args, settings)
    print(f"account {clients.account}, region {clients.region}")
    if not changes:
        print(NO_CHANGES)
        return 0
    try:
        count = apply_changes(clients, changes, print)
    except InfraError as error:
        raise CliError(str(error)) from None
    print(f"applied {count} changes")
    return 0


def _days(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days")
    return int(value)


def add_infra_commands(commands: Any) -> None:
    """Add `indici infra plan` and `indici infra apply` to the `indici` subcommands."""
    infra = commands.add_parser(
        "infra", help="provision the buckets, rules table, IAM policies and log groups"
    )
    infra_commands = infra.add_subparsers(dest="infra_command", required=True)
    for name, handler, summary in (
        ("plan", infra_plan, "print what apply would change (changes nothing)"),
        ("apply", infra_apply, "create or update them (idempotent)"),
    ):
        command = infra_commands.add_parser(name, help=summary)
        command.add_argument(
            "--kms-key", help="encrypt both buckets with this KMS key ARN (default: SSE-S3)"
        )
        command.add_argument(
            "--tiering-days",
            type=_days,
            default=30,
            help="move objects to Intelligent-Tiering after this many days (default: %(default)s)",
        )
        command.add_argument(
            "--archive-days",
            type=_days,
            default=None,
            help=f"move objects to {ARCHIVE_CLASS} after this many days (default: never)",
        )
        command.add_argument(
            "--log-retention-days",
            type=_days,
            default=400,
            help="keep the CloudWatch outcome groups' events this long (default: %(default)s)",
        )
        command.set_defaults(handler=handler)
