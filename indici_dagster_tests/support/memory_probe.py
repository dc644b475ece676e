"""Load one Parquet file into staging in a process of its own, under an address-space limit.

`python -m indici_dagster_tests.support.memory_probe DSN FILE LIMIT_MIB` prints one JSON object: the
load's status or its error message, and the process's peak resident memory and address space. A load that
exhausted the limit would crash the process or end in a MemoryError instead.
"""

import json
import resource
import sys
from pathlib import Path

from indici_dagster.core.db_errors import FileLoadError
from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.parquet.reader import open_parquet
from indici_dagster.core.rules.model import parse_rule
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster_tests.support.common import TIMEZONE

RULE = parse_rule(
    {
        "dataset": "Patients",
        "primary_key": ["PatientID"],
        "columns": {"PatientID": "bigint", "FamilyName": "text"},
    }
)


def main(dsn: str, path: str, limit_mib: int) -> dict:
    """Load `path` (named like a landed file) into staging with at most `limit_mib` of address
    space; return what happened and the peak RSS in MiB."""
    resource.setrlimit(resource.RLIMIT_AS, (limit_mib << 20, limit_mib << 20))
    warehouse = Warehouse(dsn, TIMEZONE)
    warehouse.ensure_catalog()
    name = Path(path).name
    outcome: dict = {}
    with open(path, "rb") as handle:
        try:
            result = warehouse.load_file_into_staging(
                RULE,
                parse_file_name(name, TIMEZONE),
                open_parquet(handle),
                run_id="probe",
                source_key=name,
                source_etag="e",
            )
            outcome = {"status": str(result.status.value), "rows": result.rows_loaded}
        except FileLoadError as error:
            outcome = {"error": str(error)}
    outcome.update(_peaks())
    return outcome


def _peaks() -> dict[str, int]:
    """Peak resident memory and address space of this process (since its exec), in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {
        "peak_rss_mib": int(fields["VmHWM"].split()[0]) // 1024,
        "peak_address_space_mib": int(fields["VmPeak"].split()[0]) // 1024,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
