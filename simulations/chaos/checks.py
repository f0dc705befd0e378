"""The end-state checks on the real folders and stores (after the heal, restarts, quiescence).

The same questions as ``simulations.checkers``, asked of files and of the
``worksync-p2p conflicts --json`` output instead of in-memory nodes. Each
returns a list of problems, one line each; an empty list passes.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from pathlib import Path

from simulations import textedit as te
from simulations.chaos.files import STATE_DIR, Delete, item_files, item_id
from simulations.ledger import Ledger
from worksync_p2p.core import members, paths
from worksync_p2p.core.itemdoc import ItemDoc

WRITES_PER_SAVE_PER_PEER = 4
"""A save is one write on each other peer, plus retries and repairs; an echo loop has no bound."""
SWAP_SUFFIX = ".swp"

Stats = dict[str, tuple[int, int, int]]


def convergence(folders: dict[str, dict[str, bytes]]) -> list[str]:
    """Every folder byte-identical to the first."""
    labels = list(folders)
    reference = folders[labels[0]]
    problems = []
    for label in labels[1:]:
        files = folders[label]
        if files != reference:
            problems.append(f"{label} differs from {labels[0]}: {_diff(reference, files)}")
    return problems


def _diff(expected: dict[str, bytes], actual: dict[str, bytes]) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(p for p in set(expected) & set(actual) if expected[p] != actual[p])
    parts = [
        f"{label} {found[:4]}"
        for label, found in (("missing", missing), ("extra", extra), ("content", changed))
        if found
    ]
    detail = ""
    if changed:
        path = changed[0]
        detail = f"; {path}: expected {expected[path]!r} got {actual[path]!r}"
    return ", ".join(parts) + detail[:600]


def _text(files: dict[str, bytes]) -> str:
    return "\n".join(data.decode(errors="replace") for data in files.values())


def lost(
    label: str,
    files: dict[str, bytes],
    conflicts: str,
    ledger: Ledger,
    stores: dict[str, bytes] | None = None,
) -> list[str]:
    """Every marker nobody saw go is in a file or in the conflicts record.

    ``stores`` (each peer's raw SQLite bytes) says where a lost marker's text
    was ever stored: an update keeps the text it inserted, so a marker in no
    store was most likely never ingested, one in a store was ingested and
    later dropped.
    """
    text = _text(files)
    return [
        f"{label}: lost edit: {m.text} ({m.what} by {m.peer}) is in no file and in no conflict"
        + _stored_in(m.text, stores)
        for m in ledger.markers.values()
        if not m.retracted and m.text not in text and m.text not in conflicts
    ]


def _stored_in(marker: str, stores: dict[str, bytes] | None) -> str:
    if stores is None:
        return ""
    holders = [label for label, raw in stores.items() if marker.encode() in raw]
    # Merged store rows keep text as the pieces later edits cut it into: a marker
    # that an insert landed inside is "in no store" too, though it was ingested.
    return f"; its text is in the store of {holders}" if holders else "; in no store (as one piece)"


def store_bytes(root: Path) -> bytes:
    """The raw bytes of a folder's SQLite store (and its WAL, if one is left)."""
    out = b""
    for name in ("store.sqlite3", "store.sqlite3-wal"):
        path = root / STATE_DIR / name
        if path.exists():
            out += path.read_bytes()
    return out


def duplicates(label: str, files: dict[str, bytes]) -> list[str]:
    counts = Counter(te.markers_in(_text(files)))
    return [
        f"{label}: duplicated: {text} appears {count} times"
        for text, count in sorted(counts.items())
        if count > 1
    ]


def deletes(files: dict[str, bytes], found: list[Delete], edits: dict[str, set[str]]) -> list[str]:
    """An item alive at the end needs an edit its delete(s) had not seen."""
    alive = {item_id(data.decode(errors="replace")) for data in files.values()}
    problems = []
    for delete in found:
        if delete.key in alive and edits.get(delete.key, set()) <= delete.seen:
            problems.append(
                f"deleted item came back: {delete.key} (deleted on p{delete.peer};"
                " no edit the delete had not seen)"
            )
    return problems


def containment(base: Path, roots: list[Path], allowed: set[str]) -> list[str]:
    """Nothing but item files and the state folder in each folder; nothing else in the base."""
    problems = [
        f"unexpected file outside the folders: {name}"
        for name in sorted(os.listdir(base))
        if name not in allowed
    ]
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = Path(dirpath).relative_to(root)
            if rel_dir.parts and rel_dir.parts[0] == STATE_DIR:
                continue
            dirnames[:] = [d for d in dirnames if (rel_dir / d).as_posix() != STATE_DIR]
            for name in filenames:
                problems += _stray(root, (rel_dir / name).as_posix())
    return problems


def _stray(root: Path, relpath: str) -> list[str]:
    name = relpath.rpartition("/")[2]
    if name.startswith(".") or not name.endswith(".md"):
        return [f"{root.name}: stray file {relpath!r} (not an item)"]
    reason = paths.unsafe_reason(relpath)
    return [f"{root.name}: unsafe path {relpath!r} ({reason})"] if reason else []


def stats(root: Path) -> Stats:
    """(inode, mtime_ns, size) of every item file: a rewrite changes at least one."""
    out = {}
    for relpath in item_files(root):
        st = (root / relpath).stat()
        out[relpath] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def rewritten(label: str, before: Stats, after: Stats) -> list[str]:
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    if not changed:
        return []
    return [f"{label}: a restart of a converged peer touched {len(changed)} file(s): {changed[:4]}"]


def write_budget(writes: int, saves: int, peers: int, starts: int) -> list[str]:
    budget = WRITES_PER_SAVE_PER_PEER * peers * (saves + starts)
    if writes > budget:
        return [f"echo: the daemons wrote {writes} times for {saves} saves (budget {budget})"]
    return []


MAX_STORE_ROWS = 1_000_000
MAX_DIAGNOSES = 12


def store_renders(root: Path) -> dict[str, tuple[str | None, str]]:
    """Each item of a stopped daemon's store: path -> (render, key); read-only."""
    store = root / STATE_DIR / "store.sqlite3"
    if not store.exists():
        return {}
    docs: dict[str, ItemDoc] = {}
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT key, data FROM updates ORDER BY seq LIMIT ?", (MAX_STORE_ROWS,)
        ).fetchall()
    for key, data in rows:
        if key != members.MEMBERS_KEY:
            docs.setdefault(key, ItemDoc.new(1)).doc.apply_update(data)
    out: dict[str, tuple[str | None, str]] = {}
    for key, item in docs.items():
        relpath = item.path()
        if relpath is not None and item.alive():
            out[relpath] = (item.render(), key)
    return out


def store_vs_files(label: str, root: Path, files: dict[str, bytes]) -> list[str]:
    """Where a folder and its own store disagree, by marker (for the failure report).

    Not a check: a file may differ in bytes from its render and still be in
    sync. A marker the store renders and the file lacks points at a write that
    never happened (the store ahead of the file); one the file has and the
    store lacks, at a save that was never taken in.
    """
    try:
        renders = store_renders(root)
    except (sqlite3.Error, ValueError) as error:
        return [f"{label}: store unreadable ({error})"]
    out = []
    for relpath in sorted(set(renders) | set(files)):
        text, key = renders.get(relpath, (None, "?"))
        data = files.get(relpath)
        if data is None:
            out.append(f"{label}: {relpath}: the store has item {key} there, no file")
            continue
        if relpath not in renders:
            out.append(f"{label}: {relpath}: a file no item of the store is at")
            continue
        held = set(te.markers_in(text or ""))
        shown = set(te.markers_in(data.decode(errors="replace")))
        if held != shown:
            out.append(
                f"{label}: {relpath} ({key}): store renders {sorted(held - shown)} the file"
                f" lacks, file has {sorted(shown - held)} the store does not"
            )
    return out[:MAX_DIAGNOSES]
