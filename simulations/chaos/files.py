"""People editing the real folders, and what they did (the ledger the checks read).

Every edit adds a unique marker (``simulations.textedit``: ``m`` + five
digits + ``z``) and retracts the markers the person saw go (a line they
replaced, a value they overwrote and the conflicts their replica showed for
it, a file they deleted). A rename puts a marker in the new file name: not
text that must survive (two renames race, one name wins), but it tells the
delete check that an edit happened which a delete may not have seen.

Saves use the three editor styles. The two-step ones (``in_place``:
truncate, then write; ``recreate``: unlink, then write) leave ``gap_s`` between
the steps, under the bridge's grace periods, and can be interrupted there by
a kill (``between`` is awaited in the gap).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from simulations import textedit as te
from simulations.chaos.plan import Step
from simulations.ledger import Ledger
from worksync_p2p import commands

STATE_DIR = ".worksync"
FOLDERS = ("", "", "sub/")
FIELDS = ("title", "status", "priority", "assignee")

Between = Callable[[], Awaitable[None]]


def item_files(root: Path) -> dict[str, bytes]:
    """Every item file of a folder (``*.md``, not hidden, outside ``.worksync``)."""
    out = {}
    for path in sorted(root.rglob("*.md")):
        rel = path.relative_to(root)
        if rel.parts[0] == STATE_DIR or any(p.startswith(".") for p in rel.parts):
            continue
        if path.is_file():
            out[rel.as_posix()] = path.read_bytes()
    return out


def item_id(text: str) -> str | None:
    split = te.Split.parse(text)
    return split.scalar("id") if split is not None else None


def find_all(root: Path, key: str) -> list[tuple[str, str]]:
    """(relpath, text) of every file holding item ``key`` in this folder, by path."""
    out = []
    for relpath, data in item_files(root).items():
        text = data.decode(errors="replace")
        if item_id(text) == key:
            out.append((relpath, text))
    return out


def find(root: Path, key: str) -> tuple[str, str] | None:
    found = find_all(root, key)
    return found[0] if found else None


def item_conflicts(root: Path, key: str) -> list[dict[str, object]]:
    """The conflicts this replica's store holds for the item, as ``conflicts --json`` lists them."""
    try:
        found = commands.list_conflicts(root, missing_ok=True)
    except Exception:  # a store mid-write: read as nothing shown (lenient)
        return []
    return [c for c in found if c["item"] == key]


def shown_markers(conflicts: list[dict[str, object]], field_name: str | None) -> tuple[str, ...]:
    """Markers in those conflicts (of one field, or all)."""
    mine = [c for c in conflicts if field_name is None or c.get("field") == field_name]
    return tuple(te.markers_in(json.dumps(mine)))


@dataclass
class Delete:
    key: str
    peer: int
    seen: set[str]
    """Markers of the file the person deleted (text and name): the edits it had seen."""


