"""The pipeline's settings: environment variables with defaults that run on one laptop."""

import os
from collections.abc import Mapping
from dataclasses import dataclass

LANDING = "INDICI_LANDING"
PARTITIONED = "INDICI_PARTITIONED"
RULES = "INDICI_RULES"
PG_DSN = "INDICI_PG_DSN"
TIMEZONE = "INDICI_TIMEZONE"
START_DATE = "INDICI_START_DATE"
PG_DIR = "INDICI_PG_DIR"
MAX_CONCURRENT = "INDICI_MAX_CONCURRENT"
MAX_NEW_COLUMNS = "INDICI_MAX_NEW_COLUMNS"


@dataclass(frozen=True)
class Settings:
    """Where files come from and go to, which rules apply, and which database receives them."""

    landing: str = "./data/landing"
    partitioned: str = "./data/partitioned"
    rules: str | None = None
    """None: the rules file shipped in the package."""
    pg_dsn: str | None = None
    """None: the embedded PostgreSQL server kept in `pg_dir`."""
    timezone: str = "Pacific/Auckland"
    start_date: str = "2020-01-01"
    pg_dir: str = "./.indici/pg"
    max_concurrent: int = 1
    """Steps of one run executed at once; above 1, datasets load in parallel processes."""
    max_new_columns: int = 50
    """Columns the rule does not name that one file may add to its staging table."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read the `INDICI_*` variables; unset or empty ones take their defaults."""
        env = os.environ if environ is None else environ
        defaults = cls()

        def get(name: str, default: str | None) -> str | None:
            value = env.get(name, "").strip()
            return value or default

        return cls(
            landing=get(LANDING, defaults.landing),  # type: ignore[arg-type]
            partitioned=get(PARTITIONED, defaults.partitioned),  # type: ignore[arg-type]
            rules=get(RULES, None),
            pg_dsn=get(PG_DSN, None),
            timezone=get(TIMEZONE, defaults.timezone),  # type: ignore[arg-type]
            start_date=get(START_DATE, defaults.start_date),  # type: ignore[arg-type]
            pg_dir=get(PG_DIR, defaults.pg_dir),  # type: ignore[arg-type]
            max_concurrent=int(get(MAX_CONCURRENT, None) or defaults.max_concurrent),
            max_new_columns=int(get(MAX_NEW_COLUMNS, None) or defaults.max_new_columns),
        )
