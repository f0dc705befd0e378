"""Hostile peers and a hostile network against a node, over real loopback sockets.

Every attack test runs two honest nodes A and B, linked and in sync; the
attacker connects to A. Each asserts that (a) A closes the attacker's
connection, (b) A logs one line naming the attacker's address or peer id
with the reason, and (c) A keeps serving B: an edit made on A after the
attack reaches B over the very same link.

A peer that stalls the handshake is dropped at the timeout and must not
hold up the node's shutdown. Then: a man in the middle that drops,
duplicates, reorders or alters one message is detected and the honest peer
recovers by reconnecting; a recording of everything two nodes say while
syncing holds none of the workspace's content or identities; and two peers
that dial each other end with one link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.nodehelpers import wait_until
from tests.test_peering import mesh, same_files, workspaces
from tests.test_receive_many import remote_items
from tests.wirekit import (
    LOOPBACK,
    Direction,
    RawPeer,
    TcpTap,
    WsProxy,
    contains_any,
    forged_msg3,
    forward,
)
from worksync_p2p.adapters import peering
from worksync_p2p.adapters.peering import Link, Peering
from worksync_p2p.core import frames, handshake
from worksync_p2p.core import syncproto as sp
from worksync_p2p.identity import Identity
from worksync_p2p.node import LocalNode, NetOptions, running
from worksync_p2p.workspace import init

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
TASK = "task-fsnotify-research.md"
TASK_ID = "task-fsnotify-research"
PEERING_LOG = peering.__name__
WAIT_S = 10.0


def port_of(node: LocalNode) -> int:
    assert node.address is not None
    return int(node.address.rsplit(":", 1)[1])


def peering_of(node: LocalNode) -> Peering:
    assert node.peering is not None
    return node.peering


def stranger() -> Identity:
    return Identity.from_seed(os.urandom(32))


# -- the honest pair and the three checks ------------------------------------------------


@dataclass
class Pair:
    a: LocalNode
    b: LocalNode
    roots: list[Path]
    secret: bytes
    link_ab: Link
    """A's link to B when the attack starts; it must survive the attack."""

    @property
    def a_port(self) -> int:
        return port_of(self.a)


@contextlib.asynccontextmanager
async def honest_pair(tmp_path: Path) -> AsyncIterator[Pair]:
    roots = workspaces(tmp_path, 2)
    async with mesh(roots) as (a, b):
        await wait_until(same_files(*roots), timeout=WAIT_S, what="initial sync")
        secret = a.workspace.load_secret()
        yield Pair(a, b, roots, secret, peering_of(a).links[b.peer_id])


async def still_serves(pair: Pair, tag: str) -> None:
    """(c): an edit on A after the attack reaches B, over the link that existed before."""
    path = pair.roots[0] / TASK
    path.write_text(path.read_text() + f"\nEdited on A after the attack: {tag}\n")
    await wait_until(
        lambda: tag in (pair.roots[1] / TASK).read_text(), timeout=WAIT_S, what="A's edit on B"
    )
    await wait_until(same_files(*pair.roots), timeout=WAIT_S, what="A and B identical")
    assert peering_of(pair.a).links.get(pair.b.peer_id) is pair.link_ab
    assert peering_of(pair.b).links.get(pair.a.peer_id) is not None


def peering_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == PEERING_LOG and r.levelno >= logging.WARNING
    ]


def assert_logged(caplog: pytest.LogCaptureFixture, pattern: str) -> str:
    """(b): the one warning line matching ``pattern`` (a regex)."""
    lines = peering_lines(caplog)
    matching = [line for line in lines if re.search(pattern, line)]
    assert matching, f"no log line matches {pattern!r}; peering logged {lines}"
    assert "\n" not in matching[0], f"the reason is not one line: {matching[0]!r}"
    return matching[0]


