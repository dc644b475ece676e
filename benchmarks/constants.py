"""The benchmark's fixed names: dataset, files, dates, schemas, the bench rule, text pools."""

from datetime import date
from typing import Any

TIMEZONE = "Pacific/Auckland"
DATASET = "BenchEvents"
TABLE = "bench_events"
KEY = "patient_event_id"
INITIAL_FILE = "BenchEvents_20261123_020000.parquet"
DELTA_FILE = "BenchEvents_20261124_020000.parquet"
BIG_FILE = "BenchEvents_20261122_020000.parquet"
BACKFILL_ONE_FILE = "BenchEvents_20261122_030000.parquet"
BACKFILL_LAST_DAY = date(2026, 11, 22)
MAIN_DAYS = (date(2026, 11, 23), date(2026, 11, 24))
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
BENCH_SCHEMA = "bench"
LIMIT_STAGING = "staging_events"
LIMIT_RPT = "rpt_events"

RULE: dict[str, Any] = {
    "dataset": DATASET,
    "table": TABLE,
    "primary_key": ["PatientEventID"],
    "columns": {
        "PatientEventID": "bigint",
        "PatientID": "bigint",
        "PracticeID": "integer",
        "ProviderID": "integer",
        "Priority": "smallint",
        "DurationMinutes": "integer",
        "Amount": "numeric(12,2)",
        "Discount": "numeric(12,2)",
        "Score": "double precision",
        "Weight": "real",
        "NHINumber": "text",
        "FamilyName": "text",
        "GivenName": "text",
        "Notes": "text",
        "Address": "text",
        "Status": "varchar(20)",
        "IsActive": "boolean",
        "IsDeceased": "boolean",
        "DateOfBirth": "date",
        "VisitDate": "date",
        "CreatedAt": "timestamp",
        "UpdatedAt": "timestamp",
        "CancelledAt": "timestamp",
        "SyncedAt": "timestamptz",
    },
    "nhi_columns": ["NHINumber"],
}

FAMILY_NAMES = [
    "Smith", "O'Brien", "Ngata", "Te Whānau-ā-Apanui", "Müller", "D'Souza", "Smith, Jr.",
    "Nguyễn", "Kōwhai", "Zhang 张", "Fa'amausili", 'The "Rock"', "Øster", "Tūhoe", "Wiremu",
    "Tāwhiri", "García-López", "van der Berg", "MacDonald", "Ōtautahi", "",
]  # fmt: skip
GIVEN_NAMES = [
    "Aroha", "Mere", "José", "Zoë", "Hēmi", "Siân", "Łukasz", "Nikau", "Ана", "李娜", "Renée",
    "Mia 🙂", "Tama", "Sione", "Priya", "Ngaio", "Åsa", "Moana", "Jean-Luc", "Māia",
]  # fmt: skip
NOTE_PIECES = [
    'Patient says "feeling better"', "BP 120/80, HR 72", "Line one\nLine two",
    "Follow-up in 2 weeks; call, don't text", "Allergic to penicillin\r\nand sulfa",
    "Café visit — ok", "Backslash \\ and \\N test", "Tab\tseparated\tvalues",
    'Quote at the end"', "Comma, at, every, word,", "Ngā mihi nui", "emoji 💊 dispensed",
    "'single' and \"double\" quotes", "", "Plain note", "NULL", "\\.", "multi\n\nblank\nlines",
]  # fmt: skip
ADDRESS_PIECES = [
    "12 Queen Street, Auckland 1010", "Flat 3, 45 Cuba St, Te Aro, Wellington",
    "PO Box 99, Ōtaki", "1/7 Māngere Rd, Auckland", 'c/o "Whare" Lodge, Rotorua',
    "RD 2, Kaikōura", "Unit 5\n22 Ferry Rd, Christchurch",
]  # fmt: skip
STATUSES = ["Booked", "Arrived", "Completed", "Cancelled", "DNA", "In consult"]
