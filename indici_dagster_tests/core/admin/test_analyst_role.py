"""The analyst role (`indici bootstrap --analyst`): it reads only `rpt_analyst`, where NHI
numbers are keyed pseudonyms and other personal columns are left out, and it can reach neither
an NHI nor the key by any query it may run."""

import contextlib
import hashlib
import hmac
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indici_dagster import cli
from indici_dagster.core.admin.bootstrap import BootstrapError, bootstrap_database, rotate_key
from indici_dagster.core.rules.model import parse_rules
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster_tests.core.admin.test_least_privilege import _execute, _fresh_database, _roles
from indici_dagster_tests.core.warehouse.test_row_counts import load, upsert
from indici_dagster_tests.support.common import parquet_bytes, query

KEY = "k" * 20 + "-a-key-of-this-deployment"
NHI, OTHER_NHI = "ZZZ0016", "ZAA0067"
RULES = parse_rules(
    [
        {
            "dataset": "Patients",
            "primary_key": ["PatientID"],
            "columns": {
                "PatientID": "bigint",
                "NHINumber": {"type": "text", "pii": "nhi"},
                "FamilyName": {"type": "text", "pii": "name"},
                "Suburb": {"type": "text", "pii": "address"},
                "Gender": "text",
            },
        },
        {
            "dataset": "Immunisations",
            "primary_key": ["ImmunisationID"],
            "columns": {"ImmunisationID": "bigint", "NHINumber": "text", "VaccineCode": "text"},
            "nhi_columns": ["NHINumber"],  # the older form: the same as pii: nhi
        },
        {
            "dataset": "Contacts",  # static, its personal column marked without a type
            "columns": {"Phone": {"pii": "contact"}, "PatientNhi": {"pii": "nhi"}},
        },
    ]
)


def pseudonym(value: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), value.strip().upper().encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Deployment:
    admin: str
    writer_dsn: str
    analyst: str
    analyst_dsn: str


@contextlib.contextmanager
def deployment(admin_dsn: str, key: str | None = KEY) -> Iterator[Deployment]:
    suffix = uuid.uuid4().hex[:10]
    writer, reader, analyst = (f"indici_{r}_{suffix}" for r in ("w", "r", "a"))
    password = f"pw-{uuid.uuid4().hex}"
    roles = (writer, reader, analyst)
    with _roles(admin_dsn, *roles), _fresh_database(admin_dsn, roles) as dsn:
        kwargs = dict(
            writer=writer,
            reader=reader,
            writer_password=password,
            analyst=analyst,
            analyst_password=password,
            pseudonym_key=key,
        )
        bootstrap_database(dsn, **kwargs)
        yield Deployment(
            dsn,
            psycopg2.extensions.make_dsn(dsn, user=writer, password=password),
            analyst,
            psycopg2.extensions.make_dsn(dsn, user=analyst, password=password),
        )


def load_patients(d: Deployment) -> None:
    warehouse = Warehouse(d.writer_dsn, "Pacific/Auckland")
    warehouse.ensure_catalog()
    patients = {
        "PatientID": pa.array([1, 2, 3, 4], pa.int64()),
        "NHINumber": [NHI, f" {OTHER_NHI.lower()} ", None, "not an nhi"],
        "FamilyName": ["Ngata", "Smith", "Lee", "Brown"],
        "Suburb": ["Ponsonby", "Karori", "Riccarton", "Hamilton East"],
        "Gender": ["F", "M", "F", "X"],
    }
    immunisations = {
        "ImmunisationID": pa.array([10, 11], pa.int64()),
        "NHINumber": [NHI, OTHER_NHI],
        "VaccineCode": ["MMR", "FLU"],
    }
    contacts = {"Phone": ["021 555 0101"], "PatientNhi": [NHI], "Kind": ["mobile"]}
    for dataset, data in (
        ("Patients", patients),
        ("Immunisations", immunisations),
        ("Contacts", contacts),
    ):
        parquet = pq.ParquetFile(io.BytesIO(parquet_bytes(data)))
        load(warehouse, f"{dataset}_20261123_020000.parquet", parquet, rule=RULES[dataset])
        upsert(warehouse, rule=RULES[dataset])


@pytest.fixture
def loaded(admin_dsn: str) -> Iterator[Deployment]:
    with deployment(admin_dsn) as d:
        load_patients(d)
        yield d


def as_analyst(d: Deployment, statement: str, params: tuple = ()) -> list[tuple]:
    return query(d.analyst_dsn, statement, params)


def refused(d: Deployment, statement: str) -> bool:
    try:
        as_analyst(d, statement)
    except psycopg2.errors.InsufficientPrivilege:
        return True
    return False


