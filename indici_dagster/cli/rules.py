"""`indici rules`: check transformation rules (and warn of unmarked personal information),
and copy them between a YAML file and DynamoDB."""

import argparse
import sys

from indici_dagster.cli.errors import CliError
from indici_dagster.core.filenames import UnrecognisedFileNameError, parse_file_name
from indici_dagster.core.quality.pii import SAMPLE_VALUES, unmarked_pii
from indici_dagster.core.rules.model import Rule, parse_rules
from indici_dagster.core.rules.store import (
    DYNAMODB_SCHEME,
    load_rules,
    read_dynamodb_rules,
    read_rules_file,
    write_dynamodb_rules,
    write_rules_file,
)
from indici_dagster.core.settings import Settings
from indici_dagster.core.text import printable


def _rules_location(settings: Settings, given: str | None) -> str | None:
    return given or settings.rules


def _dynamodb_table(settings: Settings, given: str | None) -> str:
    if given:
        return given
    if settings.rules and settings.rules.startswith(DYNAMODB_SCHEME):
        return settings.rules[len(DYNAMODB_SCHEME) :]
    raise CliError("name the DynamoDB table with --table or set INDICI_RULES=dynamodb://<table>")


def rules_validate(args: argparse.Namespace, settings: Settings) -> int:
    """Check a rules file (or table) and list its datasets."""
    rules = load_rules(_rules_location(settings, args.path))
    for rule in rules.values():
        kind = "static" if rule.is_static else f"key ({', '.join(rule.primary_key)})"
        dataset, table = printable(rule.dataset), printable(rule.table)
        print(f"{dataset:<28} -> {table:<28} {len(rule.columns):>3} columns, {printable(kind)}")
    samples = _samples(args.sample, rules, settings.timezone)
    warnings = [w for rule in rules.values() for w in unmarked_pii(rule, samples.get(rule.dataset))]
    for warning in warnings:
        print(f"warning: {printable(warning)}", file=sys.stderr)
    print(f"{len(rules)} rules are valid" + (f", {len(warnings)} warning(s)" if warnings else ""))
    return 0


def _samples(
    paths: list[str], rules: dict[str, Rule], timezone: str
) -> dict[str, dict[str, list[object]]]:
    """dataset -> source column -> its first text values, from sample Parquet files named as
    landed files are (the name says the dataset)."""
    import pyarrow as pa

    from indici_dagster.core.parquet.reader import UnreadableParquetError, open_parquet

    samples: dict[str, dict[str, list[object]]] = {}
    for path in paths:
        try:
            dataset = parse_file_name(path, timezone).dataset
        except UnrecognisedFileNameError as error:
            raise CliError(f"--sample {printable(path)}: {error}") from None
        if dataset not in rules:
            raise CliError(f"--sample {printable(path)}: no rule for dataset {dataset}")
        try:
            with open(path, "rb") as handle:
                parquet = open_parquet(handle)
                text = [f.name for f in parquet.schema_arrow if pa.types.is_string(f.type)]
                batch = next(parquet.iter_batches(batch_size=SAMPLE_VALUES, columns=text), None)
        except (OSError, UnreadableParquetError) as error:
            reason = error if isinstance(error, UnreadableParquetError) else type(error).__name__
            raise CliError(f"--sample {printable(path)}: {reason}") from None
        columns = samples.setdefault(dataset, {})
        for name in text:
            columns[name] = [] if batch is None else batch.column(name).to_pylist()
    return samples


def rules_push(args: argparse.Namespace, settings: Settings) -> int:
    """Validate a rules file, then copy it into DynamoDB."""
    rules = parse_rules(read_rules_file(args.path))
    table = _dynamodb_table(settings, args.table)
    count = write_dynamodb_rules(rules, table, replace=args.replace)
    print(f"pushed {count} rules to DynamoDB table {table}")
    return 0


def rules_pull(args: argparse.Namespace, settings: Settings) -> int:
    """Copy the rules in DynamoDB into a YAML file (validated first)."""
    table = _dynamodb_table(settings, args.table)
    rules = parse_rules(read_dynamodb_rules(table))
    write_rules_file(rules, args.output)
    print(f"pulled {len(rules)} rules from DynamoDB table {table} into {args.output}")
    return 0


def add_rules_commands(commands: argparse._SubParsersAction) -> None:
    """Add `rules validate`, `rules push` and `rules pull` to the `indici` command."""
    rules = commands.add_parser("rules", help="check and copy transformation rules")
    rule_commands = rules.add_subparsers(dest="rules_command", required=True)
    validate = rule_commands.add_parser("validate", help="check a rules file or table")
    validate.add_argument("path", nargs="?", help="YAML file or dynamodb://table")
    validate.add_argument(
        "--sample",
        action="append",
        default=[],
        metavar="FILE",
        help="a landed Parquet file to look for unmarked NHI numbers in (repeatable)",
    )
    validate.set_defaults(handler=rules_validate)
    push = rule_commands.add_parser("push", help="copy a YAML rules file into DynamoDB")
    push.add_argument("path", help="YAML rules file")
    push.add_argument("--table", help="DynamoDB table (default: from INDICI_RULES)")
    push.add_argument("--replace", action="store_true", help="delete rules not in the file")
    push.set_defaults(handler=rules_push)
    pull = rule_commands.add_parser("pull", help="copy the rules in DynamoDB into a YAML file")
    pull.add_argument("--table", help="DynamoDB table (default: from INDICI_RULES)")
    pull.add_argument("--output", "-o", default="rules.yaml", help="file to write")
    pull.set_defaults(handler=rules_pull)
