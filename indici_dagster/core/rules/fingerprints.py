"""Fingerprints of rules: what a run was requested under, compared with the rules it meets.

A rule's fingerprint hashes each of its parts (table, primary key, columns, NHI columns)
separately, so a difference can be named by part without showing any rule content. The form
carried in a run tag lists each dataset of the request, with `-` for one that had no rule:
`EthnicityCode=- Patients=1a2b3c4d.5e6f7a8b.9c0d1e2f.3a4b5c6d`.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Mapping

from indici_dagster.core.rules.model import Rule, RuleError

RULE_PARTS = ("table", "primary_key", "columns", "nhi_columns")
"""The parts of a rule, in the order of their hashes in a fingerprint."""

NO_RULE = "-"

_ENTRY = re.compile(r"([A-Za-z][A-Za-z0-9]*)=(-|[0-9a-f]{8}(?:\.[0-9a-f]{8}){3})")


def _hash(value: object) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def rule_fingerprint(rule: Rule) -> str:
    """The fingerprint of one rule: a hash per part, joined by dots, in `RULE_PARTS` order."""
    parts = (
        rule.table,
        list(rule.primary_key),
        [[c.source, c.name, c.type] for c in rule.columns],
        list(rule.nhi_columns),
    )
    return ".".join(_hash(part) for part in parts)


def rule_set_fingerprint(rules: Mapping[str, Rule]) -> str:
    """One short fingerprint of a whole rule set (equal rule sets give equal fingerprints).

    A rule's `history: false` counts too (so a snapshot is saved again when only it changes),
    marked only when set, so rule sets without it keep the fingerprints they had."""
    return _hash(
        {
            dataset: rule_fingerprint(rule) + ("" if rule.history else "/history:false")
            for dataset, rule in sorted(rules.items())
        }
    )


def fingerprints(rules: Mapping[str, Rule], datasets: Iterable[str]) -> dict[str, str]:
    """Each dataset's rule fingerprint, or `NO_RULE` for a dataset without a rule."""
    return {d: rule_fingerprint(rules[d]) if d in rules else NO_RULE for d in datasets}


def format_fingerprints(by_dataset: Mapping[str, str]) -> str:
    """The tag form of `fingerprints(...)`: `Dataset=fingerprint` pairs sorted by dataset."""
    return " ".join(f"{d}={by_dataset[d]}" for d in sorted(by_dataset))


def parse_fingerprints(text: str) -> dict[str, str]:
    """Read the tag form back; raises `RuleError` if it is not in that form."""
    found: dict[str, str] = {}
    for entry in text.split():
        match = _ENTRY.fullmatch(entry)
        if match is None:
            raise RuleError(f"rules fingerprint entry {entry[:40]!r} is not Dataset=fingerprint")
        found[match.group(1)] = match.group(2)
    return found


def rule_changes(
    expected: Mapping[str, str], rules: Mapping[str, Rule], datasets: Iterable[str]
) -> list[str]:
    """How the rules of `datasets` differ from the fingerprints in `expected`, by part.

    One line per changed dataset, e.g. `Patients: columns, primary_key changed`, or
    `Vaccinations: rule added` / `rule removed`; datasets absent from `expected` are skipped.
    The lines name datasets and rule parts only, never rule content.
    """
    changes = []
    for dataset in sorted(set(datasets)):
        if dataset not in expected:
            continue
        before = expected[dataset]
        now = rule_fingerprint(rules[dataset]) if dataset in rules else NO_RULE
        if before == now:
            continue
        if before == NO_RULE:
            changes.append(f"{dataset}: rule added")
        elif now == NO_RULE:
            changes.append(f"{dataset}: rule removed")
        else:
            pairs = zip(RULE_PARTS, before.split("."), now.split("."), strict=True)
            parts = [part for part, old, new in pairs if old != new]
            changes.append(f"{dataset}: {', '.join(parts)} changed")
    return changes
