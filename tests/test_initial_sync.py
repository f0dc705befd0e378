"""A first sync of many items to an empty peer, with real processes on loopback.

Peer A holds 500 generated work items; each test joins a fresh, empty B and
starts it dialling A. The second test kills B (SIGKILL) while its first
batches are being written and checks what a crash leaves: only whole files
under real names, file records only for them, and, after a restart, every
item exactly once and byte-identical to A's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks import corpus
from tests.nodehelpers import poll_until
from worksync_p2p import commands
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core import members
from worksync_p2p.core.bridge import content_hash
from worksync_p2p.workspace import init

ITEMS = 500
SEED = 11
LOOPBACK = "127.0.0.1"
SYNC_WAIT_S = 300.0  # the machine may be loaded; a run takes seconds when it is not
START_WAIT_S = 120.0


@dataclass
class Up:
    process: subprocess.Popen[str]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start(root: Path, peers: list[str], *, read_address: bool) -> tuple[Up, str]:
    args = [sys.executable, "-m", "worksync_p2p", "--json", "up", str(root)]
    args += ["--host", LOOPBACK, "--port", "0", "--no-mdns"]
    for address in peers:
        args += ["--peer", address]
    stdout = subprocess.PIPE if read_address else subprocess.DEVNULL
    process = subprocess.Popen(args, stdout=stdout, stderr=subprocess.DEVNULL, text=True)
    up = Up(process)
    if not read_address:
        return up, ""
    assert process.stdout is not None
    for _ in range(50):  # "started" comes after reconcile; "peer" lines may come first
        line = process.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        if event["event"] == "started":
            return up, str(event["address"])
    up.stop()
    raise AssertionError(f"`up {root.name}` did not start")


def item_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*.md"))
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def wait_for(cond: Callable[[], bool], what: str, timeout: float = SYNC_WAIT_S) -> None:
    poll_until(cond, what, timeout)


def stored_keys(root: Path) -> set[str]:
    with SqliteStore(root / ".worksync" / "store.sqlite3") as store:
        return set(store.keys()) - {members.MEMBERS_KEY}


def check_records(root: Path) -> dict[str, str]:
    """Every file record names a file that is on disk whole, holding that digest."""
    with SqliteStore(root / ".worksync" / "store.sqlite3") as store:
        records = store.load_files()
    for relpath, record in records.items():
        data = (root / relpath).read_bytes()
        assert data, f"{relpath} is recorded but empty"
        assert content_hash(data) == record.digest, f"{relpath} does not hold its recorded bytes"
    return {relpath: record.key for relpath, record in records.items()}


@dataclass(frozen=True)
class Seeded:
    root: Path
    code: str
    address: str
    files: dict[str, bytes]
    keys: set[str]


@pytest.fixture(scope="module")
def peer_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    root = tmp_path_factory.mktemp("first-sync") / "a"
    corpus.write_corpus(root, ITEMS, SEED)
    init(root)
    code = str(commands.invite(root)["code"])
    up, address = start(root, [], read_address=True)
    try:
        files = item_files(root)
        assert len(files) == ITEMS
        yield Seeded(root, code, address, files, stored_keys(root))
    finally:
        up.stop()


def fresh_b(peer_a: Seeded, tmp_path: Path) -> Path:
    b = tmp_path / "b"
    commands.join(peer_a.code, b)
    assert item_files(b) == {}
    return b


def same_as_a(peer_a: Seeded, b: Path) -> Callable[[], bool]:
    return lambda: item_files(b) == peer_a.files


def check_complete(peer_a: Seeded, b: Path) -> None:
    assert item_files(b) == peer_a.files  # every file, byte-identical, nothing extra
    assert stored_keys(b) == peer_a.keys  # every item in the store
    recorded = check_records(b)
    assert sorted(recorded) == sorted(peer_a.files)  # a record for every file
    assert len(set(recorded.values())) == ITEMS  # one file per item
    assert commands.list_conflicts(b) == []
    assert not [p for p in b.rglob("*.worksync-tmp") if ".worksync" not in p.parts]  # no leftovers
    assert item_files(peer_a.root) == peer_a.files  # and A was not touched


def test_a_first_sync_of_many_items_ends_byte_identical_and_complete(
    peer_a: Seeded, tmp_path: Path
) -> None:
    b = fresh_b(peer_a, tmp_path)
    up, _ = start(b, [peer_a.address], read_address=False)
    try:
        wait_for(same_as_a(peer_a, b), f"{ITEMS} items on B")
    finally:
        up.stop()
    check_complete(peer_a, b)


def test_a_first_sync_killed_half_way_ends_complete_after_a_restart(
    peer_a: Seeded, tmp_path: Path
) -> None:
    b = fresh_b(peer_a, tmp_path)
    up, _ = start(b, [peer_a.address], read_address=False)
    try:
        # Mid-sync: some batches are done, the next are being adopted and written.
        wait_for(lambda: len(item_files(b)) >= ITEMS // 3, "a third of the files", START_WAIT_S)
        os.kill(up.process.pid, signal.SIGKILL)
        up.process.wait(timeout=10)
    finally:
        up.stop()
    partial = item_files(b)
    assert len(partial) < ITEMS, "the sync ended before the kill: nothing was tested"
    for relpath, data in partial.items():
        assert data == peer_a.files[relpath], f"{relpath} is not whole after the kill"
    check_records(b)  # records only for files that are whole

    up, _ = start(b, [peer_a.address], read_address=False)
    try:
        wait_for(same_as_a(peer_a, b), f"{ITEMS} items on B after the restart")
    finally:
        up.stop()
    check_complete(peer_a, b)
