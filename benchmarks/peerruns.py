"""The three peer measurements, each with its own B process (see peers.py).

A is already serving; B folders and the processes' stderr logs go below
``Pair.root``. Every wait is bounded; every process is ended by its PID.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks import bridge, corpus, peerproc, wiretap
from benchmarks.harness import Laps
from benchmarks.peerwire import WINDOW_S, Wire, measure_wire
from benchmarks.session import Session, progress
from worksync_p2p import commands

START_TIMEOUT_S = 300.0
SYNC_TIMEOUT_S = 600.0
EVENT_TIMEOUT_S = 5.0
POLL_S = 0.05  # polling B's folder during the first sync
SAMPLE = 50  # files byte-compared at each poll once the count is complete
SETTLE_S = 0.5  # after B joined, before the first edit
WARMUP_EDITS = 3
ITEM_INDEX = 0


@dataclass(frozen=True)
class Pair:
    """Peer A, seeded and serving; B folders and process logs go below ``root``."""

    root: Path
    a: Path
    code: str
    items: int
    address: str
    peer_id: str
    pid: int
    """A's process."""


# -- files ------------------------------------------------------------------------


def count_items(folder: Path) -> int:
    """``*.md`` files below ``folder``, skipping dot names (``.worksync``, temp files)."""
    total = 0
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            total += count_items(entry)
        elif entry.name.endswith(".md"):
            total += 1
    return total


