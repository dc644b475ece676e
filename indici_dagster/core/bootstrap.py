"""Least-privilege roles and schemas for the warehouse, set up once by an administrator.

`bootstrap_database` is the source of truth; `indici_dagster/sql/bootstrap.sql` is the same
thing for a DBA with psql (a test compares the privileges both leave behind).

After it has run, in the database of `admin_dsn`:

- the writer role (the pipeline's `INDICI_PG_DSN` user) owns the schemas `indici_staging` and
  `rpt` and every table in them, so it has USAGE and CREATE there; it has CONNECT on the
  database and nothing else it did not already have: no CREATE on the database (it cannot make
  other schemas) and no privilege on `public`, where `PUBLIC` may no longer create anything;
- the reader role has CONNECT, USAGE on `rpt`, SELECT (only) on every table in `rpt`, now and
  created later by the writer (default privileges), and no privilege on `indici_staging`, whose
  tables hold raw patient rows;
- `PUBLIC` has no privilege on either schema.

Both roles are created if missing as LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; an existing role
is left as it is, except that a given password is (re)set, and a role with SUPERUSER,
CREATEDB, CREATEROLE or BYPASSRLS is refused rather than silently changed. Passwords are hashed
by libpq on the client (`encrypt_password`, the server's `password_encryption`), so the clear
text reaches neither the server's statement log nor the returned actions.

Everything runs in one transaction, so a failure changes nothing, and running it again changes
nothing more: it is safe to run any number of times.
"""

import contextlib
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.dsn import ConnectionFailedError, connect
from indici_dagster.core.naming import InvalidIdentifierError, validate_identifier
from indici_dagster.core.sql import RPT_SCHEMA, STAGING_SCHEMA

DEFAULT_WRITER = "indici_writer"
DEFAULT_READER = "indici_reader"
ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
"""Attributes of a role bootstrap creates (a constant: never built from input)."""

_ELEVATED = ("SUPERUSER", "CREATEDB", "CREATEROLE", "BYPASSRLS")
"""Role attributes bootstrap refuses on an existing role, in the order it selects them."""


class BootstrapError(RuntimeError):
    """Bootstrap refused to run; nothing was changed. The message holds no password."""


@contextlib.contextmanager
def _admin_connection(admin_dsn: str) -> Iterator[psycopg2.extensions.connection]:
    try:
        connection = connect(
            admin_dsn, variable="the administrator's DSN", application_name="indici-bootstrap"
        )
    except ConnectionFailedError as error:
        message = str(error)
    else:
        try:
            yield connection
        finally:
            connection.close()
        return
    raise BootstrapError(message)  # outside the handler: no chained cause


def _one(cursor: Cursor, query: str, params: tuple = ()) -> tuple | None:
    cursor.execute(query, params)
    return cursor.fetchone()


def _ensure_role(
    cursor: Cursor, connection: psycopg2.extensions.connection, role: str, password: str | None
) -> list[str]:
    """Create `role` if missing; refuse an elevated one; set its password if given."""
    row = _one(
        cursor,
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolcanlogin "
        "FROM pg_roles WHERE rolname = %s",
        (role,),
    )
    actions: list[str] = []
    if row is None:
        cursor.execute(sql.SQL("CREATE ROLE {} " + ROLE_ATTRIBUTES).format(sql.Identifier(role)))
        actions.append(f"created role {role} ({ROLE_ATTRIBUTES})")
    else:
        elevated = [name for name, value in zip(_ELEVATED, row[:4], strict=True) if value]
        if elevated:
            raise BootstrapError(
                f"role {role} exists with {', '.join(elevated)}; bootstrap will not grant to it. "
                f"Use another name, or ALTER ROLE {role} NO{' NO'.join(elevated)} first"
            )
        note = "" if row[4] else " (NOLOGIN: it cannot connect until ALTER ROLE ... LOGIN)"
        actions.append(f"role {role} exists; attributes left as they are{note}")
    if password is not None:
        if not password:
            raise BootstrapError(f"the password for role {role} is empty")
        # hashed by libpq with the server's password_encryption: the clear text is never sent
        verifier = psycopg2.extensions.encrypt_password(password, role, connection)
        cursor.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier))
        )
        actions.append(f"set the password of role {role}")
    return actions


