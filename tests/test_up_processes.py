"""Three real `worksync-p2p up` processes on loopback with static peers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.nodehelpers import poll_until
from worksync_p2p import commands
from worksync_p2p.workspace import init

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
LOOPBACK = "127.0.0.1"
WAIT_S = 20.0


class Peer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.process: subprocess.Popen[str] | None = None
        self.address = ""

    def start(self, peers: list[str]) -> None:
        args = [sys.executable, "-m", "worksync_p2p", "--json", "up", str(self.root)]
        args += ["--host", LOOPBACK, "--port", "0"]
        for address in peers:
            args += ["--peer", address]
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        # Peers may connect while the watcher warms up, so "peer" lines can come
        # first; each line is one JSON event. Bounded by the test timeout.
        for _ in range(20):
            event = json.loads(self.process.stdout.readline())
            if event["event"] == "started":
                self.address = event["address"]
                return
        raise AssertionError("no started event")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.process = None


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*.md"))
        if ".worksync" not in p.parts
    }


def wait_for(cond: Callable[[], bool], what: str) -> None:
    poll_until(cond, what, WAIT_S)


def identical(*peers: Peer) -> Callable[[], bool]:
    def check() -> bool:
        first = snapshot(peers[0].root)
        return bool(first) and all(snapshot(p.root) == first for p in peers[1:])

    return check


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[Peer]]:
    first = tmp_path / "a"
    init(first)
    code = commands.invite(first)["code"]
    roots = [first]
    for name in ("b", "c"):
        commands.join(code, tmp_path / name)
        roots.append(tmp_path / name)
    for path in CORPUS.glob("*.md"):
        shutil.copy(path, first / path.name)
    peers = [Peer(root) for root in roots]
    try:
        yield peers
    finally:
        for peer in peers:
            peer.stop()


def start_mesh(peers: list[Peer]) -> None:
    started: list[str] = []
    for peer in peers:
        peer.start(started)
        started.append(peer.address)


def append_line(root: Path, name: str, line: str) -> None:
    path = root / name
    path.write_text(path.read_text() + line)


def test_three_processes_sync_edits_and_merge_after_one_was_stopped(three: list[Peer]) -> None:
    a, b, c = three
    start_mesh(three)
    wait_for(identical(a, b, c), "the corpus on every peer")
    for peer, name in zip(three, "abc", strict=True):
        append_line(peer.root, "plan-multi-session.md", f"edited live on {name}\n")
    wait_for(identical(a, b, c), "live edits merged")

    c.stop()
    for peer, name in zip(three, "abc", strict=True):
        append_line(peer.root, "task-fsnotify-research.md", f"offline round on {name}\n")
    (c.root / "made-while-stopped.md").write_text("---\nid: offline-c\n---\nfrom c\n")
    c.start([a.address, b.address])
    wait_for(identical(a, b, c), "everything merged after the restart")
    text = (a.root / "task-fsnotify-research.md").read_text()
    assert all(f"offline round on {name}" in text for name in "abc")
    assert (a.root / "made-while-stopped.md").read_text().endswith("from c\n")
    assert os.listdir(a.root)  # the folders are real
