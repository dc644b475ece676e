"""The difference between what exists and what `indici infra` wants (pure).

A `Change` is one aspect whose current value is not the desired one. Some differences are never
changed automatically (a table keyed otherwise, a vendor user with other policies): those are
conflicts, and `apply` refuses to start while any is left.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from indici_dagster.core.infra.desired import ATTACHED, EXISTS, KEY, TABLE, USER, Aspect

AspectKey = tuple[str, str, str]


def aspect_key(aspect: Aspect) -> AspectKey:
    """The key of `aspect` in a mapping of current values: (kind, name, setting)."""
    return aspect.kind, aspect.name, aspect.setting


@dataclass(frozen=True)
class Change:
    """One aspect to set, its current value (None: absent), and why it cannot be set, if so."""

    aspect: Aspect
    current: Any
    conflict: str | None = None


def _conflict(aspect: Aspect, current: Any) -> str | None:
    if current is None:
        return None
    if (aspect.kind, aspect.setting) == (TABLE, KEY):
        return "its key is not dataset (string): indici infra never recreates a table"
    if (aspect.kind, aspect.setting) == (USER, ATTACHED):
        others = sorted(set(current) - set(aspect.desired))
        if others:
            names = ", ".join(arn.rsplit("/", 1)[-1] for arn in others)
            return f"it has other policies attached ({names}): detach them by hand"
    return None


def plan_changes(aspects: list[Aspect], current: Mapping[AspectKey, Any]) -> list[Change]:
    """The changes that make `current` (absent keys: absent) match `aspects`, in their order.

    A resource absent as a whole shows as its `exists` change and, after it, each of its
    settings (all absent)."""
    changes = []
    for aspect in aspects:
        now = current.get(aspect_key(aspect))
        if aspect.setting == EXISTS:
            now = now or None
        if (aspect.kind, aspect.setting) == (USER, ATTACHED) and now is not None:
            now = sorted(now)
            if set(aspect.desired) <= set(now) and not _conflict(aspect, now):
                continue
        elif now == aspect.desired:
            continue
        changes.append(Change(aspect, now, _conflict(aspect, now)))
    return changes


def describe_change(change: Change) -> str:
    """One line for a person: `+` something new, `~` something changed, `!` a conflict."""
    aspect = change.aspect
    if change.conflict:
        return f"! {aspect.resource}: {aspect.setting}: {change.conflict}"
    if aspect.setting == EXISTS:
        return f"+ {aspect.resource}: create"
    if change.current is None:
        return f"+ {aspect.resource}: {aspect.setting}: {aspect.summary}"
    return f"~ {aspect.resource}: {aspect.setting}: {aspect.summary} (differs now)"


def conflicts(changes: list[Change]) -> list[Change]:
    """The changes `apply` cannot make."""
    return [change for change in changes if change.conflict]
