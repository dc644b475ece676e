"""The type registry is the one place a column type is defined: a type added there is accepted
by rules, loaded by staging and made up by sample data, with nothing else edited."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indici_dagster.core import pipeline_names
from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.rules.model import RuleError, parse_rule, parse_rules
from indici_dagster.core.sample.data import write_sample_files
from indici_dagster.core.storage.local_storage import LocalStorage
from indici_dagster.core.types import registry as types
from indici_dagster.core.warehouse import sql
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster_tests.support.common import TIMEZONE, query


@pytest.fixture
def money():
    """`money` (cents as a 64-bit integer on the wire), registered for one test."""
    types.simple(
        "money",
        pa.int64(),
        lambda s: int(s.rng.integers(100, 100_000)),
        aliases=("cash",),
    )
    yield
    types.unregister("money")


def test_a_type_added_in_the_registry_flows_through_rules_loads_and_sample_data(
    money, database, tmp_path
):
    rule = parse_rule(
        {
            "dataset": "Invoices",
            "primary_key": ["InvoiceID"],
            "columns": {"InvoiceID": "bigint", "Total": "CASH", "Note": "text"},
        }
    )
    assert rule.column("total").type == "money"

    storage = LocalStorage(tmp_path)
    keys = write_sample_files(storage, {"Invoices": rule}, timezone=TIMEZONE, days=2)
    warehouse = Warehouse(database, TIMEZONE)
    warehouse.ensure_catalog()
    totals = []
    for key in keys:
        table = pq.read_table(tmp_path / key)
        assert table.schema.field("Total").type == pa.int64()
        totals += [t for t in table.column("Total").to_pylist() if t is not None]
        with open(tmp_path / key, "rb") as handle:
            warehouse.load_file_into_staging(
                rule,
                parse_file_name(key, TIMEZONE),
                pq.ParquetFile(io.BytesIO(handle.read())),
                run_id="r",
                source_key=key,
                source_etag="e",
            )

    staged = query(
        database,
        "SELECT (total::numeric * 100)::bigint, pg_typeof(total)::text FROM indici_staging.invoices "
        "WHERE total IS NOT NULL ORDER BY _source_ts, _row_number",
    )
    assert totals and [t for t, _ in staged] == totals
    assert {kind for _, kind in staged} == {"money"}


def test_a_removed_type_is_refused_again(money):
    types.unregister("money")
    with pytest.raises(RuleError, match="not supported"):
        parse_rule({"dataset": "A", "primary_key": ["X"], "columns": {"X": "money"}})


def test_sample_files_of_every_registered_type_load(database, tmp_path):
    columns = {"RowID": "bigint"}
    for name, column_type in types.REGISTRY.items():
        spelled = column_type.spell(
            ((12, 2) if name == "numeric" else (20,)) if not column_type.plain else ()
        )
        columns[f"Plain{name.title().replace(' ', '')}"] = spelled
    columns["WideNumber"] = "numeric(100,3)"
    columns["MidNumber"] = "numeric(60,4)"
    columns["FloatNumber"] = "numeric"
    rule = parse_rule({"dataset": "Everything", "primary_key": ["RowID"], "columns": columns})
    keys = write_sample_files(LocalStorage(tmp_path), {"Everything": rule}, timezone=TIMEZONE)
    warehouse = Warehouse(database, TIMEZONE)
    warehouse.ensure_catalog()
    for key in keys:
        with open(tmp_path / key, "rb") as handle:
            result = warehouse.load_file_into_staging(
                rule,
                parse_file_name(key, TIMEZONE),
                pq.ParquetFile(io.BytesIO(handle.read())),
                run_id="r",
                source_key=key,
                source_etag="e",
            )
        assert result.status in ("success", "empty"), key  # one sample file is empty
    declared = dict(
        query(
            database,
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'indici_staging.everything'::regclass AND attnum > 0",
        )
    )
    for column in rule.columns:
        assert types.canonical(declared[column.name]) == column.type
    assert query(database, "SELECT count(*) > 0 FROM indici_staging.everything")[0][0]


@pytest.mark.parametrize(
    ("spelled", "canonical"),
    [
        ("numeric(1000,1000)", "numeric(1000,1000)"),
        ("varchar(10485760)", "varchar(10485760)"),
        ("character(1)", "char(1)"),
        ("character varying(3)", "varchar(3)"),
        ("time without time zone", "time"),
        ("bytea", "bytea"),
    ],
)
def test_spellings_postgres_accepts_are_canonicalised(spelled, canonical):
    assert types.canonical(spelled) == canonical


@pytest.mark.parametrize(
    "spelled",
    [
        "numeric(9999,0)",
        "numeric(0)",
        "numeric(1001)",
        "numeric(5,6)",
        "varchar(0)",
        "varchar(10485761)",
        "char(0)",
        "char",
        "bigint(5)",
        "bytea(4)",
        "text[]",
    ],
)
def test_spellings_postgres_would_refuse_fail_validation(spelled):
    with pytest.raises(types.TypeSpellingError):
        types.canonical(spelled)


def test_two_datasets_whose_names_snake_case_alike_are_refused():
    with pytest.raises(RuleError, match="'patient_id' is already used by PatientID"):
        parse_rules([{"dataset": "PatientID"}, {"dataset": "PatientId"}])


@pytest.mark.parametrize("table", sorted(pipeline_names.PIPELINE_RELATIONS))
def test_a_table_named_like_any_relation_of_the_pipeline_is_refused(table):
    with pytest.raises(RuleError, match="reserved"):
        parse_rule({"dataset": "Codes", "table": table})


def test_a_table_named_like_an_index_of_another_datasets_tables_is_refused():
    with pytest.raises(RuleError, match="index of Visits"):
        parse_rules([{"dataset": "Visits"}, {"dataset": "Other", "table": "visits_pkey"}])
    with pytest.raises(RuleError, match="index of Visits"):
        parse_rules(
            [{"dataset": "Other", "table": "visits__source_ts_brin"}, {"dataset": "Visits"}]
        )


def test_a_rule_with_more_columns_than_a_table_can_hold_is_refused():
    columns = {f"C{i}": "integer" for i in range(1596)}
    with pytest.raises(RuleError, match="more than 1595 columns"):
        parse_rule({"dataset": "Wide", "primary_key": ["C0"], "columns": columns})


def test_the_reserved_relations_are_every_relation_the_pipeline_creates(database):
    Warehouse(database, TIMEZONE).ensure_catalog()
    created = query(
        database,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname IN (%s, %s)",
        (pipeline_names.STAGING_SCHEMA, pipeline_names.RPT_SCHEMA),
    )
    assert {name for (name,) in created} == pipeline_names.PIPELINE_RELATIONS


def test_the_metadata_columns_are_defined_once_in_table_order(database):
    from indici_dagster.core.types.registry import METADATA_NAMES

    assert METADATA_NAMES == (
        "_source_file",
        "_source_ts",
        "_row_number",
        "_loaded_at",
        "_run_id",
    )
    assert [name for name, _ in sql.STAGING_METADATA] == list(METADATA_NAMES)
    assert [name for name, _ in sql.RPT_METADATA] == list(METADATA_NAMES[:4])


def test_rules_validate_refuses_what_postgres_would_refuse(tmp_path, capsys):
    from indici_dagster.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "- dataset: Invoices\n"
        "  primary_key: [InvoiceID]\n"
        "  columns:\n"
        "    InvoiceID: bigint\n"
        "    Total: numeric(9999,0)\n"
        "- dataset: Ledger\n"
        "  table: landing_ledger_outcome_idx\n"
        "- dataset: PatientID\n"
        "- dataset: PatientId\n"
    )

    assert main(["rules", "validate", str(bad)]) == 2
    error = capsys.readouterr().err
    assert "numeric(9999,0)" in error and "precision must be from 1 to 1000" in error
    assert "'landing_ledger_outcome_idx' is reserved" in error
    assert "'patient_id' is already used by PatientID" in error