def _ensure_schema(cursor: Cursor, schema: str, writer: str) -> list[str]:
    """Create `schema` owned by the writer, or hand it and its tables to the writer."""
    schema_id, writer_id = sql.Identifier(schema), sql.Identifier(writer)
    row = _one(
        cursor,
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s",
        (schema,),
    )
    actions: list[str] = []
    if row is None:
        cursor.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(schema_id, writer_id))
        actions.append(f"created schema {schema} owned by {writer}")
    elif row[0] != writer:
        cursor.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(schema_id, writer_id))
        actions.append(f"schema {schema} was owned by {row[0]}; now owned by {writer}")
    else:
        actions.append(f"schema {schema} already owned by {writer}")
    # the pipeline alters its tables (new columns): it must own every table it writes
    cursor.execute(
        "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relowner <> %s::regrole "
        "ORDER BY c.relname",
        (schema, writer),
    )
    for table, owner in cursor.fetchall():
        cursor.execute(
            sql.SQL("ALTER TABLE {}.{} OWNER TO {}").format(
                schema_id, sql.Identifier(table), writer_id
            )
        )
        actions.append(f"table {schema}.{table} was owned by {owner}; now owned by {writer}")
    cursor.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(schema_id))
    actions.append(f"revoked every privilege on schema {schema} from PUBLIC")
    return actions


def bootstrap_database(
    admin_dsn: str,
    *,
    writer: str = DEFAULT_WRITER,
    reader: str = DEFAULT_READER,
    writer_password: str | None = None,
    reader_password: str | None = None,
) -> list[str]:
    """Set up the writer and reader roles and the two schemas in the database of `admin_dsn`.

    Run by an administrator (a superuser, or a role that may create roles and is a member of
    the writer role). Guarantees the state described in this module's docstring, in one
    transaction, idempotently. Returns the actions taken, in order, in plain words; they name
    roles, schemas and tables, never a password or the DSN's password. Raises `BootstrapError`
    (nothing changed) for invalid or clashing role names, an existing elevated role or a
    failed connection; a refusal by the server (e.g. an administrator lacking a privilege)
    raises its `psycopg2.Error`, also with nothing changed.
    """
    for role in (writer, reader):
        try:
            validate_identifier(role)
        except InvalidIdentifierError as error:
            raise BootstrapError(f"role name: {error}") from None
    if writer == reader:
        raise BootstrapError("the writer and the reader must be different roles")
    writer_id, reader_id = sql.Identifier(writer), sql.Identifier(reader)
    rpt, staging = sql.Identifier(RPT_SCHEMA), sql.Identifier(STAGING_SCHEMA)
    actions: list[str] = []
    with _admin_connection(admin_dsn) as connection, connection.cursor() as cursor:
        database, admin = _one(cursor, "SELECT current_database(), current_user")  # type: ignore[misc]
        if admin in (writer, reader):
            raise BootstrapError(f"run bootstrap as an administrator, not as role {admin}")
        database_id = sql.Identifier(database)
        # role names are cluster-wide: serialise concurrent bootstraps
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('indici_dagster:bootstrap'))")

        actions += _ensure_role(cursor, connection, writer, writer_password)
        actions += _ensure_role(cursor, connection, reader, reader_password)

        cursor.execute(
            sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}, {}").format(
                database_id, writer_id, reader_id
            )
        )
        cursor.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(
                database_id, writer_id, reader_id
            )
        )
        actions.append(
            f"granted CONNECT (and revoked CREATE) on database {database} to {writer}, {reader}"
        )

        if _one(cursor, "SELECT 1 FROM pg_namespace WHERE nspname = 'public'"):
            cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            cursor.execute(
                sql.SQL("REVOKE ALL ON SCHEMA public FROM {}, {}").format(writer_id, reader_id)
            )
            actions.append(
                f"revoked CREATE on schema public from PUBLIC, and every privilege on it "
                f"from {writer}, {reader}"
            )

        actions += _ensure_schema(cursor, STAGING_SCHEMA, writer)
        actions += _ensure_schema(cursor, RPT_SCHEMA, writer)

        cursor.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(staging, reader_id))
        cursor.execute(
            sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(staging, reader_id)
        )
        cursor.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} REVOKE ALL ON TABLES FROM {}"
            ).format(writer_id, staging, reader_id)
        )
        actions.append(f"{reader} has no privilege on schema {STAGING_SCHEMA} or its tables")

        cursor.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(rpt, reader_id))
        cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(rpt, reader_id))
        cursor.execute(
            sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(rpt, reader_id)
        )
        cursor.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(rpt, reader_id)
        )
        cursor.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} REVOKE ALL ON TABLES FROM {}"
            ).format(writer_id, rpt, reader_id)
        )
        cursor.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}"
            ).format(writer_id, rpt, reader_id)
        )
        actions.append(
            f"granted {reader} USAGE on schema {RPT_SCHEMA} and SELECT (only) on its tables, "
            f"including those {writer} creates later"
        )
        connection.commit()
    return actions