def item_paths(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*.md")
        if not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def same_files(a: Path, b: Path, relpaths: list[str]) -> bool:
    try:
        return all((a / r).read_bytes() == (b / r).read_bytes() for r in relpaths)
    except FileNotFoundError:
        return False


# -- 1. first sync ------------------------------------------------------------------


def _complete_at(
    pair: Pair, b: Path, sample: list[str], peer: peerproc.Peer
) -> tuple[float, float]:
    """perf_counter of the first poll that saw a file, and of the one that saw them all."""
    deadline = peer.spawned + SYNC_TIMEOUT_S
    first = 0.0
    while True:
        now = time.perf_counter()
        count = count_items(b)
        if count and not first:
            first = now
        if count >= pair.items and same_files(pair.a, b, sample):
            return first, now
        if not peer.alive():
            raise RuntimeError(f"B exited during the first sync ({count} files)")
        if now > deadline:
            raise TimeoutError(f"first sync: {count} of {pair.items} files after the deadline")
        time.sleep(POLL_S)


def _cpu_s(pid: int) -> float:
    """User + system CPU of a process and its children (a daemon's render workers)."""
    process = psutil.Process(pid)
    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue  # ended since: counted in children_* once it is reaped
        total += child_times.user + child_times.system
    return float(total)


def _first_sync(pair: Pair, b: Path, sample: list[str], laps: Laps) -> None:
    commands.join(pair.code, b)
    a_cpu = _cpu_s(pair.pid)
    with peerproc.running(b, pair.root, [pair.address]) as peer:
        first, done = _complete_at(pair, b, sample, peer)
        laps.add("sync cpu B", _cpu_s(peer.pid))
        laps.add("sync cpu A", _cpu_s(pair.pid) - a_cpu)
        joined = peer.joined(START_TIMEOUT_S).at
    for name, at in (("sync", done), ("sync joined", joined), ("sync file", first)):
        laps.add(name, at - peer.spawned)


def first_sync(pair: Pair, b: Path, laps: Laps) -> None:
    """One first sync into ``b``, checked file by file."""
    relpaths = item_paths(pair.a)
    _first_sync(pair, b, relpaths[:: max(1, len(relpaths) // SAMPLE)], laps)
    if not same_files(pair.a, b, relpaths):
        raise RuntimeError("after the first sync B's files differ from A's")


def first_syncs(session: Session, pair: Pair, laps: Laps) -> Path:
    """Runs of the first sync, each into a fresh B; returns the last B's folder.

    The earlier B folders are removed only after the last run. On ext4 without
    a journal (this machine's disk) the inode allocator skips every inode freed
    in the last minute or more, one lookup each, so creating a file right after
    10,000 were deleted nearby cost up to 0.9 ms of kernel time instead of
    0.03 ms: runs that followed a removal measured B's CPU 5 s higher.
    """
    relpaths = item_paths(pair.a)
    if len(relpaths) != pair.items:
        raise RuntimeError(f"A holds {len(relpaths)} files, not {pair.items}")
    sample = relpaths[:: max(1, len(relpaths) // SAMPLE)] + relpaths[-1:]
    runs = session.config.runs(3, 1)
    done: list[Path] = []
    for run in range(runs):
        progress(f"peers: first sync {run + 1}/{runs}")
        b = pair.root / f"b{run}"
        _first_sync(pair, b, sample, laps)
        done.append(b)
    if not same_files(pair.a, b, relpaths) or count_items(b) != pair.items:
        raise RuntimeError("after the first sync B's files differ from A's")
    for earlier in done[:-1]:
        session.discard(earlier)
    return b


# -- 2. reconnect ---------------------------------------------------------------------


def _reconnect(pair: Pair, b: Path, proxy: wiretap.Proxy, laps: Laps) -> Wire:
    proxy.clear()
    with peerproc.running(b, pair.root, [f"{peerproc.LOOPBACK}:{proxy.port}"]) as peer:
        joined = peer.joined(START_TIMEOUT_S).at
        started = peer.started(START_TIMEOUT_S).at
        connect = proxy.accepted()[0]
        time.sleep(max(0.0, connect + WINDOW_S - time.perf_counter()))
        wire = measure_wire(proxy.chunks(), connect)
    for name, at in (("joined", joined), ("serving", started), ("connect", connect)):
        laps.add(f"reconnect {name}", at - peer.spawned)
    laps.add("reconnect done", wire.last - peer.spawned)
    laps.add("reconnect exchange", wire.last - connect)
    return wire


def reconnects(session: Session, pair: Pair, b: Path, laps: Laps) -> list[Wire]:
    runs = session.config.runs(5, 2)
    port = int(pair.address.rpartition(":")[2])
    wires = []
    with wiretap.recording(port) as proxy:
        for run in range(runs):
            progress(f"peers: reconnect {run + 1}/{runs}")
            wires.append(_reconnect(pair, b, proxy, laps))
    return wires


# -- 3. edit ----------------------------------------------------------------------------


def _modified(key: str, origin: str) -> Callable[[dict[str, Any]], bool]:
    def wanted(event: dict[str, Any]) -> bool:
        return (
            event.get("event") == "modified"
            and event.get("id") == key
            and event.get("origin") == origin
        )

    return wanted


def _timed_edit(
    editor: bridge.Editor, on_a: peerproc.Feed, on_b: peerproc.Feed, origin: str
) -> tuple[float, float, bytes]:
    """Seconds from an atomic save on A to A's own event and to B's; the bytes saved."""
    data, _ = editor.next()
    start = bridge.save_atomic(editor.path, data)
    deadline = start + EVENT_TIMEOUT_S
    local, _ = on_a.take(_modified(editor.key, "file"), deadline)
    remote, _ = on_b.take(_modified(editor.key, origin), deadline)
    time.sleep(bridge.GAP_S)  # the next save starts on idle daemons
    return local.at - start, remote.at - start, data


def _edit_runs(pair: Pair, b: Path, runs: int, laps: Laps) -> None:
    editor = bridge.Editor.open(pair.a, ITEM_INDEX)
    data = b""
    with (
        peerproc.tapped(pair.a, EVENT_TIMEOUT_S) as on_a,
        peerproc.tapped(b, EVENT_TIMEOUT_S) as on_b,
    ):
        for run in range(WARMUP_EDITS + runs):
            local, remote, data = _timed_edit(editor, on_a, on_b, pair.peer_id)
            if run >= WARMUP_EDITS:
                laps.add("edit", remote)
                laps.add("edit floor", local)
                laps.add("edit hop", remote - local)
    if (b / corpus.relpath(ITEM_INDEX)).read_bytes() != data:
        raise RuntimeError("after the edits B's file is not A's last save")


def edits(session: Session, pair: Pair, b: Path, laps: Laps) -> None:
    runs = session.config.runs(200, 20)
    with peerproc.running(b, pair.root, [pair.address]) as peer:
        peer.joined(START_TIMEOUT_S)
        peer.started(START_TIMEOUT_S)
        time.sleep(SETTLE_S)
        progress(f"peers: {runs} edits on A")
        _edit_runs(pair, b, runs, laps)
