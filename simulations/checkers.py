"""Judging the end state of a run (after the final heal, restarts and quiescence).

Each checker returns a list of problems, one line each; an empty list passes.
"""

from __future__ import annotations

import json

from simulations import textedit as te
from simulations.ledger import Ledger, covers
from simulations.memfs import is_item_relpath
from simulations.peer import SimPeer
from worksync_p2p.core import paths
from worksync_p2p.core.report import conflicts_of
from worksync_p2p.node import LocalNode

WRITES_PER_SAVE_PER_PEER = 4
"""A save is one write on each other peer, plus retries and repairs; an echo loop has no bound."""


def rendered(node: LocalNode) -> dict[str, bytes]:
    """What the node's documents say the folder should hold."""
    out: dict[str, bytes] = {}
    for key in node.repo.item_keys():
        item = node.repo.get(key)
        text = item.render() if item is not None else None
        path = item.path() if item is not None else None
        if text is not None and path is not None:
            out[path] = text.encode()
    return out


def item_files(peer: SimPeer) -> dict[str, bytes]:
    return {p: d for p, d in peer.fs.snapshot().items() if is_item_relpath(p)}


def convergence(peers: list[SimPeer]) -> list[str]:
    problems: list[str] = []
    reference = item_files(peers[0])
    for peer in peers:
        files = item_files(peer)
        if files != reference:
            problems.append(f"{peer.label} folder differs from p0: {_diff(reference, files)}")
        assert peer.node is not None
        wanted = rendered(peer.node)
        if wanted != files:
            problems.append(
                f"{peer.label} folder differs from its documents: {_diff(wanted, files)}"
            )
    return problems


def _diff(expected: dict[str, bytes], actual: dict[str, bytes]) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(p for p in set(expected) & set(actual) if expected[p] != actual[p])
    parts = []
    for label, found in (("missing", missing), ("extra", extra), ("content", changed)):
        if found:
            parts.append(f"{label} {found[:4]}")
    detail = ""
    if changed:
        path = changed[0]
        detail = f"; {path}: expected {expected[path]!r} got {actual[path]!r}"
    return ", ".join(parts) + detail[:600]


def conflicts_text(node: LocalNode) -> str:
    out = []
    for key in node.repo.item_keys():
        item = node.repo.get(key)
        if item is not None:
            out.append(json.dumps(conflicts_of(key, item)))
    return "\n".join(out)


def lost_edits(peer: SimPeer, ledger: Ledger) -> list[str]:
    assert peer.node is not None
    files = "\n".join(d.decode(errors="replace") for d in item_files(peer).values())
    recorded = conflicts_text(peer.node)
    problems = []
    for marker in ledger.markers.values():
        if marker.retracted or marker.text in files or marker.text in recorded:
            continue
        problems.append(
            f"lost edit: {marker.text} ({marker.what} by {marker.peer}, op {marker.op})"
            " is in no file and in no conflict record"
        )
    return problems


def duplicates(peer: SimPeer, ledger: Ledger) -> list[str]:
    files = "\n".join(d.decode(errors="replace") for d in item_files(peer).values())
    counts: dict[str, int] = {}
    for found in te.markers_in(files):
        counts[found] = counts.get(found, 0) + 1
    problems = []
    for text, count in sorted(counts.items()):
        marker = ledger.markers.get(text)
        if count > 1 and not (marker is not None and marker.dup_exempt):
            what = f"{marker.what} by {marker.peer}" if marker else "unknown"
            problems.append(f"duplicated: {text} ({what}) appears {count} times")
    return problems


def deletes(peer: SimPeer, ledger: Ledger) -> list[str]:
    """An item alive at the end needs an edit that its delete(s) had not seen."""
    assert peer.node is not None
    problems = []
    for delete in ledger.deletes:
        item = peer.node.repo.get(delete.key)
        if item is None or not item.alive():
            continue
        edits = ledger.edits.get(delete.key, [])
        if all(covers(delete.seen, edit) for edit in edits):
            problems.append(
                f"deleted item came back: {delete.key} (deleted on {delete.peer} at"
                f" t={delete.at_ms}ms, no edit concurrent with or after the delete)"
            )
    return problems


def containment(peers: list[SimPeer]) -> list[str]:
    problems = []
    for peer in peers:
        for relpath in peer.fs.counters.unsafe:
            problems.append(
                f"{peer.label}: the node tried to write outside the folder: {relpath!r}"
            )
        for relpath in peer.fs.files:
            reason = paths.unsafe_reason(relpath)
            if reason is not None:
                problems.append(f"{peer.label}: unexpected file {relpath!r} ({reason})")
    return problems


def write_budget(peers: list[SimPeer], saves: int) -> list[str]:
    writes = sum(p.fs.counters.node_writes + p.fs.counters.node_removes for p in peers)
    budget = WRITES_PER_SAVE_PER_PEER * len(peers) * (saves + len(peers))
    if writes > budget:
        return [f"echo: the nodes wrote {writes} times for {saves} saves (budget {budget})"]
    return []
