"""The other tools: `pandas.DataFrame.to_sql` on a slice, and dlt's `merge` both ways.
Each contender returns {"steps": {name: seconds}, ...}."""

import uuid
from pathlib import Path
from typing import Any

from benchmarks import project
from benchmarks.constants import BENCH_SCHEMA, DELTA_FILE, INITIAL_FILE, TABLE
from benchmarks.util import Timer


def contender_pandas_to_sql(spec: dict[str, Any]) -> dict[str, Any]:
    """`DataFrame.to_sql` of a slice of the initial file (read + to_pandas included)."""
    import pandas as pd
    import psycopg2
    import pyarrow.parquet as pq
    import sqlalchemy

    rows = spec["pandas_rows"]
    engine = sqlalchemy.create_engine(
        "postgresql+psycopg2://", creator=lambda: psycopg2.connect(spec["dsn"])
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {BENCH_SCHEMA}")
    timer = Timer()
    with timer.step("load"):
        parquet_file = pq.ParquetFile(Path(spec["files"]) / "main" / INITIAL_FILE)
        batch = next(parquet_file.iter_batches(batch_size=rows))
        frame: pd.DataFrame = batch.to_pandas()
        frame.columns = [name for _, name, _ in project.rule_columns()]
        frame.to_sql("pandas_events", engine, schema=BENCH_SCHEMA, if_exists="append", index=False)
    engine.dispose()
    return {"steps": timer.steps, "rows": len(frame)}


def contender_dlt(spec: dict[str, Any], file_format: str | None = None) -> dict[str, Any]:
    """dlt (if importable): both files into Postgres with write_disposition="merge" on the key,
    in dlt's default loader file format (or `--dlt-format`)."""
    import dlt
    import pyarrow as pa
    import pyarrow.parquet as pq

    pipeline = dlt.pipeline(
        pipeline_name="indici_bench",
        destination=dlt.destinations.postgres(credentials=dict(spec["dlt_credentials"])),
        dataset_name="bench_dlt",
        pipelines_dir=str(Path(spec["work"]) / f"dlt-{uuid.uuid4().hex[:8]}"),
    )
    timer = Timer()
    main = Path(spec["files"]) / "main"
    for label, name in (("initial", INITIAL_FILE), ("delta", DELTA_FILE)):
        with timer.step(f"run_{label}"):
            table = pq.read_table(main / name)
            if file_format == "parquet":
                # dlt 1.31 makes float32 columns `double precision` but ADBC then sends 4-byte
                # values, which Postgres refuses; widen them so dlt's fastest path can run
                table = table.cast(
                    pa.schema(
                        [
                            f.with_type(pa.float64()) if pa.types.is_float32(f.type) else f
                            for f in table.schema
                        ]
                    )
                )
            pipeline.run(
                table,
                table_name=TABLE,
                write_disposition="merge",
                primary_key="PatientEventID",
                loader_file_format=file_format or spec.get("dlt_format") or None,
            )
    return {"steps": timer.steps, "dlt_version": dlt.__version__}


def contender_dlt_parquet(spec: dict[str, Any]) -> dict[str, Any]:
    """dlt's fastest configuration for Postgres: Parquet files loaded through ADBC."""
    return contender_dlt(spec, "parquet")
