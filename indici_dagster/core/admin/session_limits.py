"""Session limits bootstrap gives a reporting role: an idle-in-transaction timeout, a statement
timeout and a connection limit.

They stop a forgotten transaction, a runaway query or a leaking connection pool of one analyst
from holding the server's connections, its vacuum horizon and (until the session ends) a lock
the pipeline's DDL waits for. They are role defaults (`ALTER ROLE ... SET`), which a session may
change for itself, so they do not protect the other readers from a reader that means harm: the
pipeline's own short DDL `lock_timeout` (`core.warehouse.ddl_locks`) does that.

`ensure_session_limits` is written for any reporting role: the reader now, an analyst role later.
"""

import re
from dataclasses import dataclass

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

_DURATION = re.compile(r"([1-9][0-9]{0,7})(ms|s|min|h)")
_MILLISECONDS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000}
MIN_TIMEOUT_MS = 1000
MAX_TIMEOUT_MS = 24 * 3_600_000
DURATION_FORM = "a whole number with a unit (ms, s, min or h) from 1s to 24h, like 2min"
MAX_CONNECTION_LIMIT = 10_000
CONNECTION_LIMIT_FORM = f"a whole number of connections from 1 to {MAX_CONNECTION_LIMIT}"


class SessionLimitError(ValueError):
    """A limit is not of its expected form; the message names the limit, never the value."""


def parse_duration(text: str, name: str) -> str:
    """`text` as PostgreSQL will store it (`2min`), if it is a whole number with a unit between
    1 s and 24 h; else `SessionLimitError` naming `name`."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is not None:
        milliseconds = int(match.group(1)) * _MILLISECONDS[match.group(2)]
        if MIN_TIMEOUT_MS <= milliseconds <= MAX_TIMEOUT_MS:
            return f"{int(match.group(1))}{match.group(2)}"
    raise SessionLimitError(f"{name}: expected {DURATION_FORM}")


def parse_connection_limit(value: str | int, name: str) -> int:
    """`value` as a connection limit from 1 to `MAX_CONNECTION_LIMIT`; else `SessionLimitError`
    naming `name` (0 or -1, "none" or "unlimited", are refused: a limit is the point)."""
    text = str(value).strip() if isinstance(value, str | int) else ""
    if re.fullmatch(r"[1-9][0-9]{0,4}", text) and int(text) <= MAX_CONNECTION_LIMIT:
        return int(text)
    raise SessionLimitError(f"{name}: expected {CONNECTION_LIMIT_FORM}")


@dataclass(frozen=True)
class SessionLimits:
    """What a reporting role's sessions may hold; checked when made."""

    idle_in_transaction_timeout: str
    """`idle_in_transaction_session_timeout`: a session idle inside a transaction this long is
    ended (and its locks and snapshot go with it)."""
    statement_timeout: str
    """`statement_timeout`: a statement running this long is cancelled."""
    connection_limit: int
    """`CONNECTION LIMIT`: sessions of the role at once, across the server."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "idle_in_transaction_timeout",
            parse_duration(self.idle_in_transaction_timeout, "idle_in_transaction_timeout"),
        )
        object.__setattr__(
            self, "statement_timeout", parse_duration(self.statement_timeout, "statement_timeout")
        )
        object.__setattr__(
            self,
            "connection_limit",
            parse_connection_limit(self.connection_limit, "connection_limit"),
        )

    def settings(self) -> dict[str, str]:
        """The role's settings by PostgreSQL parameter name."""
        return {
            "idle_in_transaction_session_timeout": self.idle_in_transaction_timeout,
            "statement_timeout": self.statement_timeout,
        }


DEFAULT_READER_LIMITS = SessionLimits(
    idle_in_transaction_timeout="2min", statement_timeout="30min", connection_limit=20
)
"""The reader's limits unless `indici bootstrap` is told otherwise (README, "Database roles").
The idle timeout is shorter than a pipeline step's whole retry span (about 4 minutes of DDL
attempts and step retries), so a forgotten open transaction ends before the step gives up."""


_CURRENT = (
    "SELECT r.rolconnlimit, coalesce(s.setconfig, '{}') FROM pg_catalog.pg_roles r "
    "LEFT JOIN pg_catalog.pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0 "
    "WHERE r.rolname = %s"
)
"""The role's connection limit and its own (all-database) settings, as `name=value` texts."""
_IN_THIS_DATABASE = (
    "SELECT coalesce(s.setconfig, '{}') FROM pg_catalog.pg_db_role_setting s "
    "JOIN pg_catalog.pg_roles r ON r.oid = s.setrole "
    "JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase "
    "WHERE r.rolname = %s AND d.datname = pg_catalog.current_database()"
)
"""The role's settings for this database only (`ALTER ROLE ... IN DATABASE`): they would win
over the role's own."""


def ensure_session_limits(cursor: Cursor, role: str, limits: SessionLimits) -> list[str]:
    """Give `role` (an existing role) these limits, for every session it starts from now on:
    `ALTER ROLE ... SET` for the two timeouts (in every database), `ALTER ROLE ... CONNECTION
    LIMIT`; a setting of the role for this database alone (`ALTER ROLE ... IN DATABASE`), which
    would win over them, is reset. Idempotent; a changed value replaces the old one. Returns one
    action, saying whether anything changed. Sessions already open keep their settings."""
    cursor.execute(_CURRENT, (role,))
    connection_limit, config = cursor.fetchone()
    wanted = limits.settings()
    current = dict(item.split("=", 1) for item in config if "=" in item)
    role_id = sql.Identifier(role)
    changed = False
    for parameter, value in wanted.items():
        if current.get(parameter) != value:
            # parameter names are this module's constants; the value travels as a literal
            cursor.execute(
                sql.SQL("ALTER ROLE {} SET {} = {}").format(
                    role_id, sql.Identifier(parameter), sql.Literal(value)
                )
            )
            changed = True
    cursor.execute(_IN_THIS_DATABASE, (role,))
    overrides = {item.split("=", 1)[0] for row in cursor.fetchall() for item in row[0]}
    for parameter in sorted(overrides & wanted.keys()):
        cursor.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} RESET {}").format(
                role_id, sql.Identifier(_current_database(cursor)), sql.Identifier(parameter)
            )
        )
        changed = True
    if connection_limit != limits.connection_limit:
        cursor.execute(
            sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(
                role_id, sql.Literal(limits.connection_limit)
            )
        )
        changed = True
    state = "set now" if changed else "unchanged"
    return [
        f"role {role} sessions: idle_in_transaction_session_timeout "
        f"{limits.idle_in_transaction_timeout}, statement_timeout {limits.statement_timeout}, "
        f"connection limit {limits.connection_limit} ({state})"
    ]


def _current_database(cursor: Cursor) -> str:
    cursor.execute("SELECT pg_catalog.current_database()")
    return cursor.fetchone()[0]
