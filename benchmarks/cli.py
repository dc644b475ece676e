"""Command-line options of `python -m benchmarks` (the same as the old bench_load.py's)."""

import argparse
from pathlib import Path

from benchmarks.contenders import CONTENDERS

HERE = Path(__file__).resolve().parent
DESCRIPTION = (
    "Load benchmark for indici-dagster: the pipeline against the fastest bulk path on one server."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=DESCRIPTION)
    parser.add_argument("--rows", type=int, help="rows in the initial file (default 1,000,000)")
    parser.add_argument("--delta-rows", type=int, help="rows in the delta file (default 200,000)")
    parser.add_argument("--repeats", type=int, help="runs per contender (default 3; median)")
    parser.add_argument(
        "--big-rows", type=int, help="rows of the RSS-flatness file (default 5,000,000; 0 skips)"
    )
    parser.add_argument("--backfill-days", type=int, help="daily backfill files (default 365)")
    parser.add_argument("--backfill-rows-per-day", type=int, help="rows per file (default 1,000)")
    parser.add_argument(
        "--sensor-objects",
        type=int,
        help="objects in the landing bucket (default 100,000; 0 skips)",
    )
    parser.add_argument("--pandas-rows", type=int, help="slice for pandas.to_sql (default 50,000)")
    parser.add_argument(
        "--row-group-rows",
        type=int,
        default=1_048_576,
        help="Parquet row-group size of generated files (pyarrow's default)",
    )
    parser.add_argument("--only", help="comma-separated contenders to run (default: all)")
    parser.add_argument("--skip", help="comma-separated contenders not to run")
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip comparing the pipeline's tables with the limit's (md5)",
    )
    parser.add_argument("--dlt-python", help="interpreter with dlt[postgres] for the dlt contender")
    parser.add_argument("--dlt-format", help="dlt loader_file_format (e.g. csv, insert_values)")
    parser.add_argument(
        "--out",
        default=str(HERE / "results" / "latest.json"),
        help="results JSON (a .md beside it)",
    )
    parser.add_argument("--work-dir", help="keep generated files here (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = {
        "rows": 1_000_000,
        "delta_rows": 200_000,
        "repeats": 3,
        "big_rows": 5_000_000,
        "backfill_days": 365,
        "backfill_rows_per_day": 1_000,
        "sensor_objects": 100_000,
        "pandas_rows": 50_000,
    }
    quick = {
        "rows": 20_000,
        "delta_rows": 4_000,
        "repeats": 1,
        "big_rows": 100_000,
        "backfill_days": 3,
        "backfill_rows_per_day": 200,
        "sensor_objects": 100,
        "pandas_rows": 2_000,
    }
    for key, value in (quick if args.quick else defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def select_contenders(args: argparse.Namespace) -> list[str]:
    names = list(CONTENDERS)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = set(wanted) - set(CONTENDERS)
        if unknown:
            raise SystemExit(
                f"unknown contenders {sorted(unknown)}; known: {', '.join(CONTENDERS)}"
            )
        names = [n for n in names if n in wanted]
    if args.skip:
        names = [n for n in names if n not in {s.strip() for s in args.skip.split(",")}]
    return names