def test_the_analyst_sees_pseudonyms_for_nhi_and_no_other_personal_column(loaded):
    rows = as_analyst(loaded, "SELECT * FROM rpt_analyst.patients ORDER BY patient_id")
    columns = [
        name
        for (name,) in as_analyst(
            loaded,
            "SELECT attname FROM pg_attribute WHERE attrelid = 'rpt_analyst.patients'::regclass "
            "AND attnum > 0 ORDER BY attnum",
        )
    ]

    assert columns == ["patient_id", "nhi_number", "gender"]  # name, address left out
    assert rows == [
        (1, pseudonym(NHI), "F"),
        (2, pseudonym(OTHER_NHI), "M"),  # normalised: case and spaces do not change it
        (3, None, "F"),  # NULL stays NULL
        (4, pseudonym("not an nhi"), "X"),  # not a valid NHI: still a pseudonym, no error
    ]
    flat = repr(rows)
    assert NHI not in flat and "Ngata" not in flat and "Ponsonby" not in flat


def test_pseudonyms_join_across_tables_and_static_datasets_are_marked_too(loaded):
    joined = as_analyst(
        loaded,
        "SELECT p.patient_id, i.vaccine_code FROM rpt_analyst.patients p "
        "JOIN rpt_analyst.immunisations i USING (nhi_number) ORDER BY 1",
    )
    assert joined == [(1, "MMR"), (2, "FLU")]
    assert as_analyst(loaded, "SELECT count(DISTINCT nhi_number) FROM rpt_analyst.patients") == [
        (3,)
    ]
    assert as_analyst(loaded, "SELECT * FROM rpt_analyst.contacts") == [
        (pseudonym(NHI), "mobile")  # phone left out, the NHI pseudonymised
    ]


def test_the_analyst_reaches_no_nhi_and_no_key_by_any_query_it_may_run(loaded):
    for statement in (
        "SELECT * FROM rpt.patients",
        "SELECT * FROM indici_staging.patients",
        "SELECT * FROM indici_staging.auditlog",
        "SELECT * FROM indici_keys.pseudonym_key",
        "SELECT indici_staging.ensure_analyst_view('patients', ARRAY['nhi_number'], ARRAY[]::text[])",
        "CREATE TABLE rpt_analyst.mine (x int)",
        "CREATE TEMP TABLE mine (x int)",
    ):
        assert refused(loaded, statement), statement
    _execute(loaded.admin, "ANALYZE")  # statistics exist: most common values would be NHIs
    # the catalog: no statistics of rpt's columns, no key or NHI in any function or view text
    assert as_analyst(
        loaded,
        "SELECT count(*) FROM pg_stats WHERE schemaname IN ('rpt', 'indici_staging', 'indici_keys')",
    ) == [(0,)]
    texts = as_analyst(
        loaded,
        "SELECT coalesce(prosrc, '') FROM pg_proc UNION ALL "
        "SELECT pg_get_viewdef(c.oid) FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = 'rpt_analyst'",
    )
    everything = " ".join(text for (text,) in texts)
    assert KEY not in everything and NHI not in everything
    # no function of its own schema takes anything but a time: none pseudonymises a chosen value
    arguments = as_analyst(
        loaded,
        "SELECT pg_get_function_identity_arguments(p.oid) FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'rpt_analyst'",
    )
    assert all(args in ("", "at_time timestamp with time zone") for (args,) in arguments)
    # privileges the analyst holds: its schema only
    assert as_analyst(
        loaded,
        "SELECT has_schema_privilege('rpt', 'USAGE'), has_schema_privilege('indici_keys', 'USAGE')",
    ) == [(False, False)]


def test_an_error_echoes_only_what_the_analyst_typed_or_a_pseudonym(loaded):
    with pytest.raises(psycopg2.Error) as raised:
        as_analyst(loaded, "SELECT nhi_number::integer FROM rpt_analyst.patients")
    assert NHI not in str(raised.value) and KEY not in str(raised.value)


def test_rotating_the_key_rekeys_every_pseudonym_at_once(loaded):
    before = as_analyst(loaded, "SELECT nhi_number FROM rpt_analyst.patients WHERE patient_id = 1")
    assert before == [(pseudonym(NHI),)]

    action = rotate_key(loaded.admin, None)

    assert "every pseudonym changed" in action
    after = as_analyst(loaded, "SELECT nhi_number FROM rpt_analyst.patients ORDER BY patient_id")
    assert pseudonym(NHI) not in [value for (value,) in after]
    joined = as_analyst(
        loaded,
        "SELECT count(*) FROM rpt_analyst.patients p JOIN rpt_analyst.immunisations i "
        "USING (nhi_number)",
    )
    assert joined == [(2,)]  # re-keyed at once: still joinable