@dataclass
class People:
    roots: list[Path]
    ledger: Ledger = field(default_factory=Ledger)
    deletes: list[Delete] = field(default_factory=list)
    edits: dict[str, set[str]] = field(default_factory=dict)
    """Per item, the marker of every edit (text or name) ever saved."""
    history: list[str] = field(default_factory=list)
    skipped: int = 0
    t0: float = field(default_factory=time.monotonic)
    """Start of the run: history lines say when they happened."""
    _markers: int = 0

    def marker(self) -> str:
        self._markers += 1
        return te.marker(self._markers)

    def note(self, line: str) -> None:
        self.history.append(f"{time.monotonic() - self.t0:6.2f}s {line}")

    def initial_text(self, key: str, seed: int) -> tuple[str, str]:
        rng = random.Random(seed)
        relpath = new_path(rng, key)
        text = te.new_item(key, self.marker(), rng)
        self._record(-1, key, "initial", te.Edit(text, tuple(te.markers_in(text)), ()))
        return relpath, text

    def _record(self, peer: int, key: str, what: str, edit: te.Edit) -> None:
        label = "init" if peer < 0 else f"p{peer}"
        for text in edit.added:
            self.ledger.add(text, label, f"{what} {key}")
        self.edits.setdefault(key, set()).update(edit.added)
        self.ledger.retract(edit.retracted)
        self.ledger.saves += 1

    # -- one step ------------------------------------------------------------------

    async def do(self, step: Step, between: Between | None = None) -> bool:
        """Play one edit step; False when it did not apply (no such file on that peer)."""
        if step.kind == "claim":
            return self._claim(step)
        if step.kind == "create":
            return self._create(step, random.Random(step.seed))
        # The person looks at the conflicts first, then opens the file and saves at
        # once: reading the store between the two would hold the file's content
        # stale for as long as that read takes (a window no editor has).
        looks = step.kind in ("set_field", "delete")
        shown = item_conflicts(self.roots[step.peer], step.key) if looks else []
        every = find_all(self.roots[step.peer], step.key)
        if not every:
            return self._skip(step, "no file")
        if len(every) > 1:  # a rename half-way (new file written, old not yet removed)
            self.note(f"p{step.peer} {step.key}: {len(every)} files {[p for p, _ in every]}")
        found = every[0]
        if step.kind == "rename":
            return self._rename(step, random.Random(step.seed), found[0])
        if step.kind == "delete":
            return self._delete(step, *found, shown)
        return await self._save_edit(step, *found, shown, between)

    async def _save_edit(
        self,
        step: Step,
        relpath: str,
        text: str,
        shown: list[dict[str, object]],
        between: Between | None,
    ) -> bool:
        edit = self._edit(step, random.Random(step.seed), text, shown)
        if edit is None:
            return self._skip(step, "nothing to edit")
        self._record(step.peer, step.key, step.kind, edit)
        self.note(f"p{step.peer} {step.kind} {relpath} ({step.style}) +{list(edit.added)}")
        await save(self.roots[step.peer] / relpath, edit.text, step.style, step.gap_s, between)
        if step.style != "rename":
            self.note(f"p{step.peer} {relpath}: {step.style} save landed")
        return True

    def _skip(self, step: Step, why: str) -> bool:
        self.skipped += 1
        self.note(f"p{step.peer} {step.kind} {step.key}: skipped ({why})")
        return False

    def _edit(
        self, step: Step, rng: random.Random, text: str, shown: list[dict[str, object]]
    ) -> te.Edit | None:
        split = te.Split.parse(text)
        if split is None:
            return None
        mark = self.marker()
        if step.kind == "set_field":
            name = rng.choice(FIELDS)
            return _set_field(split, name, f"p{step.peer} {mark}", shown)
        return TEXT_EDITS[step.kind](split, mark, rng)

    def _claim(self, step: Step) -> bool:
        """Two people set ``assignee`` of one item at the same moment, on two peers."""
        pair = (step.peer, step.other)
        shown = {peer: item_conflicts(self.roots[peer], step.key) for peer in pair}
        saves = []
        for peer in pair:
            found = find(self.roots[peer], step.key)
            split = te.Split.parse(found[1]) if found is not None else None
            if found is None or split is None:
                return self._skip(step, f"no file on p{peer}")
            value = f"p{peer} {self.marker()}"
            saves.append((peer, found[0], _set_field(split, "assignee", value, shown[peer])))
        for peer, relpath, edit in saves:
            self._record(peer, step.key, "claim", edit)
            write_now(self.roots[peer] / relpath, edit.text, step.style)
        self.note(f"p{step.peer}+p{step.other} claim {step.key} ({step.style})")
        return True

    def _create(self, step: Step, rng: random.Random) -> bool:
        relpath = new_path(rng, step.key)
        text = te.new_item(step.key, self.marker(), rng)
        self._record(step.peer, step.key, "create", te.Edit(text, tuple(te.markers_in(text)), ()))
        path = self.roots[step.peer] / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        write_now(path, text, "rename")
        self.note(f"p{step.peer} create {relpath}")
        return True

    def _rename(self, step: Step, rng: random.Random, relpath: str) -> bool:
        mark = self.marker()
        target = f"{rng.choice(FOLDERS)}{step.key}-{mark}.md"
        path = self.roots[step.peer] / target
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(self.roots[step.peer] / relpath, path)
        except FileNotFoundError:
            return self._skip(step, "file went away")
        self.edits.setdefault(step.key, set()).add(mark)
        self.note(f"p{step.peer} rename {relpath} -> {target}")
        return True

    def _delete(self, step: Step, relpath: str, text: str, shown: list[dict[str, object]]) -> bool:
        root = self.roots[step.peer]
        seen = set(te.markers_in(text)) | set(te.markers_in(relpath))
        self.ledger.retract([*te.markers_in(text), *shown_markers(shown, None)])
        try:
            (root / relpath).unlink()
        except FileNotFoundError:
            return self._skip(step, "file went away")
        self.deletes.append(Delete(step.key, step.peer, seen))
        self.note(f"p{step.peer} delete {relpath}")
        return True


