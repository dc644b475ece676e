"""The analyst role: reads only `rpt_analyst`, where NHI numbers are keyed pseudonyms.

`ensure_analyst` (inside bootstrap's transaction) creates the role, the schema `rpt_analyst`
(owned by the owner role; the analyst may use it, SELECT its views and EXECUTE its `_as_of`
functions, now and later) and the schema `indici_keys` with the pseudonym key, which only the
owner role may read. The views themselves are made as rpt tables are (`warehouse/analyst_views`).

The key: an HMAC-SHA256 key, taken from `INDICI_PSEUDONYM_KEY` (at least 32 characters) or
generated from the operating system's randomness, stored as its HMAC inner and outer pads.
Bootstrap run again keeps it; `rotate_pseudonym_key` replaces it, which re-keys every pseudonym
at once (the views compute them as they are read). The statement that stores it runs with
`log_statement` off, so it does not reach the server's log.
"""

import hashlib
import secrets

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.admin.bootstrap_catalog import default_privileges, fetch_one
from indici_dagster.core.admin.roles import BootstrapError
from indici_dagster.core.pipeline_names import (
    ANALYST_SCHEMA,
    KEYS_SCHEMA,
    PSEUDONYM_KEY_TABLE,
    RPT_SCHEMA,
    STAGING_SCHEMA,
)

MIN_KEY_CHARACTERS = 32
KEY_VARIABLE = "INDICI_PSEUDONYM_KEY"
_BLOCK = 64
"""SHA-256's block size: the HMAC key is padded (or first hashed) to it."""
READ_ALL_ROLES = ("pg_read_all_data", "pg_read_all_stats", "pg_monitor", "pg_read_server_files")
"""Built-in roles that would let the analyst read past its views, or every session's
statements in `pg_stat_statements`: an analyst holding one is refused."""

_KEY_TABLE = sql.SQL(
    "CREATE TABLE IF NOT EXISTS {}.{} (id smallint PRIMARY KEY CHECK (id = 1), "
    "inner_key bytea NOT NULL, outer_key bytea NOT NULL, "
    "created_at timestamptz NOT NULL DEFAULT pg_catalog.now())"
).format(sql.Identifier(KEYS_SCHEMA), sql.Identifier(PSEUDONYM_KEY_TABLE))
_STORE_KEY = sql.SQL(
    "INSERT INTO {}.{} (id, inner_key, outer_key) VALUES (1, %s, %s) "
    "ON CONFLICT (id) DO UPDATE SET inner_key = EXCLUDED.inner_key, "
    "outer_key = EXCLUDED.outer_key, created_at = pg_catalog.now()"
).format(sql.Identifier(KEYS_SCHEMA), sql.Identifier(PSEUDONYM_KEY_TABLE))


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's (inner, outer) padded keys for `key` (RFC 2104): with them,
    `sha256(outer || sha256(inner || message))` is `hmac(key, message)`."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def key_from_text(given: str | None) -> bytes:
    """The key from `INDICI_PSEUDONYM_KEY`'s text, or 32 random bytes when none is given;
    raises `BootstrapError` naming the variable for one shorter than 32 characters."""
    if given is None:
        return secrets.token_bytes(32)
    if len(given.strip()) < MIN_KEY_CHARACTERS:
        raise BootstrapError(
            f"{KEY_VARIABLE} is too short: a pseudonym key needs at least "
            f"{MIN_KEY_CHARACTERS} characters"
        )
    return given.strip().encode("utf-8")


def _store_key(cursor: Cursor, key: bytes) -> None:
    cursor.execute("SET LOCAL log_statement = 'none'")  # the key stays out of the server's log
    cursor.execute(_STORE_KEY, hmac_pads(key))
    cursor.execute("RESET log_statement")


def _owned_schema(cursor: Cursor, schema: str, owner: str) -> list[str]:
    schema_id, owner_id = sql.Identifier(schema), sql.Identifier(owner)
    row = fetch_one(
        cursor, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (schema,)
    )
    if row is None:
        cursor.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(schema_id, owner_id))
        action = f"created schema {schema} owned by {owner}"
    elif row[0] != owner:
        cursor.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(schema_id, owner_id))
        action = f"schema {schema} was owned by {row[0]}; now owned by {owner}"
    else:
        action = f"schema {schema} already owned by {owner}"
    cursor.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(schema_id))
    return [action]


