"""`indici as-of TABLE TIME [--csv FILE | --parquet FILE]` and `indici history rebuild TABLE`."""

import csv
import io

import psycopg2
import pyarrow.parquet as pq
import pytest

from indici_dagster.cli import main
from indici_dagster_tests.core.warehouse.test_history import A, B, C, load, upsert
from indici_dagster_tests.support.common import query

RULES = """
- dataset: Visits
  primary_key: [VisitID]
  columns: {VisitID: bigint, Reason: text}
"""


@pytest.fixture
def loaded(warehouse, database, tmp_path, monkeypatch):
    """Two files of Visits in staging, rpt and history; the CLI pointed at them."""
    load(warehouse, A, [(1, "a1"), (2, "b1")])
    upsert(warehouse)
    load(warehouse, B, [(1, "a2")])
    upsert(warehouse)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    monkeypatch.setenv("INDICI_PG_DSN", database)
    monkeypatch.setenv("INDICI_RULES", str(rules))
    monkeypatch.chdir(tmp_path)
    return database


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


def test_as_of_prints_the_table_as_it_stood_as_csv(loaded, capsys):
    assert main(["as-of", "visits", "2026-03-01T12:00"]) == 0  # after A, before B (Auckland)

    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["visit_id", "reason"]
    assert sorted(rows[1:]) == [["1", "a1"], ["2", "b1"]]


def test_as_of_is_in_key_order_so_a_past_report_is_the_same_file_after_later_loads(
    loaded, warehouse, tmp_path, capsys
):
    """The report of a past time, exported before and after another file loads, is the same
    file byte for byte: rows come in primary-key order, not in whatever order the rows of rpt
    and its history happen to lie after updates."""
    main(["as-of", "visits", "2026-03-03", "--csv", str(tmp_path / "before.csv")])
    load(warehouse, C, [(2, "b3"), (0, "z3"), (1, "a3")])
    upsert(warehouse)
    main(["as-of", "visits", "2026-03-03", "--csv", str(tmp_path / "after.csv")])
    main(["as-of", "visits", "2026-03-04", "--csv", str(tmp_path / "later.csv")])

    assert (tmp_path / "before.csv").read_bytes() == (tmp_path / "after.csv").read_bytes()
    rows = list(csv.reader((tmp_path / "later.csv").open()))
    assert rows[1:] == [["0", "z3"], ["1", "a3"], ["2", "b3"]]
    capsys.readouterr()


def test_as_of_before_the_first_file_is_no_error_and_no_rows(loaded, capsys):
    assert main(["as-of", "visits", "2020-01-01"]) == 0
    assert capsys.readouterr().out.splitlines() == ["visit_id,reason"]


def test_as_of_writes_csv_and_parquet_files(loaded, tmp_path, capsys):
    assert main(["as-of", "visits", "2026-03-03", "--csv", str(tmp_path / "v.csv")]) == 0
    assert main(["as-of", "visits", "2026-03-03", "--parquet", str(tmp_path / "v.parquet")]) == 0

    with (tmp_path / "v.csv").open() as handle:
        assert sorted(csv.reader(handle))[:-1] == [["1", "a2"], ["2", "b1"]]
    table = pq.read_table(tmp_path / "v.parquet").to_pylist()
    assert sorted((r["visit_id"], r["reason"]) for r in table) == [(1, "a2"), (2, "b1")]
    assert "wrote 2 rows of rpt.visits" in capsys.readouterr().out


@pytest.mark.parametrize("when", ["yesterday", "2026-13-01", "31/03/2026", "2026-03-31T25:00"])
def test_a_malformed_as_of_time_is_one_line_and_exit_2(loaded, capsys, when):
    assert main(["as-of", "visits", when]) == 2

    line = _one_error_line(capsys)
    assert line.startswith("indici: the as-of TIME is not a date or date-time: use YYYY-MM-DD")
    assert when not in line


def test_as_of_refuses_a_table_whose_rule_turned_history_off(loaded, tmp_path, capsys):
    (tmp_path / "rules.yaml").write_text(RULES + "  history: false\n")

    assert main(["as-of", "visits", "2026-03-03"]) == 1

    assert _one_error_line(capsys) == (
        "indici: rule Visits: history: false, but rpt.visits_history exists: kept, not dropped, "
        "and no longer kept up to date (turn history back on and run `indici history rebuild "
        "visits`, or drop it by hand)"
    )


def test_history_rebuild_restores_the_versions_from_staging(loaded, admin_database_dsn, capsys):
    with psycopg2.connect(admin_database_dsn) as admin, admin.cursor() as cursor:
        cursor.execute("DELETE FROM rpt.visits_past")

    assert main(["history", "rebuild", "visits"]) == 0

    assert "2 current rows and 1 past versions" in capsys.readouterr().out
    assert query(loaded, "SELECT count(*) FROM rpt.visits_history") == [(3,)]


def test_an_unknown_table_is_one_line(loaded, capsys):
    assert main(["as-of", "rooms", "2026-03-03"]) == 1
    assert "no rule writes table rooms" in _one_error_line(capsys)