def _set_field(split: te.Split, name: str, value: str, shown: list[dict[str, object]]) -> te.Edit:
    edit = te.set_scalar(split, name, value)
    # Replacing a value also clears the conflicts this replica showed for it.
    return te.Edit(edit.text, edit.added, edit.retracted + shown_markers(shown, name))


def new_path(rng: random.Random, key: str) -> str:
    return f"{rng.choice(FOLDERS)}{key}.md"


def _replace_line(split: te.Split, mark: str, rng: random.Random) -> te.Edit | None:
    gone = te.delete_line(split, rng)
    after = te.Split.parse(gone.text) if gone is not None else None
    if gone is None or after is None:
        return None
    added = te.insert_line(after, mark, rng, hot=False)
    return te.Edit(added.text, added.added, gone.retracted)


def _replace_tag(split: te.Split, mark: str, rng: random.Random) -> te.Edit | None:
    gone = te.remove_tag(split, rng)
    after = te.Split.parse(gone.text) if gone is not None else None
    if gone is None or after is None:
        return te.add_tag(split, mark)
    added = te.add_tag(after, mark)
    return te.Edit(added.text, added.added, gone.retracted)


TEXT_EDITS: dict[str, Callable[[te.Split, str, random.Random], te.Edit | None]] = {
    "insert_line": lambda split, mark, rng: te.insert_line(split, mark, rng, rng.random() < 0.5),
    "append_line": lambda split, mark, rng: te.append_to_line(split, mark, rng, rng.random() < 0.5),
    "replace_line": _replace_line,
    "add_tag": lambda split, mark, _rng: te.add_tag(split, mark),
    "replace_tag": _replace_tag,
}


# -- editors -----------------------------------------------------------------------


def write_now(path: Path, text: str, style: str) -> None:
    """A save with no gap between its steps."""
    data = text.encode()
    if style == "rename" or not path.exists():
        temp = path.with_name(f".{path.name}.swp")
        temp.write_bytes(data)
        os.replace(temp, path)
    elif style == "in_place":
        with path.open("r+b") as handle:
            handle.truncate(0)
            handle.write(data)
    else:
        path.unlink(missing_ok=True)
        path.write_bytes(data)


async def save(path: Path, text: str, style: str, gap_s: float, between: Between | None) -> None:
    """A save in ``style``; two-step styles wait ``gap_s`` (and run ``between``) mid-way."""
    if style == "rename" or not path.exists():
        write_now(path, text, "rename")
        return
    data = text.encode()
    if style == "in_place":
        with path.open("r+b") as handle:
            handle.truncate(0)
            handle.flush()
            await _gap(gap_s, between)
            handle.write(data)
        return
    path.unlink(missing_ok=True)
    await _gap(gap_s, between)
    path.write_bytes(data)


async def _gap(gap_s: float, between: Between | None) -> None:
    # A person's editor between its two writes: simulated time passing, not a wait for anything.
    if between is not None:
        await between()
    await asyncio.sleep(gap_s)