def ensure_analyst(
    cursor: Cursor, owner: str, writer: str, reader: str, analyst: str, key_text: str | None
) -> list[str]:
    """Inside bootstrap's transaction, with `analyst` already an existing login role: the
    analyst's schema and privileges and the pseudonym key (kept if there is one).

    The analyst may use `rpt_analyst` only: no privilege on `rpt`, `indici_staging` or
    `indici_keys`, and no role that reads every table or every session's statements."""
    actions: list[str] = []
    holding = [
        role
        for role in READ_ALL_ROLES
        if fetch_one(cursor, "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        and fetch_one(cursor, "SELECT pg_has_role(%s, %s, 'MEMBER')", (analyst, role))[0]
    ]
    if holding:
        raise BootstrapError(
            f"role {analyst} is a member of {', '.join(holding)}, which would let it read past "
            f"its views; REVOKE that first or use another analyst role"
        )
    analyst_id = sql.Identifier(analyst)
    actions += _owned_schema(cursor, KEYS_SCHEMA, owner)
    cursor.execute(_KEY_TABLE)
    table = sql.Identifier(KEYS_SCHEMA, PSEUDONYM_KEY_TABLE)
    cursor.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(table, sql.Identifier(owner)))
    for role in (writer, reader, analyst):
        cursor.execute(
            sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(
                sql.Identifier(KEYS_SCHEMA), sql.Identifier(role)
            )
        )
        cursor.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(table, sql.Identifier(role)))
    if fetch_one(cursor, sql.SQL("SELECT 1 FROM {}").format(table)) is None:
        _store_key(cursor, key_from_text(key_text))
        source = KEY_VARIABLE if key_text is not None else "generated"
        actions.append(f"stored a new pseudonym key ({source}) that only {owner} may read")
    else:
        note = f" ({KEY_VARIABLE} not used: rotate with `indici analyst rotate-key`)"
        actions.append("kept the pseudonym key" + (note if key_text is not None else ""))

    actions += _owned_schema(cursor, ANALYST_SCHEMA, owner)
    schema_id = sql.Identifier(ANALYST_SCHEMA)
    cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema_id, analyst_id))
    cursor.execute(
        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema_id, analyst_id)
    )
    cursor.execute(
        sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO {}").format(schema_id, analyst_id)
    )
    default_privileges(
        cursor, owner, "IN SCHEMA {} GRANT SELECT ON TABLES TO {}", ANALYST_SCHEMA, analyst
    )
    default_privileges(
        cursor, owner, "IN SCHEMA {} GRANT EXECUTE ON FUNCTIONS TO {}", ANALYST_SCHEMA, analyst
    )
    for schema in (RPT_SCHEMA, STAGING_SCHEMA):
        cursor.execute(
            sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(sql.Identifier(schema), analyst_id)
        )
        cursor.execute(
            sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(
                sql.Identifier(schema), analyst_id
            )
        )
    actions.append(
        f"{analyst} may read only schema {ANALYST_SCHEMA}: its views and _as_of functions, now "
        f"and later, NHI numbers pseudonymised; nothing in {RPT_SCHEMA}, {STAGING_SCHEMA} or "
        f"{KEYS_SCHEMA}"
    )
    waiting = _tables_without_view(cursor)
    if waiting:
        actions.append(
            f"{len(waiting)} rpt table(s) have no {ANALYST_SCHEMA} view yet "
            f"({', '.join(waiting)}): each appears at its dataset's next rpt load "
            "(a new file, or re-materializing its indici/rpt asset for a loaded date)"
        )
    return actions


_WITHOUT_VIEW = """
SELECT c.relname FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(rpt)s AND c.relkind = 'r' AND c.relname !~ '_past$'
  AND EXISTS (SELECT FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = c.oid AND a.attname = '_source_file' AND NOT a.attisdropped)
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_class v
                  JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
                  WHERE vn.nspname = %(analyst)s AND v.relname = c.relname)
ORDER BY c.relname
"""


def _tables_without_view(cursor: Cursor) -> list[str]:
    """The rpt data tables (not history stores) that have no analyst view yet: the views are
    made by rpt loads, so right after a first `--analyst` bootstrap these are all of them."""
    cursor.execute(_WITHOUT_VIEW, {"rpt": RPT_SCHEMA, "analyst": ANALYST_SCHEMA})
    return [name for (name,) in cursor.fetchall()]


def rotate_pseudonym_key(cursor: Cursor, key_text: str | None) -> str:
    """Inside the caller's transaction (as an administrator): replace the key, which re-keys
    every pseudonym of every view at once; raises `BootstrapError` where there is none."""
    table = sql.Identifier(KEYS_SCHEMA, PSEUDONYM_KEY_TABLE)
    if (
        fetch_one(cursor, "SELECT to_regclass(%s)", (f"{KEYS_SCHEMA}.{PSEUDONYM_KEY_TABLE}",))[0]
        is None
    ):
        raise BootstrapError("there is no pseudonym key: run `indici bootstrap --analyst ROLE`")
    cursor.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(table))
    _store_key(cursor, key_from_text(key_text))
    source = KEY_VARIABLE if key_text is not None else "generated"
    return f"replaced the pseudonym key ({source}): every pseudonym changed at once"
