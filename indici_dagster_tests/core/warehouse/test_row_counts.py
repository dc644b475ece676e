"""`dagster/row_count` comes from counters the writes keep; they must equal a full count(*)."""

import io
from datetime import UTC, datetime

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indici_dagster.cli import main
from indici_dagster.core.db_errors import FileLoadError
from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.quality.queries import WarehouseQueries
from indici_dagster.core.rules.model import parse_rule
from indici_dagster.core.steps.ingest import partition_key_of_file
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster_tests.support.common import TIMEZONE, parquet_bytes, row_counters

RULE = parse_rule(
    {
        "dataset": "Visits",
        "primary_key": ["VisitID"],
        "columns": {"VisitID": "bigint", "Reason": "text", "Minutes": "integer"},
    }
)
STATIC = parse_rule({"dataset": "EthnicityCode"})
WINDOW = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


def visits(rows: list[tuple]) -> pq.ParquetFile:
    return pq.ParquetFile(
        io.BytesIO(
            parquet_bytes(
                {
                    "VisitID": pa.array([r[0] for r in rows], pa.int64()),
                    "Reason": [r[1] for r in rows],
                    "Minutes": pa.array([r[2] for r in rows], pa.int64()),
                }
            )
        )
    )


def load(warehouse: Warehouse, name: str, parquet: pq.ParquetFile, rule=RULE) -> None:
    warehouse.load_file_into_staging(
        rule,
        parse_file_name(name, TIMEZONE),
        parquet,
        run_id="r",
        source_key=name,
        source_etag="e",
    )


def upsert(warehouse: Warehouse, rule=RULE) -> None:
    warehouse.upsert_window_into_rpt(
        rule,
        *WINDOW,
        run_id="r",
        partition_key_of=lambda name: partition_key_of_file(name, TIMEZONE),
    )


def counts(dsn: str) -> dict[str, int]:
    """Each counter, after asserting it equals the table's full count."""
    kept = row_counters(dsn)
    assert all(counter == actual for counter, actual in kept.values()), kept
    return {f"{schema}.{table}": counter for (schema, table), (counter, _) in kept.items()}


def test_counters_stay_exact_through_loads_replays_resends_and_rejected_rows(warehouse, database):
    first = "Visits_20261123_020000.parquet"
    load(warehouse, first, visits([(1, "a", 5), (2, "b", 10), (None, "no key", 1)]))
    upsert(warehouse)
    assert counts(database) == {"indici_staging.visits": 3, "rpt.visits": 2}

    load(warehouse, "Visits_20261124_020000.parquet", visits([(2, "b2", 12), (3, "c", 7)]))
    load(warehouse, first, visits([(1, "a", 5), (2, "b", 10), (None, "no key", 1)]))  # replay
    upsert(warehouse)
    assert counts(database) == {"indici_staging.visits": 5, "rpt.visits": 3}

    load(warehouse, first, visits([(4, "re-sent", 1)]))  # a new version with fewer rows
    upsert(warehouse)
    # rpt keeps keys 1 and 2 (nothing deletes from rpt) and gains key 4
    assert counts(database) == {"indici_staging.visits": 3, "rpt.visits": 4}
    queries = WarehouseQueries(warehouse)
    assert queries.row_count("indici_staging", "visits") == 3
    assert queries.row_count("rpt", "visits") == 4


def test_a_failed_load_leaves_the_counter_where_it_was(warehouse, database):
    load(warehouse, "Visits_20261123_020000.parquet", visits([(1, "a", 5), (2, "b", 10)]))
    too_big = visits([(3, "c", 1), (4, "d", 2**40)])  # does not fit integer: rolled back
    with pytest.raises(FileLoadError, match="Minutes"):
        load(warehouse, "Visits_20261123_020000.parquet", too_big)
    assert counts(database) == {"indici_staging.visits": 2}


def test_a_smaller_static_snapshot_sets_the_rpt_count_to_its_own_rows(warehouse, database):
    def codes(n: int) -> pq.ParquetFile:
        return pq.ParquetFile(
            io.BytesIO(parquet_bytes({"Code": list(range(n)), "Description": ["x"] * n}))
        )

    load(warehouse, "EthnicityCode_20261123_010000.parquet", codes(3), STATIC)
    upsert(warehouse, STATIC)
    load(warehouse, "EthnicityCode_20261124_010000.parquet", codes(2), STATIC)
    upsert(warehouse, STATIC)
    assert counts(database) == {"indici_staging.ethnicity_code": 5, "rpt.ethnicity_code": 2}


def test_tables_from_before_the_counters_are_counted_once_on_their_next_write(
    warehouse, database, admin_database_dsn
):
    load(warehouse, "Visits_20261123_020000.parquet", visits([(1, "a", 5), (2, "b", 10)]))
    upsert(warehouse)
    with psycopg2.connect(admin_database_dsn) as admin, admin.cursor() as cursor:
        cursor.execute("DELETE FROM indici_staging.table_row_counts")
    # no counter: the metadata falls back to a full count
    assert WarehouseQueries(warehouse).row_count("rpt", "visits") == 2

    load(warehouse, "Visits_20261124_020000.parquet", visits([(3, "c", 7)]))
    upsert(warehouse)
    assert counts(database) == {"indici_staging.visits": 3, "rpt.visits": 3}


def test_indici_recount_corrects_counters_after_rows_were_changed_by_hand(
    warehouse, database, admin_database_dsn, monkeypatch, capsys
):
    load(warehouse, "Visits_20261123_020000.parquet", visits([(1, "a", 5), (2, "b", 10)]))
    upsert(warehouse)
    with psycopg2.connect(admin_database_dsn) as admin, admin.cursor() as cursor:
        cursor.execute("DELETE FROM rpt.visits WHERE visit_id = 1")
    assert row_counters(database)[("rpt", "visits")] == (2, 1)

    monkeypatch.setenv("INDICI_PG_DSN", database)
    assert main(["recount"]) == 0
    assert "visits | indici_staging 2 | rpt 1" in capsys.readouterr().out
    assert counts(database) == {"indici_staging.visits": 2, "rpt.visits": 1}
