"""`indici docs` writes a Markdown data dictionary from the rules and the warehouse."""

import io

import pyarrow.parquet as pq

from indici_dagster.cli import main
from indici_dagster.core.rules.store import load_rules
from indici_dagster_tests.core.warehouse.test_row_counts import load, upsert, visits
from indici_dagster_tests.support.common import parquet_bytes

RULES = """
- dataset: Visits
  description: "One row per visit | with a pipe."
  primary_key: [VisitID]
  columns:
    VisitID: bigint
    Reason: {type: text, description: "Why the patient came", pii: other}
    Minutes: integer
- dataset: EthnicityCode
  description: "Ethnicity codes."
  columns:
    Code: {description: "The code"}
- dataset: Providers
  primary_key: [ProviderID]
  columns: {ProviderID: bigint, ProviderName: {type: text, pii: name}}
"""


def test_the_dictionary_lists_tables_columns_types_keys_descriptions_pii_counts_and_newest_file(
    warehouse, database, tmp_path, monkeypatch, capsys
):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES)
    rules = load_rules(rules_file)
    load(warehouse, "Visits_20261123_020000.parquet", visits([(1, "a", 5)]), rule=rules["Visits"])
    newest = "Visits_20261124_020000.parquet"
    load(warehouse, newest, visits([(1, "b", 5), (2, "c", 6)]), rule=rules["Visits"])
    upsert(warehouse, rule=rules["Visits"])
    codes = pq.ParquetFile(io.BytesIO(parquet_bytes({"Code": ["11"], "Label": ["NZ European"]})))
    load(warehouse, "EthnicityCode_20261123_020000.parquet", codes, rule=rules["EthnicityCode"])
    upsert(warehouse, rule=rules["EthnicityCode"])
    monkeypatch.setenv("INDICI_PG_DSN", database)
    monkeypatch.setenv("INDICI_RULES", str(rules_file))
    output = tmp_path / "dictionary.md"

    assert main(["docs", "-o", str(output)]) == 0

    text = output.read_text()
    visits_section = text.split("## Visits")[1].split("## ")[0]
    assert "One row per visit \\| with a pipe." in visits_section
    assert "- Primary key: `visit_id`" in visits_section
    assert "- History: kept; `rpt.visits_history` holds every version" in visits_section
    assert "- `indici_staging.visits`: 3 rows" in visits_section
    assert "- `rpt.visits`: 2 rows" in visits_section
    assert f"- Newest file loaded: `{newest}`" in visits_section
    assert "| `reason` (Reason) | text | Why the patient came | other |" in visits_section
    assert "| `minutes` (Minutes) | integer |  |  |" in visits_section
    # what the analyst role sees of it, so an analyst knows which columns rpt_analyst has
    assert (
        "- Analyst role: `rpt_analyst.visits` and `rpt_analyst.visits_as_of(t)`: without `reason`"
        in visits_section
    )
    static = text.split("## EthnicityCode")[1].split("## ")[0]
    assert "- Kind: static" in static and "- Primary key: none" in static
    assert "| `code` (Code) | text | The code |  |" in static  # type from the loaded table
    assert "| `label` | text |  |  |" in static
    providers = text.split("## Providers")[1].split("## ")[0]
    assert "not created yet" in providers and "Newest file loaded: none yet" in providers
    assert "| `provider_name` (ProviderName) | text |  | name |" in providers
    assert "without `provider_name`" in providers
    assert "| `_source_ts` | The timestamp in the file's name" in text
    # rpt tables carry no _run_id: the dictionary says which metadata columns rpt has
    assert "| `_source_ts` | The timestamp in the file's name" in text
    assert "| `_run_id` | The Dagster run that loaded the row. | staging only |" in text
    assert "| `_source_file` | The file the row came from. | staging and rpt |" in text
    # no row value is ever in it
    assert "NZ European" not in text and "| a |" not in text

    assert main(["docs"]) == 0  # without -o: printed
    assert "## Visits" in capsys.readouterr().out
