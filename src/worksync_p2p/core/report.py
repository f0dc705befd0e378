"""What the merge rules decided, in a form people and scripts can read."""

from __future__ import annotations

from typing import Any

from worksync_p2p.core import fields, values
from worksync_p2p.core.itemdoc import ItemDoc


def conflicts_of(key: str, item: ItemDoc) -> list[dict[str, Any]]:
    """Every decision for one item: field and path conflicts, seed versions, repairs."""
    out: list[dict[str, Any]] = []
    path = item.path()
    for conflict in item.field_conflicts():
        out.append(
            {
                "item": key,
                "path": path,
                "kind": "field",
                "field": ".".join(conflict.path),
                "kept": _cell(conflict.winner),
                "others": [_cell(c) for c in conflict.losers],
            }
        )
    renames = item.path_conflicts()
    if renames:
        kept, *others = renames
        out.append(
            {
                "item": key,
                "path": path,
                "kind": "rename",
                "field": "path",
                "kept": {"value": kept.value, "writer": kept.stamp.writer, "ms": kept.stamp.ms},
                "others": [
                    {"value": c.value, "writer": c.stamp.writer, "ms": c.stamp.ms} for c in others
                ],
            }
        )
    for seed in item.seed_conflicts():
        out.append(
            {
                "item": key,
                "path": path,
                "kind": "seed",
                "field": "",
                "kept": {"value": "(the version in the file)"},
                "others": [
                    {
                        "value": seed.text,
                        "writer": "genesis:" + seed.genesis,
                        "fields": {k: values.to_json(v) for k, v in seed.values.items()},
                    }
                ],
            }
        )
    for merged_hash, removed in sorted(item.repairs().items()):
        out.append(
            {
                "item": key,
                "path": path,
                "kind": "duplicate-edit",
                "field": "",
                "kept": {"value": "(one copy of the edit)"},
                "others": [{"value": removed, "writer": "repair:" + merged_hash}],
            }
        )
    return out


def _cell(cell: fields.RegisterCell) -> dict[str, Any]:
    return {
        "value": values.to_json(fields.decode_cell_value(cell.value)),
        "writer": cell.stamp.writer,
        "ms": cell.stamp.ms,
    }
