"""Connecting to PostgreSQL without a DSN's text ever reaching an error, a log or the UI.

A DSN can hold a password, and libpq's own messages quote pieces of a DSN it cannot parse
(`missing "=" after "horse" in connection info string`), so nothing of a DSN's text or of
libpq's message leaves here: errors are rebuilt from the parsed host, port, database and user,
and from a fixed phrase for the kind of failure.
"""

import psycopg2
import psycopg2.extensions

INVALID_DSN = "is not a valid libpq DSN or URL"

_SHOWN = (("host", "host"), ("port", "port"), ("dbname", "database"), ("user", "user"))
"""The DSN parts a description names, in order; never the password or anything else."""

_REASONS = (
    ("password authentication failed", "password authentication failed"),
    ("no password supplied", "no password supplied"),
    ("fe_sendauth", "no password supplied"),
    ("pg_hba.conf", "refused by the server's pg_hba.conf"),
    ("Connection refused", "connection refused"),
    ("timeout expired", "timed out"),
    ("could not translate host name", "host name not found"),
    ("No such file or directory", "no server socket there"),
    ("Permission denied", "permission denied"),
    ("starting up", "the server is starting up"),
    ("shutting down", "the server is shutting down"),
    ("too many clients", "too many connections"),
    ("SSL", "SSL negotiation failed"),
    ("server closed the connection", "the server closed the connection"),
)
"""libpq message fragments -> the fixed phrase reported for them (first match wins)."""

_SQLSTATE_REASONS = {
    "3D000": "the database does not exist",
    "28000": "the role is not permitted to log in (or does not exist)",
    "28P01": "password authentication failed",
    "42501": "permission denied",
    "53300": "too many connections",
    "57P03": "the server is not accepting connections",
}


class ConnectionFailedError(psycopg2.OperationalError):
    """A connection could not be made; the message names only host, port, database and user."""


def _printable(value: str) -> str:
    """`value` with control characters escaped, so a name prints on one plain line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)


def _parts(dsn: str) -> dict[str, str] | None:
    """The DSN's parts as libpq reads them, or None if it cannot, or if it misreads them.

    A URL whose password holds an unencoded `@` or `/` parses, but wrongly: a piece of the
    password becomes the host, port or database. Such a URL counts as invalid, so that no
    piece of it is ever named.
    """
    try:
        parts = psycopg2.extensions.parse_dsn(dsn)
    except Exception:  # its text quotes the DSN: nothing of it is kept
        return None
    if "://" in dsn.split("=", 1)[0]:
        rest = dsn.split("://", 1)[1].split("?", 1)[0]
        if rest.count("@") > 1 or ("@" in rest and "/" in rest.rsplit("@", 1)[0]):
            return None
    hosts = (parts.get("host") or "").split(",")
    if any(not h.startswith("/") and ("@" in h or " " in h) for h in hosts):
        return None
    if not all(p.isdigit() for p in (parts.get("port") or "0").split(",") if p):
        return None
    return parts


def describe_dsn(dsn: str, variable: str = "INDICI_PG_DSN") -> str:
    """`host=… port=… database=… user=…` for a DSN (key=value or URL), for messages.

    Names only those four parts, and only those the DSN gives; never the password or any other
    part. A DSN libpq cannot parse (or would misread) is described as `<variable> is not a valid
    libpq DSN or URL`, with no fragment of it.
    """
    parts = _parts(dsn)
    if parts is None:
        return f"{variable} {INVALID_DSN}"
    shown = [f"{label}={_printable(parts[key])}" for key, label in _SHOWN if parts.get(key)]
    return " ".join(shown) or "the default server (no host, port, database or user given)"


def failure_reason(error: BaseException) -> str:
    """A fixed phrase for why a connection failed: never text copied from the error."""
    sqlstate = getattr(error, "pgcode", None)
    if sqlstate in _SQLSTATE_REASONS:
        return _SQLSTATE_REASONS[sqlstate]
    text = str(error)
    for fragment, reason in _REASONS:
        if fragment in text:
            return reason
    return "the connection failed"


def connect(
    dsn: str, *, variable: str = "INDICI_PG_DSN", **kwargs: object
) -> psycopg2.extensions.connection:
    """`psycopg2.connect(dsn, **kwargs)`, raising only `ConnectionFailedError` if it fails.

    The error's message is `cannot connect to <describe_dsn>: <failure_reason>`, and it carries
    no cause or context: nothing of the DSN, of libpq's message or of the original exception
    travels with it, whatever characters the password holds.
    """
    if _parts(dsn) is None:
        raise ConnectionFailedError(f"cannot connect: {variable} {INVALID_DSN}")
    try:
        return psycopg2.connect(dsn, **kwargs)
    except (psycopg2.Error, ValueError, UnicodeError) as error:
        message = f"cannot connect to {describe_dsn(dsn, variable)}: {failure_reason(error)}"
    # raised outside the handler, so the original exception is neither cause nor context
    raise ConnectionFailedError(message)
