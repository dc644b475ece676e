"""CloudWatch outcome groups: the three log groups under `INDICI_CLOUDWATCH_PREFIX`, which
audit status goes to which, and the rules a prefix must follow.

A foundation module (no AWS, no database): the settings validate the prefix with it, and the
sender (`core/outcomes`) and `indici infra apply` name the groups with `outcome_log_group`.
"""

import re

SUCCESS = "success"
EMPTY = "empty"
ERROR = "error"
OUTCOMES = (SUCCESS, EMPTY, ERROR)
"""The three groups' last name segment: `<prefix>/success`, `<prefix>/empty`, `<prefix>/error`."""

OUTCOME_OF_STATUS = {
    "success": SUCCESS,
    "static": SUCCESS,
    "empty": EMPTY,
    "error": ERROR,
    "no_rule": ERROR,
}
"""Audit status -> outcome group. Every status of the audit log is here (a test holds it to the
`Status` enum): a status without a group would be refused, never dropped silently."""

MAX_GROUP_NAME = 512
"""CloudWatch Logs' longest log group name."""


def parse_prefix(value: str) -> str:
    """`value` as a group prefix, or `ValueError`: it starts with '/', does not end with '/',
    has no empty segment, uses only CloudWatch's log group characters (letters, digits, '_',
    '-', '.', '/', '#'), and leaves room for the longest group name under it."""
    longest = max(len(outcome) for outcome in OUTCOMES) + 1
    if not re.fullmatch(r"(/[A-Za-z0-9_.#-]+)+", value) or len(value) + longest > MAX_GROUP_NAME:
        raise ValueError
    return value


def outcome_log_group(prefix: str, outcome: str) -> str:
    """The log group of `outcome` (one of `OUTCOMES`) under `prefix`: `<prefix>/<outcome>`."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome group {outcome!r}: expected one of {OUTCOMES}")
    return f"{parse_prefix(prefix)}/{outcome}"


def outcome_of_status(status: str) -> str:
    """The outcome group an audit row of `status` goes to; `ValueError` for an unknown one."""
    try:
        return OUTCOME_OF_STATUS[status]
    except KeyError:
        raise ValueError(f"audit status {str(status)!r} has no CloudWatch outcome group") from None
