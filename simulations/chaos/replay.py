"""Replay one item's stored updates in order, printing what each changed in the render.

For digging into a kept chaos run: which update removed a marker, and what
else it carried. ``python -m simulations.chaos.replay FOLDER/.worksync/store.sqlite3 ITEM``
(rows merged by compaction show as one step).
"""

from __future__ import annotations

import difflib
import sqlite3
import sys
from pathlib import Path

from worksync_p2p.core.itemdoc import ItemDoc

MAX_ROWS = 100_000


def changes(store: Path, key: str) -> list[tuple[int, int, list[str]]]:
    """(row, bytes, changed render lines) for each stored update of ``key``."""
    item = ItemDoc.new(1)
    before: list[str] = []
    out = []
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT seq, data FROM updates WHERE key = ? ORDER BY seq LIMIT ?", (key, MAX_ROWS)
        ).fetchall()
    for seq, data in rows:
        item.doc.apply_update(data)
        after = (item.render() or "").splitlines()
        diff = difflib.unified_diff(before, after, lineterm="", n=0)
        lines = [d for d in diff if d[:1] in "+-" and d[:3] not in ("+++", "---")]
        out.append((int(seq), len(data), lines))
        before = after
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m simulations.chaos.replay STORE.sqlite3 ITEM", file=sys.stderr)
        return 2
    for seq, size, lines in changes(Path(argv[0]), argv[1]):
        print(f"{seq:6d} {size:6d}B {lines}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
