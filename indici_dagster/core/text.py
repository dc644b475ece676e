"""Text from outside (file names, keys, column names, messages) made safe to print or log."""

import unicodedata

# Unicode categories that can move the cursor, recolour a terminal, hide, disguise or reorder
# text, or stand for bytes that were not valid UTF-8: control, format (bidi overrides,
# zero-width), separators other than the ASCII space (line, paragraph, no-break), surrogates,
# private use and unassigned code points.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by `surrogateescape`
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0x7F:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str | bytes, limit: int | None = None) -> str:
    """`text` on one line with every control character, ANSI escape (ESC), newline, bidi or
    zero-width character and undecodable byte shown as a visible escape (`\\x1b`, `\\n`,
    `\\u202e`, an undecodable byte as `\\xff`); a backslash is doubled, so different texts
    always print differently.

    Printable characters of any script are kept as they are. With `limit`, at most that many
    characters of the escaped text are kept, followed by how many were cut.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="surrogateescape")
    escaped = "".join(
        _escape(char)
        if char in _NAMED or (char != " " and unicodedata.category(char) in _ESCAPED_CATEGORIES)
        else char
        for char in text
    )
    if limit is not None and len(escaped) > limit:
        return f"{escaped[:limit]}...(+{len(escaped) - limit} chars)"
    return escaped
