"""Columns that look like personal information but carry no `pii` mark in their rule.

A warning names the dataset, the column and why it looks personal (its name, or NHI-shaped
values in a sample file); it never quotes a value.
"""

from collections.abc import Iterable, Mapping
from itertools import islice

from indici_dagster.core.naming import snake_case
from indici_dagster.core.quality.nhi import has_nhi_shape
from indici_dagster.core.rules.docs import NHI_MARK, pii_by_name
from indici_dagster.core.rules.model import Rule

SAMPLE_VALUES = 1000
"""Values of each column a sample check examines."""
NHI_SHARE = 0.5
"""Share of a column's non-empty sample values that must be NHI-shaped for it to be flagged."""


def nhi_shaped(values: Iterable[object]) -> bool:
    """Whether most (`NHI_SHARE`) of the first `SAMPLE_VALUES` non-empty text values have the
    shape of an NHI number (check character right or wrong: a column of mistyped NHIs is still
    personal); False for a column with no text values."""
    texts = list(islice((v for v in values if isinstance(v, str) and v.strip()), SAMPLE_VALUES))
    if not texts:
        return False
    return sum(map(has_nhi_shape, texts)) / len(texts) >= NHI_SHARE


def unmarked_pii(rule: Rule, sample: Mapping[str, Iterable[object]] | None = None) -> list[str]:
    """One warning per column of `rule` (or of `sample`, a file's columns by source name)
    that looks personal and is not marked.

    By name (`*NHI*`, `*Name*`, `*DOB*`, `*Address*`, phone and email): only for a column the
    rule says nothing of, since a column given a description and no mark was judged not
    personal by the rule's author. By NHI-shaped values in `sample`: for any column not marked
    `pii: nhi`, described or not.
    """
    marks = rule.pii_columns
    described = {name for name, doc in rule.column_docs if doc.description}
    sources = {c.name: c.source for c in rule.columns}
    sources.update({name: doc.source for name, doc in rule.column_docs})
    for source in sample or {}:
        sources.setdefault(snake_case(source), source)
    warnings = []
    for name, source in sources.items():
        if name in marks or name in described:
            continue
        suggested = pii_by_name(source)
        if suggested is not None:
            warnings.append(
                f"rule {rule.dataset}: column {source!r} looks like personal information "
                f"(its name) but has no pii mark: add `pii: {suggested}`, or a description "
                "saying what it holds"
            )
    for source, values in (sample or {}).items():
        name = snake_case(source)
        if marks.get(name) != NHI_MARK and nhi_shaped(values):
            warnings.append(
                f"rule {rule.dataset}: column {source!r} holds NHI-shaped values in the sample "
                "but is not marked `pii: nhi`"
            )
    return warnings
