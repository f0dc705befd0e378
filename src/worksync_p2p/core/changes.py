"""What a peer's update changed in an item: the fields it changed, the merges it decided.

The bridge looks at an item before a peer's update is applied and again after
it; the event it emits names the frontmatter fields whose values changed, and
a ``conflict`` event names what the update made the merge rules decide (a
field that now holds concurrent values, concurrent renames, a second seed).

A look is the raw cells of the ``fields`` and ``meta`` maps: two reads, decoded
only when they differ. Most live updates edit a body, and then nothing is
decoded at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worksync_p2p.core import fields, values
from worksync_p2p.core.itemdoc import ItemDoc, geneses_of


@dataclass(frozen=True)
class Look:
    cells: Mapping[str, Any]
    meta: Mapping[str, Any]
    """Both as the item keeps them for its state: shared, never changed."""

    @classmethod
    def of(cls, item: ItemDoc) -> Look:
        return cls(item.field_cells(), item.meta_cells())

    def index(self) -> fields.FieldIndex:
        found = geneses_of(self.meta)
        return fields.FieldIndex.of(self.cells, found[-1] if found else None)


@dataclass(frozen=True)
class Change:
    fields: tuple[str, ...]
    """Top-level frontmatter fields whose value differs."""
    decided: tuple[str, ...]
    """Dotted fields newly in conflict, ``path`` for concurrent renames, ``seed``
    for a second version seeded by a clone."""


NOTHING = Change((), ())


def change(before: Look, after: Look, item: ItemDoc) -> Change:
    """What turned ``before`` into ``after`` (``item`` holds ``after``)."""
    if before == after:
        return NOTHING
    changed: tuple[str, ...] = ()
    decided: list[str] = []
    if before.cells != after.cells:
        old, new = before.index(), after.index()
        changed = changed_fields(fields.resolve(old), fields.resolve(new))
        touched = {_path_of(k) for k in _differing(before.cells, after.cells)}
        decided += [
            ".".join(c.path) for c in fields.conflicts(new) if fields.path_key(c.path) in touched
        ]
    moved = any(k.startswith("path|") for k in _differing(before.meta, after.meta))
    if moved and item.path_conflicts():
        decided.append("path")
    if len(geneses_of(after.meta)) > max(1, len(geneses_of(before.meta))):
        decided.append("seed")
    return Change(changed, tuple(decided))


def changed_fields(before: dict[str, Any] | None, after: dict[str, Any]) -> tuple[str, ...]:
    """Top-level names whose values differ; every name of ``after`` when there was none."""
    if before is None:
        return tuple(after)
    names = [k for k in after if k not in before or not values.same(before[k], after[k])]
    names += [k for k in before if k not in after]
    return tuple(names)


def _differing(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    return {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}


def _path_of(cell_key: str) -> str:
    """The field path (as ``fields.path_key`` spells it) of a register or element cell."""
    return cell_key[: cell_key.rindex("]") + 1] if "]" in cell_key else cell_key