async def logged(caplog: pytest.LogCaptureFixture, pattern: str) -> str:
    """Wait for a warning line matching ``pattern``."""
    await wait_until(
        lambda: any(re.search(pattern, line) for line in peering_lines(caplog)),
        timeout=WAIT_S,
        what=f"a log line matching {pattern!r}",
    )
    return assert_logged(caplog, pattern)


def handshake_refused(reason: str) -> str:
    return rf"^peer at {re.escape(LOOPBACK)}: handshake failed: .*{reason}"


def session_closed(peer_id: str, reason: str) -> str:
    return rf"^peer {peer_id} \({re.escape(LOOPBACK)}\): closing: .*{reason}"


Strike = Callable[[RawPeer, Pair, Identity], Awaitable[None]]


def hostile(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    strike: Strike,
    expect: Callable[[Identity], str],
    *,
    close_code: set[int] | None = None,
    compress: int = 0,
    after: Callable[[Pair, Identity], None] | None = None,
) -> None:
    """Run one attack on A and check (a), (b) and (c)."""
    caplog.set_level(logging.WARNING, logger=PEERING_LOG)
    attacker = stranger()

    async def scenario() -> None:
        async with honest_pair(tmp_path) as pair:
            async with RawPeer.connect(pair.a_port, compress=compress) as peer:
                await strike(peer, pair, attacker)
                code = await peer.closed_by_peer()  # (a)
                if close_code is not None:
                    assert code in close_code
            await wait_until(
                lambda: attacker.peer_id not in peering_of(pair.a).links,
                timeout=WAIT_S,
                what="the attacker's link dropped",
            )
            # The node logs before it closes or drops a connection, so the line is there now.
            assert_logged(caplog, expect(attacker))  # (b)
            if after is not None:
                after(pair, attacker)
            await still_serves(pair, f"tag-{os.urandom(4).hex()}")  # (c)

    asyncio.run(scenario())


def ping(n: int) -> bytes:
    return sp.encode(sp.Kind.PING, n.to_bytes(8, "big"))


async def authenticated(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
    """A member with the right secret: the handshake succeeds."""
    await peer.handshake(attacker, pair.secret)
    await wait_until(
        lambda: attacker.peer_id in peering_of(pair.a).links, timeout=WAIT_S, what="link"
    )


# -- 1-4: the handshake ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n" * 2, "bad magic", id="wrong-magic"),
        pytest.param(b"\xde\xad\xbe\xef" * 600, "exceeds the limit", id="2400-bytes"),
        pytest.param(b"", "msg1 is 0 bytes", id="empty"),
        pytest.param(handshake.MAGIC + b"\x00", "msg1 is 5 bytes", id="short-msg1"),
    ],
)
def test_garbage_instead_of_a_handshake_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, garbage: bytes, reason: str
) -> None:
    async def strike(peer: RawPeer, _pair: Pair, _attacker: Identity) -> None:
        await peer.send(garbage)

    hostile(tmp_path, caplog, strike, lambda _: handshake_refused(reason))


