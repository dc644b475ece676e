"""Roles bootstrap creates or checks: a login role with no elevated attribute, or the NOLOGIN
owner; a given password is set as a client-side hash."""

import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.admin.bootstrap_catalog import fetch_one

ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
"""Attributes of a login role bootstrap creates (a constant: never built from input)."""
OWNER_ATTRIBUTES = "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
"""Attributes of the owner role bootstrap creates."""

_ELEVATED = ("SUPERUSER", "CREATEDB", "CREATEROLE", "BYPASSRLS")
"""Role attributes bootstrap refuses on an existing role, in the order it selects them."""


class BootstrapError(RuntimeError):
    """Bootstrap refused to run; nothing was changed. The message holds no password."""


def ensure_role(
    cursor: Cursor,
    connection: psycopg2.extensions.connection,
    role: str,
    password: str | None,
    attributes: str = ROLE_ATTRIBUTES,
) -> list[str]:
    """Create `role` if missing; refuse an elevated one (or an owner that can log in); set its
    password if given, hashed by libpq so the clear text never reaches the server."""
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
