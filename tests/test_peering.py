"""Two and three nodes in one process, connected over real loopback WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.nodehelpers import wait_until
from worksync_p2p.core import frames
from worksync_p2p.node import LocalNode, NetOptions, running
from worksync_p2p.workspace import init

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
LOOPBACK = "127.0.0.1"
WRITER_FAILURE_S = 2.0  # well under the peer heartbeat's 5 s, which ended such a link before


def linked(*nodes: LocalNode) -> Callable[[], bool]:
    def check() -> bool:
        return all(n.peering is not None and len(n.peering.links) == len(nodes) - 1 for n in nodes)

    return check


def same_files(*roots: Path) -> Callable[[], bool]:
    def snapshot(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*.md"))
            if ".worksync" not in p.parts
        }

    def check() -> bool:
        first = snapshot(roots[0])
        return bool(first) and all(snapshot(r) == first for r in roots[1:])

    return check


@contextlib.asynccontextmanager
async def mesh(roots: list[Path]) -> AsyncIterator[list[LocalNode]]:
    """Start the first node listening, the others dialling it and each other."""
    async with contextlib.AsyncExitStack() as stack:
        nodes: list[LocalNode] = []
        addresses: list[str] = []
        for root in roots:
            net = NetOptions(True, LOOPBACK, 0, tuple(addresses))
            node = await stack.enter_async_context(running(root, net=net))
            assert node.address is not None
            addresses.append(f"{LOOPBACK}:{node.address.rsplit(':', 1)[1]}")
            nodes.append(node)
        await wait_until(linked(*nodes), timeout=10, what="every pair linked")
        yield nodes


def workspaces(tmp_path: Path, count: int, seed_first: bool = True) -> list[Path]:
    first = init(tmp_path / "peer-0").workspace
    roots = [first.root]
    for i in range(1, count):
        roots.append(init(tmp_path / f"peer-{i}", secret=first.load_secret()).workspace.root)
    if seed_first:
        for path in CORPUS.glob("*.md"):
            shutil.copy(path, roots[0] / path.name)
    return roots


def test_two_peers_converge_and_follow_live_edits(tmp_path: Path) -> None:
    async def scenario() -> None:
        roots = workspaces(tmp_path, 2)
        async with mesh(roots) as nodes:
            assert len(nodes) == 2
            await wait_until(same_files(*roots), timeout=10, what="initial sync")
            task = roots[1] / "task-fsnotify-research.md"
            task.write_text(task.read_text().replace("status: in_progress", "status: done"))
            await wait_until(same_files(*roots), timeout=10, what="b's edit on a")
            assert "status: done" in (roots[0] / "task-fsnotify-research.md").read_text()
            (roots[0] / "new-note.md").write_text("# written on a\n")
            await wait_until(same_files(*roots), timeout=10, what="a's new file on b")

    asyncio.run(scenario())


def test_three_peers_with_edits_on_every_side_end_byte_identical(tmp_path: Path) -> None:
    async def scenario() -> None:
        roots = workspaces(tmp_path, 3)
        async with mesh(roots) as nodes:
            await wait_until(same_files(*roots), timeout=15, what="initial sync")
            plan = "plan-multi-session.md"
            for i, root in enumerate(roots):
                path = root / plan
                path.write_text(path.read_text() + f"line from peer {i}\n")
            await wait_until(same_files(*roots), timeout=15, what="three edits merged")
            text = (roots[0] / plan).read_text()
            assert all(f"line from peer {i}" in text for i in range(3))
            assert len(nodes) == 3

    asyncio.run(scenario())


def test_a_peer_with_the_wrong_secret_cannot_connect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        good = init(tmp_path / "good").workspace.root
        stranger = init(tmp_path / "stranger").workspace.root  # its own random secret
        (good / "secret-plan.md").write_text("---\nid: s\n---\nnot for strangers\n")
        async with running(good, net=NetOptions(True, LOOPBACK, 0)) as a:
            assert a.address is not None
            port = a.address.rsplit(":", 1)[1]
            net = NetOptions(True, LOOPBACK, 0, (f"{LOOPBACK}:{port}",))
            async with running(stranger, net=net) as b:
                await wait_until(
                    lambda: "handshake failed" in caplog.text, timeout=10, what="the refusal"
                )
                assert a.peering is not None
                assert b.peering is not None
                assert a.peering.links == {}
                assert b.peering.links == {}
        assert not (stranger / "secret-plan.md").exists()

    asyncio.run(scenario())


def test_a_revoked_peer_is_cut_off_everywhere_and_cannot_reconnect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        roots = workspaces(tmp_path, 3)
        async with mesh(roots) as (a, b, c):
            await wait_until(same_files(*roots), timeout=15, what="initial sync")
            assert a.revoke(c.peer_id)
            assert not a.revoke(c.peer_id)  # already revoked: harmless
            pa, pb, pc = a.peering, b.peering, c.peering
            assert pa is not None
            assert pb is not None
            assert pc is not None
            await wait_until(
                lambda: c.peer_id not in pa.links and c.peer_id not in pb.links,
                timeout=10,
                what="c cut off by a and, through the synced revocation, by b",
            )
            assert not b.is_allowed(c.peer_id)
            await wait_until(lambda: "revoked" in caplog.text, timeout=10, what="the refusal")
            (roots[0] / "after-revocation.md").write_text("# not for c\n")
            await wait_until((roots[1] / "after-revocation.md").exists, timeout=10, what="a to b")
            assert not (roots[2] / "after-revocation.md").exists()
            assert pc.links == {}
            book = {p["peer"]: p for p in a.peer_book()}
            assert book[c.peer_id]["revoked"]
            assert not book[c.peer_id]["connected"]
            assert book[b.peer_id]["connected"]

    asyncio.run(scenario())


def test_a_link_whose_writer_fails_ends_at_once_and_the_peers_relink(tmp_path: Path) -> None:
    """A send that fails ends the link then, not when the peer's heartbeat gives up on it.

    aiohttp raises ClientConnectionResetError on a send to a closing transport;
    here the real writer fails on a frame too large to seal. Before the fix the
    writer task died alone and the link stayed registered, sending nothing,
    for the peer's ``dead_after_ms`` (5 s), so this bounded wait failed.
    """

    async def scenario() -> None:
        roots = workspaces(tmp_path, 2)
        async with mesh(roots) as (a, b):
            await wait_until(same_files(*roots), timeout=10, what="initial sync")
            assert a.peering is not None
            link = a.peering.links[b.peer_id]
            link.send([b"x" * (frames.MAX_FRAME_BYTES + 1)])
            await asyncio.wait_for(link.closed.wait(), WRITER_FAILURE_S)
            await wait_until(
                lambda: (
                    a.peering is not None and a.peering.links.get(b.peer_id) not in (None, link)
                ),
                timeout=10,
                what="the pair linked again",
            )
            (roots[0] / "after-the-failure.md").write_text("# written on a\n")
            await wait_until(same_files(*roots), timeout=10, what="a's new file on b")

    asyncio.run(scenario())
