"""What Dagster shows of a table's columns: names, types, the rule's descriptions and PII
marks (as `dagster/column_schema`)."""

from dagster import TableColumn, TableSchema

from indici_dagster.core.rules.docs import column_comment
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.types.registry import METADATA_DESCRIPTIONS


def column_schema(rule: Rule, columns: list[tuple[str, str]]) -> TableSchema:
    """The schema of a table of `rule` with these (name, type) columns: each data column with
    the rule's description and mark (also as the tag `pii`), each metadata column with what it
    means."""
    described = []
    for name, type_name in columns:
        doc = rule.doc(name)
        description = column_comment(doc) or METADATA_DESCRIPTIONS.get(name)
        tags = {"pii": doc.pii} if doc is not None and doc.pii else None
        described.append(TableColumn(name, type_name, description=description, tags=tags))
    return TableSchema(columns=described)


def declared_columns(rule: Rule) -> list[tuple[str, str]]:
    """The (name, type) data columns a keyed rule declares; [] for a static rule, whose
    columns are known only once a file has loaded."""
    return [(column.name, column.type) for column in rule.columns]
