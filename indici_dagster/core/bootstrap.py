"""Least-privilege roles and schemas for the warehouse, set up once by an administrator.

`bootstrap_database` is the source of truth; `indici_dagster/sql/bootstrap.sql` is the same
thing for a DBA with psql (a test compares the privileges both leave behind).

After it has run, in the database of `admin_dsn`:

- only the writer and the reader may connect: `PUBLIC` loses CONNECT and TEMPORARY on the
  database, and neither role may create schemas or temporary tables there;
- the owner role (`<writer>_owner`, NOLOGIN: nobody logs in as it) owns the schemas
  `indici_staging` and `rpt` and the pipeline's own tables (audit log, landing ledger, row
  counts, locks). The writer has USAGE and CREATE on both schemas and owns the data tables it
  creates there; on the audit log it has INSERT and SELECT only (append-only: no UPDATE, DELETE
  or TRUNCATE), on the ledger, row counts and locks SELECT, INSERT and UPDATE (the pipeline
  never deletes a row of them). Not owning the schemas, the writer cannot grant USAGE on them,
  so no grant it makes on a staging table reaches anyone;
- an event trigger lets the writer run no DDL but CREATE TABLE, CREATE INDEX and ALTER TABLE:
  no GRANT or REVOKE, no ALTER DEFAULT PRIVILEGES, no functions, views or triggers, no DROP
  (creating an event trigger needs a superuser, or rds_superuser on RDS);
- the reader has CONNECT, USAGE on `rpt`, SELECT (only) on every table in `rpt`, now and
  created later by the writer (default privileges), and no privilege on `indici_staging`, whose
  tables hold raw patient rows; `PUBLIC` has no privilege on either schema, and may no longer
  create in `public`, where neither role has any privilege;
- the reader's sessions have an idle-in-transaction timeout, a statement timeout and a
  connection limit (`reader_limits`, `core.session_limits`), updated when they change.

Residual risk, by design: the writer writes `rpt`, so whatever it puts there the reader reads,
and it may alter, truncate or empty its own data tables.

The writer and reader are created if missing as LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE, the
owner as NOLOGIN; an existing role is left as it is, except that a given password is (re)set,
and a role with SUPERUSER, CREATEDB, CREATEROLE or BYPASSRLS (or an owner role that can log in)
is refused rather than silently changed. Passwords are hashed by libpq on the client
(`encrypt_password`, the server's `password_encryption`), so the clear text reaches neither the
server's statement log nor the returned actions.

Everything runs in one transaction, so a failure changes nothing, and running it again changes
nothing more: it is safe to run any number of times.
"""

import contextlib
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.bootstrap_catalog import (
    WRITER_CATALOG_PRIVILEGES,
    ensure_catalog_tables,
    ensure_ddl_guard,
    fetch_one,
)
from indici_dagster.core.dsn import ConnectionFailedError, connect
from indici_dagster.core.naming import InvalidIdentifierError, validate_identifier
from indici_dagster.core.session_limits import (
    DEFAULT_READER_LIMITS,
    SessionLimits,
    ensure_session_limits,
)
from indici_dagster.core.sql import RPT_SCHEMA, STAGING_SCHEMA

DEFAULT_WRITER = "indici_writer"
DEFAULT_READER = "indici_reader"
OWNER_SUFFIX = "_owner"
ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
"""Attributes of a login role bootstrap creates (a constant: never built from input)."""
OWNER_ATTRIBUTES = "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
"""Attributes of the owner role bootstrap creates."""

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


def _ensure_role(
    cursor: Cursor,
    connection: psycopg2.extensions.connection,
    role: str,
    password: str | None,
    attributes: str = ROLE_ATTRIBUTES,
) -> list[str]:
    """Create `role` if missing; refuse an elevated one; set its password if given."""
    row = fetch_one(
        cursor,
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolcanlogin "
        "FROM pg_roles WHERE rolname = %s",
        (role,),
    )
    actions: list[str] = []
    login = attributes.startswith("LOGIN")
    if row is None:
        cursor.execute(sql.SQL("CREATE ROLE {} " + attributes).format(sql.Identifier(role)))
        actions.append(f"created role {role} ({attributes})")
    else:
        elevated = [name for name, value in zip(_ELEVATED, row[:4], strict=True) if value]
        if elevated:
            raise BootstrapError(
                f"role {role} exists with {', '.join(elevated)}; bootstrap will not grant to it. "
                f"Use another name, or ALTER ROLE {role} NO{' NO'.join(elevated)} first"
            )
        if not login and row[4]:
            raise BootstrapError(
                f"role {role} exists and can log in; the owner role must be NOLOGIN. "
                f"ALTER ROLE {role} NOLOGIN first, or use another writer name"
            )
        note = "" if row[4] or not login else " (NOLOGIN: it cannot connect until ALTER ROLE ...)"
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


