"""Keys and names from outside, made safe to store, print and log.

A landed key is chosen by whoever writes the landing location: it may hold bytes that are not
UTF-8, control characters (NUL, newlines, ANSI escapes) or run to thousands of bytes. Such text
is never printed or stored raw: `escape_text` shows it with backslash escapes, bounded in length,
and `key_problem` says why a key cannot be handed over at all.
"""

import hashlib
import re

from indici_dagster.core.text import printable

MAX_KEY_BYTES = 1024
"""The longest key handed over (S3's own limit); longer local paths are refused, audited."""

MAX_SHOWN_CHARS = 300
"""Escaped text longer than this is shortened, keeping its start, its end and a digest."""

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\\\\\ud800-\udfff]")


def escape_text(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """`text` escaped as `text.printable` does (control characters, ANSI escapes, line breaks,
    bidi and zero-width characters, backslashes, undecodable bytes), at most about `limit`
    characters long.

    Deterministic, and distinct texts stay distinct: a shortened text keeps a digest of the
    whole.
    """
    escaped = printable(text)
    if len(escaped) <= limit:
        return escaped
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    keep = max(limit - 60, 20)
    head, tail = escaped[: keep * 2 // 3], escaped[-(keep // 3) :]
    return f"{head}...{tail} [{len(text)} characters, sha256 {digest}]"


def key_problem(key: str) -> str | None:
    """Why `key` cannot be handed over (stored in the ledger, copied, loaded), or None."""
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    if _UNSAFE.search(key.replace("\\", "")):
        return "its name holds control characters"
    if len(encoded) > MAX_KEY_BYTES:
        return f"its key is longer than {MAX_KEY_BYTES} bytes ({len(encoded)})"
    return None
