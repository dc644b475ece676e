"""The rules' descriptions and PII marks become COMMENTs on the staging and rpt tables."""

from dataclasses import replace

from indici_dagster.core.rules.model import parse_rule
from indici_dagster.core.warehouse.comments import ensure_comments
from indici_dagster_tests.core.warehouse.test_row_counts import STATIC, load, upsert, visits
from indici_dagster_tests.support.common import parquet_bytes, query

RULE = parse_rule(
    {
        "dataset": "Visits",
        "description": "One row per visit.",
        "primary_key": ["VisitID"],
        "columns": {
            "VisitID": "bigint",
            "Reason": {"type": "text", "description": "Why the patient came", "pii": "other"},
            "Minutes": "integer",
        },
    }
)


def comments(dsn: str, schema: str, table: str) -> tuple[str, dict[str, str | None]]:
    relation = f"{schema}.{table}"
    ((table_comment,),) = query(dsn, "SELECT obj_description(%s::regclass, 'pg_class')", [relation])
    columns = query(
        dsn,
        "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [relation],
    )
    return table_comment, dict(columns)


def test_staging_and_rpt_tables_carry_the_rules_descriptions(warehouse, database):
    load(warehouse, "Visits_20261123_020000.parquet", visits([(1, "a", 5)]), rule=RULE)
    upsert(warehouse, rule=RULE)

    for schema in ("indici_staging", "rpt"):
        table, columns = comments(database, schema, "visits")
        assert table.startswith("indici Visits: ") and table.endswith("One row per visit.")
        assert columns["reason"] == "Why the patient came. PII: other."
        assert columns["visit_id"] is None  # the rule says nothing of it
        assert columns["_source_ts"].startswith("The timestamp in the file's name")
    assert "every row of every file" in comments(database, "indici_staging", "visits")[0]
    assert "current version of each key" in comments(database, "rpt", "visits")[0]


def test_a_changed_description_reaches_the_tables_at_the_next_load(warehouse, database):
    load(warehouse, "Visits_20261123_020000.parquet", visits([(1, "a", 5)]), rule=RULE)
    upsert(warehouse, rule=RULE)
    changed = replace(RULE, description="Visits, as indici records them.", column_docs=())

    load(warehouse, "Visits_20261124_020000.parquet", visits([(2, "b", 5)]), rule=changed)
    upsert(warehouse, rule=changed)

    for schema in ("indici_staging", "rpt"):
        table, columns = comments(database, schema, "visits")
        assert table.endswith("Visits, as indici records them.")
        assert columns["reason"] is None


def test_unchanged_comments_are_not_written_again(warehouse, database):
    load(warehouse, "Visits_20261123_020000.parquet", visits([(1, "a", 5)]), rule=RULE)
    with warehouse.connection() as connection, connection.cursor() as cursor:
        assert not ensure_comments(cursor, RULE, "indici_staging", "visits")
        assert ensure_comments(cursor, replace(RULE, description="x"), "indici_staging", "visits")
        assert not ensure_comments(cursor, RULE, "rpt", "no_such_table")
        connection.rollback()


def test_a_static_table_gets_the_descriptions_of_the_columns_its_rule_names(warehouse, database):
    import io

    import pyarrow.parquet as pq

    rule = replace(
        parse_rule(
            {
                "dataset": "EthnicityCode",
                "description": "Ethnicity codes.",
                "columns": {"Code": {"description": "The code"}},
            }
        ),
        table=STATIC.table,
    )
    data = pq.ParquetFile(io.BytesIO(parquet_bytes({"Code": ["11"], "Label": ["NZ European"]})))
    load(warehouse, "EthnicityCode_20261123_020000.parquet", data, rule=rule)
    upsert(warehouse, rule=rule)

    for schema in ("indici_staging", "rpt"):
        table, columns = comments(database, schema, "ethnicity_code")
        assert table.endswith("Ethnicity codes.")
        assert columns["code"] == "The code."
        assert columns["label"] is None
    rpt_comment = comments(database, "rpt", "ethnicity_code")[0]
    assert "newest file" in rpt_comment and "each key" not in rpt_comment  # it has no key


def test_the_history_view_and_its_store_carry_the_rules_descriptions(warehouse, database):
    load(warehouse, "Visits_20261123_020000.parquet", visits([(1, "a", 5)]), rule=RULE)
    load(warehouse, "Visits_20261124_020000.parquet", visits([(1, "b", 6)]), rule=RULE)
    upsert(warehouse, rule=RULE)

    table, columns = comments(database, "rpt", "visits_history")
    assert "every version of each key" in table and table.endswith("One row per visit.")
    assert columns["reason"] == "Why the patient came. PII: other."
    assert columns["valid_from"].startswith("When this version became current")
    table, columns = comments(database, "rpt", "visits_past")
    assert "no longer current" in table
    assert columns["valid_to"].startswith("When the next version replaced it")