def _role(dsn: str) -> str:
    return psycopg2.extensions.parse_dsn(dsn)["user"]


def test_two_deployments_give_different_pseudonyms_and_a_rerun_keeps_the_key(admin_dsn):
    seen = []
    for _ in range(2):
        with deployment(admin_dsn, key=None) as d:  # keys generated
            load_patients(d)
            first = as_analyst(
                d, "SELECT nhi_number FROM rpt_analyst.patients WHERE patient_id = 1"
            )
            writer = _role(d.writer_dsn)
            bootstrap_database(
                d.admin,
                writer=writer,
                reader=writer.replace("_w_", "_r_"),
                analyst=d.analyst,
            )
            again = as_analyst(
                d, "SELECT nhi_number FROM rpt_analyst.patients WHERE patient_id = 1"
            )
            assert again == first  # the key was kept
            seen.append(first)
    assert seen[0] != seen[1]
    assert pseudonym(NHI) not in {value for ((value,),) in seen}


def test_a_short_or_missing_key_is_one_clear_line(admin_dsn, monkeypatch, capsys):
    with pytest.raises(BootstrapError, match="INDICI_PSEUDONYM_KEY is too short"):
        bootstrap_database(admin_dsn, analyst="indici_analyst_x", pseudonym_key="short")
    monkeypatch.setenv("INDICI_ADMIN_DSN", admin_dsn)
    monkeypatch.setenv("INDICI_PSEUDONYM_KEY", "too-short")
    assert cli.main(["bootstrap", "--analyst", "indici_analyst_x"]) == 1
    err = capsys.readouterr().err
    assert "INDICI_PSEUDONYM_KEY is too short" in err and "too-short" not in err
    monkeypatch.delenv("INDICI_PSEUDONYM_KEY")
    with (
        _roles(admin_dsn, "indici_w_nokey", "indici_r_nokey"),
        _fresh_database(admin_dsn, ("indici_w_nokey", "indici_r_nokey")) as dsn,
    ):
        assert cli.main(["analyst", "rotate-key", "--admin-dsn", dsn]) == 1
        assert "there is no pseudonym key" in capsys.readouterr().err


def test_an_analyst_that_could_read_every_table_is_refused(admin_dsn):
    suffix = uuid.uuid4().hex[:10]
    analyst = f"indici_a_{suffix}"
    roles = (f"indici_w_{suffix}", f"indici_r_{suffix}", analyst)
    with _roles(admin_dsn, *roles), _fresh_database(admin_dsn, roles) as dsn:
        _execute(dsn, f'CREATE ROLE "{analyst}" LOGIN')
        _execute(dsn, f'GRANT pg_read_all_stats TO "{analyst}"')
        with pytest.raises(BootstrapError, match="pg_read_all_stats"):
            bootstrap_database(dsn, writer=roles[0], reader=roles[1], analyst=analyst)


def test_the_analyst_reads_history_as_of_a_time_with_pseudonyms_too(loaded):
    now = as_analyst(loaded, "SELECT * FROM rpt_analyst.patients_as_of(now()) ORDER BY patient_id")
    assert now == as_analyst(loaded, "SELECT * FROM rpt_analyst.patients ORDER BY patient_id")
    assert as_analyst(loaded, "SELECT * FROM rpt_analyst.patients_as_of('2000-01-01')") == []
    assert refused(loaded, "SELECT * FROM rpt.patients_as_of(now())")
    assert refused(loaded, "SELECT * FROM rpt.patients_history")


def test_bootstrap_names_the_rpt_tables_whose_analyst_view_waits_for_a_load(loaded):
    """Views are made by rpt loads: a table loaded before `--analyst` has none until its next
    load, and bootstrap says so rather than leave the analyst facing an empty schema."""
    _execute(loaded.admin, "DROP FUNCTION IF EXISTS rpt_analyst.patients_as_of(timestamptz)")
    _execute(loaded.admin, "DROP VIEW rpt_analyst.patients")
    writer = psycopg2.extensions.parse_dsn(loaded.writer_dsn)
    actions = bootstrap_database(
        loaded.admin,
        writer=writer["user"],
        reader=loaded.analyst.replace("indici_a_", "indici_r_"),
        writer_password=writer["password"],
        analyst=loaded.analyst,
        analyst_password=writer["password"],
        pseudonym_key=KEY,
    )
    waiting = [a for a in actions if "view yet" in a]
    assert waiting == [
        "1 rpt table(s) have no rpt_analyst view yet (patients): each appears at its dataset's "
        "next rpt load (a new file, or re-materializing its indici/rpt asset for a loaded date)"
    ]