def test_a_peer_with_the_wrong_secret_is_refused_at_msg3(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        wrong = os.urandom(handshake.SECRET_BYTES)
        assert wrong != pair.secret
        eph = os.urandom(handshake.EPHEMERAL_BYTES)
        initiator = handshake.Initiator(attacker, wrong, lambda _n: eph, lambda _p: True)
        msg1 = initiator.start()
        await peer.send(msg1)
        msg2 = await peer.recv_bytes()
        # The honest initiator sees the wrong secret at msg2 and learns nothing...
        with pytest.raises(handshake.HandshakeError, match="msg2 does not decrypt"):
            initiator.receive(msg2)
        # ...a hostile one sends msg3 anyway.
        await peer.send(forged_msg3(attacker, wrong, eph, msg1, msg2))

    hostile(tmp_path, caplog, strike, lambda _: handshake_refused("msg3 does not decrypt"))


def test_an_unknown_protocol_version_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def strike(peer: RawPeer, _pair: Pair, _attacker: Identity) -> None:
        msg1 = handshake.MAGIC + struct.pack(">H", 2) + os.urandom(handshake.EPHEMERAL_BYTES)
        await peer.send(msg1)

    hostile(
        tmp_path, caplog, strike, lambda _: handshake_refused(r"unsupported protocol version 2")
    )


def test_a_revoked_peer_is_refused_at_the_handshake(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        assert pair.a.revoke(attacker.peer_id)
        # The attacker holds the right secret, so its own side completes...
        await peer.handshake(attacker, pair.secret)

    def after(pair: Pair, attacker: Identity) -> None:
        # ...but A never took it as a peer, and B learnt the revocation.
        assert not pair.b.is_allowed(attacker.peer_id)

    def expect(attacker: Identity) -> str:
        return handshake_refused(rf"peer {attacker.peer_id} is not allowed")

    hostile(tmp_path, caplog, strike, expect, after=after)


def test_a_connected_peer_is_dropped_when_revoked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        await authenticated(peer, pair, attacker)
        assert pair.a.revoke(attacker.peer_id)

    hostile(tmp_path, caplog, strike, lambda at: rf"^peer {at.peer_id}\b.*closing: revoked")


# -- 5-8: frames that do not open -------------------------------------------------------------


def test_a_replayed_frame_closes_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        await authenticated(peer, pair, attacker)
        first = peer.seal(ping(1))
        await peer.send(first)
        await peer.send(first)

    hostile(
        tmp_path, caplog, strike, lambda at: session_closed(at.peer_id, "frame 1 does not open")
    )


def test_a_reordered_pair_of_frames_closes_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        await authenticated(peer, pair, attacker)
        first, second = peer.seal(ping(1)), peer.seal(ping(2))
        await peer.send(second)
        await peer.send(first)

    hostile(
        tmp_path, caplog, strike, lambda at: session_closed(at.peer_id, "frame 0 does not open")
    )


@pytest.mark.parametrize(
    ("keep", "reason"),
    [
        pytest.param(-1, "frame 0 does not open", id="last-byte-cut"),
        pytest.param(frames.MAC_BYTES - 1, "shorter than its MAC", id="shorter-than-mac"),
    ],
)
def test_a_truncated_frame_closes_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, keep: int, reason: str
) -> None:
    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        await authenticated(peer, pair, attacker)
        await peer.send(peer.seal(ping(1))[:keep])

    hostile(tmp_path, caplog, strike, lambda at: session_closed(at.peer_id, reason))


def test_a_tampered_frame_closes_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        await authenticated(peer, pair, attacker)
        await peer.send(peer.seal(ping(1)))
        frame = bytearray(peer.seal(ping(2)))
        frame[frames.MAC_BYTES + 3] ^= 0x01  # one bit of the ciphertext
        await peer.send(bytes(frame))

    hostile(
        tmp_path, caplog, strike, lambda at: session_closed(at.peer_id, "frame 1 does not open")
    )


def test_updates_before_a_frame_that_does_not_open_are_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Authentic frames before the bad one are applied (they come in one batch)."""
    _, updates = remote_items(3)

    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        await authenticated(peer, pair, attacker)
        for key, update in updates:
            await peer.send(peer.seal(sp.encode(sp.Kind.UPDATE, key.encode(), update)))
        frame = bytearray(peer.seal(ping(1)))
        frame[frames.MAC_BYTES + 3] ^= 0x01
        await peer.send(bytes(frame))

    def after(pair: Pair, _attacker: Identity) -> None:
        for key, update in updates:
            assert pair.a.store.load(key) == update
            assert (pair.roots[0] / f"{key}.md").is_file()

    hostile(
        tmp_path,
        caplog,
        strike,
        lambda at: session_closed(at.peer_id, "frame 3 does not open"),
        after=after,
    )


# -- 9-12: messages the session or the protocol refuses -----------------------------------------

OVERSIZED = bytes(peering.MAX_MESSAGE_BYTES + 1)


@pytest.mark.parametrize(
    "phase",
    [
        pytest.param("handshake", id="instead-of-msg1"),
        pytest.param(
            "session",
            id="after-handshake",
        ),
    ],
)
@pytest.mark.parametrize("compress", [0, 15], ids=["plain", "deflate-bomb"])
def test_an_oversized_ws_message_closes_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, phase: str, compress: int
) -> None:
    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        if phase == "session":
            await authenticated(peer, pair, attacker)
        with contextlib.suppress(ConnectionError):  # the node may hang up mid-message
            await peer.send(OVERSIZED)

    def expect(attacker: Identity) -> str:
        if phase == "handshake":
            return handshake_refused(r"connection ended during handshake \(ERROR\)")
        return session_closed(attacker.peer_id, "")

    hostile(
        tmp_path,
        caplog,
        strike,
        expect,
        # 1009, or 1006 when the node hangs up while the message is still arriving
        close_code={aiohttp.WSCloseCode.MESSAGE_TOO_BIG, aiohttp.WSCloseCode.ABNORMAL_CLOSURE},
        compress=compress,
    )


def test_an_unknown_protocol_message_type_closes_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        await authenticated(peer, pair, attacker)
        await peer.send(peer.seal(bytes([99]) + b"\x00\x00\x00\x01x"))

    hostile(
        tmp_path, caplog, strike, lambda at: session_closed(at.peer_id, "unknown message type 99")
    )


@pytest.mark.parametrize("key", ["evil-new-item", TASK_ID], ids=["new-key", "existing-item"])
def test_a_sync2_update_that_does_not_decode_is_not_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, key: str
) -> None:
    before: dict[str, bytes | None] = {}

    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        await authenticated(peer, pair, attacker)
        before["store"] = pair.a.store.load(key)
        before["repo"] = pair.a.repo.encoded(key)
        before["file"] = (pair.roots[0] / TASK).read_bytes()
        garbage = b"\xff" * 32
        await peer.send(peer.seal(sp.encode(sp.Kind.SYNC2, key.encode(), garbage)))

    def after(pair: Pair, _attacker: Identity) -> None:
        assert pair.a.store.load(key) == before["store"]
        assert pair.a.repo.encoded(key) == before["repo"]
        assert (pair.roots[0] / TASK).read_bytes() == before["file"]
        assert pair.b.repo.encoded(key) == before["repo"]  # nothing was passed on
        if before["store"] is None:
            assert key not in pair.a.repo
            assert not list(pair.roots[0].glob(f"{key}*"))

    hostile(
        tmp_path,
        caplog,
        strike,
        lambda at: session_closed(at.peer_id, "Cannot decode update"),
        after=after,
    )


@pytest.mark.parametrize(
    "phase",
    [
        pytest.param("handshake", id="instead-of-msg1"),
        pytest.param(
            "session",
            id="after-handshake",
        ),
    ],
)
def test_a_text_ws_message_closes_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, phase: str
) -> None:
    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        if phase == "session":
            await authenticated(peer, pair, attacker)
        await peer.send_text('{"hello": "worksync"}')

    def expect(attacker: Identity) -> str:
        if phase == "handshake":
            return handshake_refused(r"connection ended during handshake \(TEXT\)")
        return session_closed(attacker.peer_id, "")

    hostile(tmp_path, caplog, strike, expect)


# -- 13: a peer that stalls the handshake ---------------------------------------------------------


def test_a_silent_peer_is_dropped_at_the_handshake_timeout_with_a_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peering, "HANDSHAKE_TIMEOUT_S", 1.0)  # ample on loopback; keeps it quick

    async def strike(_peer: RawPeer, _pair: Pair, _attacker: Identity) -> None:
        pass  # connect, then say nothing

    hostile(tmp_path, caplog, strike, lambda _: handshake_refused(r"\S"))


def test_a_peer_stuck_in_the_handshake_does_not_hold_up_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peering, "HANDSHAKE_TIMEOUT_S", 3.0)  # shorter, so the xfail is cheap

    async def scenario() -> None:
        root = init(tmp_path / "a").workspace.root
        node_stack = contextlib.AsyncExitStack()
        async with node_stack:
            a = await node_stack.enter_async_context(
                running(root, net=NetOptions(True, LOOPBACK, 0))
            )
            async with RawPeer.connect(port_of(a)) as peer:
                initiator = handshake.Initiator(
                    stranger(), os.urandom(32), os.urandom, lambda _p: True
                )
                await peer.send(initiator.start())
                await peer.recv_bytes()  # msg2: A now waits for a msg3 that never comes
                closed = asyncio.ensure_future(peer.closed_by_peer(timeout=30))
                started = time.monotonic()
                await node_stack.aclose()
                took = time.monotonic() - started
                await closed
        assert took < 1.5, f"stopping the node took {took:.1f} s"

    asyncio.run(scenario())


# -- a man in the middle ---------------------------------------------------------------------------


def flip_last_bit(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x80])


def mitm(action: str, at: int) -> Callable[[int, Direction, int, bytes], list[bytes]]:
    """Tamper with message ``at`` dialler->node on the first connection only."""
    held: list[bytes] = []

    def hold(data: bytes) -> list[bytes]:
        held.append(data)
        return []

    actions: dict[str, Callable[[bytes], list[bytes]]] = {
        "drop": lambda _data: [],
        "duplicate": lambda data: [data, data],
        "reorder": hold,
        "alter": lambda data: [flip_last_bit(data)],
    }

    def tamper(connection: int, direction: Direction, index: int, data: bytes) -> list[bytes]:
        if connection != 1 or direction != "to_server":
            return forward(connection, direction, index, data)
        if index == at:
            return actions[action](data)
        if index == at + 1 and held:
            return [data, *held]  # the held message now arrives after its successor
        return [data]

    return tamper


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ("drop", "frame 0 does not open"),
        ("duplicate", "frame 1 does not open"),
        ("reorder", "frame 0 does not open"),
        ("alter", "frame 0 does not open"),
    ],
    ids=["drop", "duplicate", "reorder", "alter"],
)
def test_a_man_in_the_middle_is_detected_and_the_peer_reconnects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, action: str, reason: str
) -> None:
    """C dials A through a proxy that tampers with C's first frame (message 2, after msg1, msg3)."""
    caplog.set_level(logging.WARNING, logger=PEERING_LOG)

    async def scenario() -> None:
        async with honest_pair(tmp_path) as pair:
            c_root = init(tmp_path / "peer-c", secret=pair.secret).workspace.root
            async with WsProxy.running(pair.a_port, mitm(action, 2)) as proxy:
                net = NetOptions(True, LOOPBACK, 0, (f"{LOOPBACK}:{proxy.port}",))
                async with running(c_root, net=net) as c:
                    await logged(caplog, session_closed(c.peer_id, reason))
                    await wait_until(lambda: proxy.ended >= 1, timeout=WAIT_S, what="closed")
                    await wait_until(
                        lambda: proxy.connections >= 2 and c.peer_id in peering_of(pair.a).links,
                        timeout=WAIT_S,
                        what="C reconnected",
                    )
                    await wait_until(
                        same_files(pair.roots[0], c_root), timeout=WAIT_S, what="C synced"
                    )
                    await still_serves(pair, f"tag-{action}")

    asyncio.run(scenario())


# -- what an eavesdropper sees --------------------------------------------------------------------


def secrets_of_the_workspace(
    roots: list[Path], nodes: list[LocalNode], extra: list[str]
) -> list[bytes]:
    """Everything that must never cross the wire in the clear."""
    needles: set[bytes] = set()
    for path in CORPUS.glob("*.md"):
        text = path.read_text()
        needles |= {path.name.encode(), path.stem.encode()}
        needles |= {m.encode() for m in re.findall(r"^id: (\S+)$", text, re.MULTILINE)}
        needles |= {line.strip().encode() for line in text.splitlines() if len(line.strip()) >= 12}
        needles |= {word.encode() for word in text.split() if len(word) >= 8}
    needles |= {
        b"Compare file watching backends",
        b"inotify",
        b"session-125",
        b"task-fsnotify-research",
    }
    for node, root in zip(nodes, roots, strict=True):
        identity = node.workspace.load_identity()
        needles |= {node.peer_id.encode(), identity.verify_key, str(root).encode()}
        needles.add(node.workspace.load_secret())
    needles |= {e.encode() for e in extra}
    return sorted(needles)


def test_the_wire_carries_no_content_and_no_identity(tmp_path: Path) -> None:
    """B dials a recorder (raw TCP tap, then a WS-message proxy) that forwards to A."""

    async def scenario() -> None:
        roots = workspaces(tmp_path, 2)
        edit = "Edited on B: fanotify needs CAP_SYS_ADMIN"
        async with running(roots[0], net=NetOptions(True, LOOPBACK, 0)) as a:
            async with WsProxy.running(port_of(a)) as proxy, TcpTap.running(proxy.port) as tap:
                net = NetOptions(True, LOOPBACK, 0, (f"{LOOPBACK}:{tap.port}",))
                async with running(roots[1], net=net) as b:
                    await wait_until(same_files(*roots), timeout=WAIT_S, what="initial sync")
                    assert (roots[1] / TASK).read_bytes() == (roots[0] / TASK).read_bytes()
                    task = roots[1] / TASK
                    task.write_text(task.read_text() + f"\n{edit}\n")
                    await wait_until(
                        lambda: edit in (roots[0] / TASK).read_text(), timeout=WAIT_S, what="B->A"
                    )
                    await wait_until(same_files(*roots), timeout=WAIT_S, what="identical")
                    needles = secrets_of_the_workspace(roots, [a, b], [edit])

            # The recording is real: one relayed connection, handshake and frames both ways.
            assert proxy.connections == 1
            assert tap.connections == 1
            assert b"GET /worksync" in tap.to_server
            to_a, to_b = proxy.payloads("to_server"), proxy.payloads("to_client")
            assert to_a[0].startswith(handshake.MAGIC)
            assert len(to_a[0]) == handshake.MSG1_BYTES
            assert len(to_b[0]) == handshake.MSG2_BYTES
            assert len(to_a[1]) == handshake.MSG3_BYTES
            corpus_bytes = sum(len(p.read_bytes()) for p in CORPUS.glob("*.md"))
            assert sum(map(len, to_b)) > corpus_bytes  # the content did cross, sealed
            assert len(to_a) > 3  # and B's edit went the other way

            for recorded in (to_a, to_b, [bytes(tap.to_server)], [bytes(tap.to_client)]):
                leaked = contains_any(recorded, needles)
                assert leaked == [], f"found in the recording: {leaked[:5]}"

    asyncio.run(scenario())


# -- dialling each other at once ----------------------------------------------------------------


def test_two_peers_dialling_each_other_keep_exactly_one_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        roots = workspaces(tmp_path, 2)
        async with running(roots[0], net=NetOptions(True, LOOPBACK, 0)) as a:
            net_b = NetOptions(True, LOOPBACK, 0, (f"{LOOPBACK}:{port_of(a)}",))
            async with running(roots[1], net=net_b) as b:
                pa, pb = peering_of(a), peering_of(b)

                def one_link_each() -> bool:
                    return list(pa.links) == [b.peer_id] and list(pb.links) == [a.peer_id]

                await wait_until(one_link_each, timeout=WAIT_S, what="B's link to A")
                attempts: list[tuple[str, str, bool]] = []
                for node, p in ((a, pa), (b, pb)):
                    register = p._register

                    def spy(
                        link: Link,
                        register: Callable[[Link], bool] = register,
                        me: str = node.peer_id,
                    ) -> bool:
                        kept = register(link)
                        attempts.append((me, link.initiator_id, kept))
                        return kept

                    monkeypatch.setattr(p, "_register", spy)

                pa.dial_forever(LOOPBACK, port_of(b))
                preferred = min(a.peer_id, b.peer_id)

                loser = max(a.peer_id, b.peer_id)

                def loser_refused_on_both_sides() -> bool:
                    return all((me, loser, False) in attempts for me in (a.peer_id, b.peer_id))

                # If A has the smaller id its dial replaces B's connection and B's
                # redial is refused; otherwise A's dial is refused. Either way the
                # loser's dial is refused, by both sides alike.
                await wait_until(
                    loser_refused_on_both_sides, timeout=WAIT_S, what="the loser's dial refused"
                )
                kept = [(me, initiator) for me, initiator, k in attempts if k]
                if preferred == a.peer_id:
                    assert sorted(kept) == sorted([(a.peer_id, a.peer_id), (b.peer_id, a.peer_id)])
                else:
                    assert kept == []
                await wait_until(
                    lambda: (
                        one_link_each()
                        and pa.links[b.peer_id].initiator_id == preferred
                        and pb.links[a.peer_id].initiator_id == preferred
                    ),
                    timeout=WAIT_S,
                    what="one link each, dialled by the smaller peer id",
                )
                links = (pa.links[b.peer_id], pb.links[a.peer_id])
                # Only A was seeded: B's copy exists once the first sync wrote it.
                await wait_until(same_files(*roots), timeout=WAIT_S, what="the first sync")
                path = roots[1] / TASK
                path.write_text(path.read_text() + "\nover the one link\n")
                await wait_until(same_files(*roots), timeout=WAIT_S, what="sync over the link")
                assert one_link_each()
                assert (pa.links[b.peer_id], pb.links[a.peer_id]) == links  # no flapping

    asyncio.run(scenario())


def test_a_link_that_ends_is_forgotten_before_its_close_handshake(tmp_path: Path) -> None:
    """A peer that does not answer our close (gone, stalled) holds the close
    handshake for up to 10 s. The link is forgotten at once all the same, so
    the peer, back on a new connection, is not refused as already linked."""
    attacker = stranger()

    async def scenario() -> None:
        async with honest_pair(tmp_path) as pair:
            pa = peering_of(pair.a)
            async with RawPeer.connect(pair.a_port) as silent:
                await authenticated(silent, pair, attacker)
                first = pa.links[attacker.peer_id]
                frame = silent.seal(ping(1))
                await silent.send(frame)
                await silent.send(frame)  # a replay: A ends the link
                # From here on ``silent`` reads nothing, so A's close is never answered.
                await wait_until(
                    lambda: attacker.peer_id not in pa.links,
                    timeout=WAIT_S / 2,  # well inside the 10 s A's close may wait
                    what="the ended link forgotten while its close is unanswered",
                )
                assert first.closed.is_set()
                async with RawPeer.connect(pair.a_port) as back:
                    await back.handshake(attacker, pair.secret)
                    await wait_until(
                        lambda: pa.links.get(attacker.peer_id) not in (None, first),
                        timeout=WAIT_S / 2,
                        what="the peer's new connection linked",
                    )
            await still_serves(pair, f"tag-{os.urandom(4).hex()}")

    asyncio.run(scenario())


def test_a_flooding_peer_is_cut_off_while_others_are_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small limits: one process cannot out-send the real ones before the
    # heartbeat calls the starved link silent.
    monkeypatch.setattr(sp, "FLOOD_BURST", 500)
    monkeypatch.setattr(sp, "FLOOD_PER_SECOND", 100)
    flood = 5_000

    async def strike(peer: RawPeer, pair: Pair, attacker: Identity) -> None:
        await authenticated(peer, pair, attacker)
        pong = sp.encode(sp.Kind.PONG, b"")  # needs no answer: only the flood itself counts
        for _ in range(flood):
            await peer.send(peer.seal(pong))
            if peer.ws.closed:
                break

    hostile(tmp_path, caplog, strike, lambda at: session_closed(at.peer_id, "flooding"))
