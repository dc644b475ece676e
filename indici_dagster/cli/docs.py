"""`indici docs`: the data dictionary, as Markdown, from the rules and the warehouse."""

import argparse
from pathlib import Path

from indici_dagster.cli.context import require_catalog, warehouse_dsn
from indici_dagster.cli.errors import CliError
from indici_dagster.core.dictionary.facts import dataset_facts
from indici_dagster.core.dictionary.markdown import data_dictionary
from indici_dagster.core.rules.store import load_rules
from indici_dagster.core.settings import Settings
from indici_dagster.core.text import printable
from indici_dagster.core.warehouse.facade import Warehouse


def docs(args: argparse.Namespace, settings: Settings) -> int:
    """Write the data dictionary of every dataset to `-o FILE`, or print it (read-only)."""
    rules = load_rules(settings.rules)
    dsn = warehouse_dsn(settings)
    require_catalog(dsn)
    warehouse = Warehouse(dsn, settings.timezone)
    facts = {dataset: dataset_facts(warehouse, rule) for dataset, rule in rules.items()}
    text = data_dictionary(rules, facts)
    if args.output is None:
        print(text)
        return 0
    try:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot write {printable(args.output)}: {type(error).__name__}") from None
    print(f"wrote the data dictionary of {len(rules)} datasets to {printable(args.output)}")
    return 0


def add_docs_command(commands: argparse._SubParsersAction) -> None:
    """Add `docs` to the `indici` command."""
    dictionary = commands.add_parser(
        "docs", help="write the data dictionary (Markdown) from the rules and the warehouse"
    )
    dictionary.add_argument("-o", "--output", help="file to write (default: print it)")
    dictionary.set_defaults(handler=docs)