def _ensure_schema(cursor: Cursor, schema: str, owner: str, writer: str) -> list[str]:
    """Create `schema` owned by the owner role, or hand it to it; the pipeline's own tables go
    to the owner, every other table (the data the writer loads and alters) to the writer."""
    schema_id, owner_id, writer_id = (sql.Identifier(n) for n in (schema, owner, writer))
    row = fetch_one(
        cursor,
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s",
        (schema,),
    )
    actions: list[str] = []
    if row is None:
        cursor.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(schema_id, owner_id))
        actions.append(f"created schema {schema} owned by {owner}")
    elif row[0] != owner:
        cursor.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(schema_id, owner_id))
        actions.append(f"schema {schema} was owned by {row[0]}; now owned by {owner}")
    else:
        actions.append(f"schema {schema} already owned by {owner}")
    catalog = sorted(WRITER_CATALOG_PRIVILEGES) if schema == STAGING_SCHEMA else []
    cursor.execute(
        "SELECT c.relname, pg_get_userbyid(c.relowner), "
        "CASE WHEN c.relname = ANY(%s) THEN %s ELSE %s END FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
        (catalog, owner, writer, schema),
    )
    for table, current, wanted in cursor.fetchall():
        if current != wanted:
            cursor.execute(
                sql.SQL("ALTER TABLE {}.{} OWNER TO {}").format(
                    schema_id, sql.Identifier(table), sql.Identifier(wanted)
                )
            )
            actions.append(f"table {schema}.{table} was owned by {current}; now owned by {wanted}")
    cursor.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(schema_id))
    cursor.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(schema_id, writer_id))
    actions.append(
        f"revoked every privilege on schema {schema} from PUBLIC; {writer} may use it and "
        "create tables in it"
    )
    return actions


def bootstrap_database(
    admin_dsn: str,
    *,
    writer: str = DEFAULT_WRITER,
    reader: str = DEFAULT_READER,
    writer_password: str | None = None,
    reader_password: str | None = None,
    reader_limits: SessionLimits = DEFAULT_READER_LIMITS,
) -> list[str]:
    """Set up the owner, writer and reader roles, the two schemas and the pipeline's tables in
    the database of `admin_dsn`.

    Run by an administrator (a superuser, or rds_superuser on RDS). Guarantees the state
    described in this module's docstring, in one transaction, idempotently. Returns the actions
    taken, in order, in plain words; they name roles, schemas and tables, never a password or
    any part of the DSN but host, port, database and user. Raises `BootstrapError` (nothing
    changed) for invalid or clashing role names, an existing elevated role, a failed connection
    or a missing privilege to create the event trigger; any other refusal by the server raises
    its `psycopg2.Error`, also with nothing changed.
    """
    for role in (writer, reader):
        try:
            validate_identifier(role)
        except InvalidIdentifierError as error:
            raise BootstrapError(f"role name: {error}") from None
    owner = writer + OWNER_SUFFIX
    try:
        validate_identifier(owner)
    except InvalidIdentifierError:
        raise BootstrapError(f"role name {writer} is too long for its owner role") from None
    if writer == reader or reader == owner:
        raise BootstrapError("the writer and the reader must be different roles")
    writer_id, reader_id = sql.Identifier(writer), sql.Identifier(reader)
    owner_id = sql.Identifier(owner)
    rpt, staging = sql.Identifier(RPT_SCHEMA), sql.Identifier(STAGING_SCHEMA)
    actions: list[str] = []
    with _admin_connection(admin_dsn) as connection, connection.cursor() as cursor:
        database, admin = fetch_one(cursor, "SELECT current_database(), current_user")  # type: ignore[misc]
        if admin in (writer, reader, owner):
            raise BootstrapError(f"run bootstrap as an administrator, not as role {admin}")
        database_id = sql.Identifier(database)
        # role names are cluster-wide: serialise concurrent bootstraps, but never wait forever
        cursor.execute("SET LOCAL lock_timeout = '60s'")
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('indici_dagster:bootstrap'))")

        actions += _ensure_role(cursor, connection, writer, writer_password)
        actions += _ensure_role(cursor, connection, reader, reader_password)
        actions += _ensure_role(cursor, connection, owner, None, OWNER_ATTRIBUTES)
        actions += ensure_session_limits(cursor, reader, reader_limits)

        cursor.execute(
            sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(database_id)
        )
        cursor.execute(
            sql.SQL("REVOKE CREATE, TEMPORARY ON DATABASE {} FROM {}, {}, {}").format(
                database_id, writer_id, reader_id, owner_id
            )
        )
        cursor.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(
                database_id, writer_id, reader_id
            )
        )
        actions.append(
            f"revoked CONNECT and TEMPORARY on database {database} from PUBLIC; granted CONNECT "
            f"(only: no CREATE, no TEMPORARY) to {writer}, {reader}"
        )

        if fetch_one(cursor, "SELECT 1 FROM pg_namespace WHERE nspname = 'public'"):
            cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            cursor.execute(
                sql.SQL("REVOKE ALL ON SCHEMA public FROM {}, {}, {}").format(
                    writer_id, reader_id, owner_id
                )
            )
            actions.append(
                f"revoked CREATE on schema public from PUBLIC, and every privilege on it "
                f"from {writer}, {reader}"
            )

        actions += _ensure_schema(cursor, STAGING_SCHEMA, owner, writer)
        actions += _ensure_schema(cursor, RPT_SCHEMA, owner, writer)
        actions += ensure_catalog_tables(cursor, owner, writer, reader)
        try:
            actions += ensure_ddl_guard(cursor, owner)
        except psycopg2.errors.InsufficientPrivilege:
            refused = True
        else:
            refused = False
        if refused:  # raised outside the handler: nothing of the server's text is kept
            raise BootstrapError(
                "creating the event trigger that limits the writer's DDL needs a superuser "
                "(or rds_superuser on RDS); run bootstrap as one"
            )

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
