"""The seeded workload: what people do to the items, on which peer, when.

Each operation reads a file on one peer's folder (up or down: people edit
while the daemon is stopped too), changes it the way a person would
(``textedit``), saves it (``editors``) and tells the ledger which markers it
added and which it saw go. Compound operations make two peers act at the
same instant: two claims of one item, a delete racing an edit, the same
edit saved independently on two peers, and a peer's rename of a file an
editor still has open (it saves to the old path later).
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass

import pycrdt

from simulations import textedit as te
from simulations.editors import Editors
from simulations.ledger import Ledger
from simulations.peer import SimPeer
from simulations.sched import Sim
from simulations.swarm import Swarm
from worksync_p2p.core import naming
from worksync_p2p.core.bridge import content_hash
from worksync_p2p.core.report import conflicts_of

FOLDERS = ("", "", "sub/", "sub/deeper/")
SAME_EDIT_LOCK_MS = 30_000
STALE_SAVE_MS = (20, 400)
"""How long an editor keeps a file open before it saves (the peer's rename may land first)."""


@dataclass
class Pick:
    peer: SimPeer
    relpath: str
    text: str
    key: str


@dataclass
class SameEditLock:
    key: str
    marker: str
    until_ms: int
    before: bytes | None  # the state vector every replica held when the two saved


class Workload:
    def __init__(
        self, sim: Sim, peers: list[SimPeer], swarm: Swarm, ledger: Ledger, rng: random.Random
    ) -> None:
        self.sim = sim
        self.peers = peers
        self.swarm = swarm
        self.ledger = ledger
        self.rng = rng
        self.editors = Editors(sim, rng, swarm.save_weights, swarm.save_gap_ms)
        self.keys: list[str] = []  # every item id ever created, oldest first
        self.lock: SameEditLock | None = None
        self._markers = 0
        self._names = 0
        kinds = [kind for kind, _ in swarm.op_weights]
        weights = [weight for _, weight in swarm.op_weights]
        self._choose_kind: Callable[[], str] = lambda: rng.choices(kinds, weights)[0]
        self._ops: dict[str, Callable[[], bool]] = {
            "insert_line": lambda: self._body_edit("insert_line"),
            "append_line": lambda: self._body_edit("append_line"),
            "delete_line": lambda: self._body_edit("delete_line"),
            "set_field": self._set_field,
            "add_tag": lambda: self._body_edit("add_tag"),
            "remove_tag": lambda: self._body_edit("remove_tag"),
            "rename": self._rename,
            "delete": self._delete,
            "create": self._create,
            "claim": self._claim,
            "same_edit": self._same_edit,
            "delete_vs_edit": self._delete_vs_edit,
            "stale_save": self._stale_save,
        }

    # -- set-up ------------------------------------------------------------------------

    def initial_files(self) -> dict[str, bytes]:
        """The files every cloned peer starts with (one repository, cloned)."""
        out = {}
        for _ in range(self.swarm.initial_items):
            key, relpath, text = self._new_item(with_id=self.rng.random() < 0.85)
            out[relpath] = text.encode()
            for text_marker in te.markers_in(text):
                self.ledger.add(text_marker, "init", "initial")
            if key.startswith(naming.PATH_KEY_PREFIX):
                continue
            self.keys.append(key)
        return out

    def diverge(self, peer: SimPeer) -> None:
        """Edit a clone before its daemon ever ran: a second genesis for that item."""
        files = peer.fs.list_items()
        if files:
            relpath = self.rng.choice(files)
            split = te.Split.parse((peer.fs.get(relpath) or b"").decode())
            if split is not None:
                edit = te.insert_line(split, self._marker(), self.rng, hot=False)
                self._record(peer, "diverge", edit)
                peer.fs.put(relpath, edit.text.encode())

    # -- one operation -------------------------------------------------------------------

    def step(self) -> None:
        self._release_lock()
        for _ in range(5):  # a few tries: the first pick may not apply (no such file)
            kind = self._choose_kind()
            if self._ops[kind]():
                self.ledger.ops_done += 1
                self.ledger.op_counts[kind] = self.ledger.op_counts.get(kind, 0) + 1
                return
        self.ledger.ops_skipped += 1

    def _marker(self) -> str:
        self._markers += 1
        return te.marker(self._markers)

    def _pick(self, peer: SimPeer | None = None, key: str | None = None) -> Pick | None:
        peer = peer or self.rng.choice(self.peers)
        hot = set(self.keys[: self.swarm.hot_items])
        choices: list[Pick] = []
        for relpath in peer.fs.list_items():
            if self.editors.is_busy(peer.index, relpath):
                continue
            text = (peer.fs.get(relpath) or b"").decode(errors="replace")
            item_key = _item_key_of(text, relpath)
            if self.lock is not None and item_key == self.lock.key:
                continue
            if key is not None and item_key != key:
                continue
            choices.append(Pick(peer, relpath, text, item_key))
        preferred = [c for c in choices if c.key in hot]
        pool = preferred if preferred and self.rng.random() < 0.7 else choices
        return self.rng.choice(pool) if pool else None

    def _save(self, pick: Pick, kind: str, edit: te.Edit) -> None:
        self._record(pick.peer, f"{kind} {pick.relpath}", edit)
        style = self.editors.save(pick.peer.index, pick.peer.fs, pick.relpath, edit.text.encode())
        self.sim.trace.op(
            self.sim.now,
            f"{pick.peer.label} {kind} {pick.relpath} ({style})"
            f" +{list(edit.added)} -{list(edit.retracted)}",
        )

    def _record(self, peer: SimPeer, what: str, edit: te.Edit, shared: bool = False) -> None:
        for text in edit.added:
            self.ledger.add(text, peer.label, what, shared=shared)
        self.ledger.retract(edit.retracted)
        self.ledger.saves += 1

    # -- kinds ---------------------------------------------------------------------------

    def _edit_for(self, kind: str, split: te.Split) -> te.Edit | None:
        hot = self.rng.random() < 0.5
        match kind:
            case "insert_line":
                return te.insert_line(split, self._marker(), self.rng, hot)
            case "append_line":
                return te.append_to_line(split, self._marker(), self.rng, hot)
            case "delete_line":
                return te.delete_line(split, self.rng)
            case "add_tag":
                return te.add_tag(split, self._marker())
            case _:
                return te.remove_tag(split, self.rng)

    def _body_edit(self, kind: str, pick: Pick | None = None) -> bool:
        pick = pick or self._pick()
        split = te.Split.parse(pick.text) if pick else None
        if pick is None or split is None:
            return False
        edit = self._edit_for(kind, split)
        if edit is None:
            return False
        self._save(pick, kind, edit)
        return True

    def _set_field(self, pick: Pick | None = None, name: str | None = None) -> bool:
        pick = pick or self._pick()
        split = te.Split.parse(pick.text) if pick else None
        if pick is None or split is None:
            return False
        name = name or self.rng.choice(te.SCALAR_FIELDS)
        edit = te.set_scalar(split, name, self._marker())
        # Replacing a value also clears the conflicts this replica shows for it.
        seen = self._conflict_markers(pick.peer, pick.key, name)
        self._save(pick, f"set {name}", te.Edit(edit.text, edit.added, edit.retracted + seen))
        return True

    def _conflict_markers(
        self, peer: SimPeer, key: str, name: str | None = None
    ) -> tuple[str, ...]:
        """Markers in the conflicts ``peer`` shows for the item (for one field, or all)."""
        node = peer.node or peer.last_node
        item = node.repo.get(key) if node is not None else None
        if item is None:
            return ()
        found = [
            c
            for c in conflicts_of(key, item)
            if name is None or (c["kind"] == "field" and c["field"] == name)
        ]
        return tuple(te.markers_in(json.dumps(found)))

    def _rename(self) -> bool:
        pick = self._pick()
        if pick is None or pick.key.startswith(naming.PATH_KEY_PREFIX):
            return False  # a path-keyed item renamed is a new item: not what this op tests
        target = self._new_path()
        pick.peer.fs.rename(pick.relpath, target)
        self.sim.trace.op(self.sim.now, f"{pick.peer.label} rename {pick.relpath} -> {target}")
        return True

    def _delete(self, pick: Pick | None = None) -> bool:
        pick = pick or self._pick()
        if pick is None:
            return False
        # The person drops the item, and with it the conflicts their replica shows for it.
        self.ledger.retract(
            te.markers_in(pick.text) + list(self._conflict_markers(pick.peer, pick.key))
        )
        # What the replica held when the person removed the file. A peer that is
        # down holds its store: without this the delete, decided at the next start
        # after a sync, was judged as if it had seen the edits that sync brought.
        node = pick.peer.node
        state = node.repo.encoded(pick.key) if node is not None else pick.peer.store.load(pick.key)
        if state is not None:
            self.ledger.delete_seen[(pick.peer.label, pick.key)] = state
        pick.peer.fs.remove(pick.relpath)
        self.sim.trace.op(self.sim.now, f"{pick.peer.label} delete {pick.relpath}")
        return True

    def _create(self) -> bool:
        peer = self.rng.choice(self.peers)
        key, relpath, text = self._new_item(with_id=True)
        self.keys.append(key)
        edit = te.Edit(text, tuple(te.markers_in(text)), ())
        self._save(Pick(peer, relpath, "", key), "create", edit)
        return True

    def _two_peers_with(self) -> tuple[Pick, Pick] | None:
        first = self._pick()
        if first is None or len(self.peers) < 2:
            return None
        other = self.rng.choice([p for p in self.peers if p is not first.peer])
        second = self._pick(other, first.key)
        return None if second is None else (first, second)

    def _claim(self) -> bool:
        pair = self._two_peers_with()
        if pair is None:
            return False
        for pick in pair:
            self._set_field(pick, "assignee")
        return True

    def _delete_vs_edit(self) -> bool:
        pair = self._two_peers_with()
        if pair is None:
            return False
        self._delete(pair[0])
        return self._body_edit("insert_line", pair[1])

    def _stale_save(self) -> bool:
        """An editor open on a file saves its buffer after a peer's rename moved the item.

        One person opens the file; a person on another peer renames the item;
        the editor saves later, to the path it opened. An editor that checks the
        file on save (vim, VS Code, Emacs) reloads a file changed under it instead
        of saving: that case is skipped. A file gone (the rename landed) or as it
        was is saved, and the save is an edit of the moved item.
        """
        pair = self._two_peers_with()
        if pair is None or pair[0].key.startswith(naming.PATH_KEY_PREFIX):
            return False
        opened, other = pair
        split = te.Split.parse(opened.text)
        if split is None:
            return False
        target = self._new_path()
        other.peer.fs.rename(other.relpath, target)
        self.sim.trace.op(
            self.sim.now, f"{other.peer.label} rename {other.relpath} -> {target} (stale_save)"
        )
        edit = te.insert_line(split, self._marker(), self.rng, hot=False)
        self.editors.busy.add((opened.peer.index, opened.relpath))
        delay = self.rng.randint(*STALE_SAVE_MS)
        self.sim.after(delay, lambda: self._stale_finish(opened, edit))
        return True

    def _stale_finish(self, opened: Pick, edit: te.Edit) -> None:
        self.editors.busy.discard((opened.peer.index, opened.relpath))
        fs = opened.peer.fs
        now = fs.get(opened.relpath)
        held = now if now is not None else fs.last_held.get(opened.relpath)
        if held != opened.text.encode():
            # Changed under the editor (before it went, if it went): an editor that
            # checks reloads it; one that does not is the stale-save limit (README).
            self.sim.trace.op(self.sim.now, f"{opened.peer.label} stale_save reloads instead")
            return
        if now is None:
            self.ledger.op_counts["stale_save_gone"] = (
                self.ledger.op_counts.get("stale_save_gone", 0) + 1
            )
        lock = self.lock
        if lock is not None and lock.key == opened.key:
            # The editor was opened before the same edit's lock, which holds back
            # new ops only: this save is a third concurrent edit of the item, and
            # the repair rule does not apply to three (documented limit, B55).
            self.ledger.markers[lock.marker].dup_exempt = True
        self._save(opened, "stale_save", edit)

    def _same_edit(self) -> bool:
        """Two peers save byte-identical edits of an item every replica agrees on."""
        pair = self._two_peers_with()
        if pair is None or self.lock is not None:
            return False
        first, second = pair
        split = te.Split.parse(first.text)
        if split is None or first.text != second.text or first.relpath != second.relpath:
            return False
        if not self._settled(first.key) or not all(
            p.up and p.fs.get(first.relpath) == first.text.encode() for p in self.peers
        ):
            return False
        edit = te.insert_line(split, self._marker(), self.rng, hot=True)
        for pick in pair:
            self._record(pick.peer, "same_edit", edit, shared=True)
            style = self.editors.save(
                pick.peer.index, pick.peer.fs, pick.relpath, edit.text.encode()
            )
            self.sim.trace.op(
                self.sim.now,
                f"{pick.peer.label} same_edit {pick.relpath} ({style}) +{list(edit.added)}",
            )
        self.lock = SameEditLock(
            first.key,
            edit.added[0],
            self.sim.now + SAME_EDIT_LOCK_MS,
            _state_vector(first.peer, first.key),
        )
        return True

    def _settled(self, key: str) -> bool:
        """Every replica holds the same state of ``key``: no third edit is in flight.

        Equal states are not enough: a save its node has not read yet is an edit in
        flight too (B65). Before the same edit, a stale editor's save of the item's old
        path, unread, was a third concurrent edit; after it, a saving peer's node held
        the edit from the other copy before it read its own save, so the lock went, and
        the person edited again on top: one save of both edits, whose ``rev`` names
        another text, so the repair rule (one hash) could not apply.
        """
        states = {_state_vector(peer, key) for peer in self.peers}
        return (
            len(states) == 1 and None not in states and all(self._read(p, key) for p in self.peers)
        )

    def _read(self, peer: SimPeer, key: str) -> bool:
        """Whether ``peer``'s node has read (or written) every file claiming ``key``."""
        node = peer.node
        if node is None:
            return True  # its store's state is compared (the callers want every peer up)
        for index, relpath in self.editors.busy:
            if index != peer.index:
                continue
            # Half-way through a save: empty or missing, so whose file it is says the
            # node's record, or what the path held when it went.
            record = node.bridge.disk.get(relpath)
            held = peer.fs.get(relpath) or peer.fs.last_held.get(relpath, b"")
            if record is not None and record.key == key:
                return False
            if _item_key_of(held.decode(errors="replace"), relpath) == key:
                return False
        for relpath in peer.fs.list_items():
            data = peer.fs.get(relpath) or b""
            if _item_key_of(data.decode(errors="replace"), relpath) != key:
                continue
            record = node.bridge.disk.get(relpath)
            if record is None or record.digest != content_hash(data):
                return False
        return True

    def _release_lock(self) -> None:
        lock = self.lock
        if lock is None:
            return
        if (
            self._settled(lock.key)
            and _state_vector(self.peers[0], lock.key) != lock.before
            and all(
                p.up and any(lock.marker.encode() in data for data in p.fs.files_data())
                for p in self.peers
            )
        ):
            self.lock = None
        elif self.sim.now >= lock.until_ms:
            # Others may now edit the item before the two copies met: the repair
            # rule does not apply to three concurrent edits (documented limit).
            self.ledger.markers[lock.marker].dup_exempt = True
            self.lock = None

    # -- names ---------------------------------------------------------------------------

    def _new_path(self) -> str:
        self._names += 1
        return f"{self.rng.choice(FOLDERS)}{self.rng.choice(te.WORDS)}-{self._names}.md"

    def _new_item(self, with_id: bool) -> tuple[str, str, str]:
        relpath = self._new_path()
        item_id = naming.new_item_id("task", self.rng.choice(te.WORDS), self.rng)
        text = te.new_item(item_id, self._marker(), self.rng, with_id=with_id)
        key = item_id if with_id else naming.PATH_KEY_PREFIX + relpath
        return key, relpath, text


@functools.lru_cache(maxsize=4096)
def _item_key_of(text: str, relpath: str) -> str:
    """The key a person takes the file for (each pick reads every file of a peer,
    and most files are as they were at the last pick)."""
    split = te.Split.parse(text)
    return naming.item_key({"id": split.scalar("id")} if split else None, relpath)


def _state_vector(peer: SimPeer, key: str) -> bytes | None:
    state = peer.node.repo.encoded(key) if peer.node is not None else peer.store.load(key)
    return None if state is None else pycrdt.get_state(state)
