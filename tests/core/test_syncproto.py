"""Two replicas' sync sessions joined by an in-memory link (h11-style tests)."""

from __future__ import annotations

import pytest

from tests.core.replicas import parse
from worksync_p2p.core import syncproto as sp
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import Writer
from worksync_p2p.core.repo import Repo


def item_text(n: int, status: str = "todo") -> str:
    return f"---\nid: item-{n}\nstatus: {status}\n---\nbody of item {n}\n"


def make_repo(peer: str, client_id: int, count: int, start: int = 0) -> Repo:
    repo = Repo(Writer(peer, Hlc(peer), 0), client_id, cache_size=64)
    for n in range(start, start + count):
        repo.ingest(f"item-{n}", f"item-{n}.md", parse(item_text(n), f"item-{n}.md"), 1000)
    return repo


def copy_of(source: Repo) -> Repo:
    """A second replica holding exactly what ``source`` holds (a clone that synced)."""
    copy = Repo(Writer("peer-b", Hlc("peer-b"), 0), 2)
    for key in source.item_keys():
        state = source.encoded(key)
        assert state is not None
        copy.load(key, state)
    return copy


class Link:
    """Delivers messages between two sessions until both are quiet; counts bytes."""

    def __init__(self, a: Repo, b: Repo) -> None:
        self.repos = (a, b)
        self.items = (sp.RepoItems(a), sp.RepoItems(b))
        for items in self.items:
            items.refresh_all()
        self.sessions = (sp.PeerSync(self.items[0], 0), sp.PeerSync(self.items[1], 0))
        self.bytes_sent = 0
        self.messages = 0

    def run(self) -> None:
        queues: tuple[list[bytes], list[bytes]] = (
            self.sessions[0].start(),
            self.sessions[1].start(),
        )
        for _ in range(10_000):
            if not queues[0] and not queues[1]:
                return
            for side in (0, 1):
                if queues[side]:
                    self._deliver(side, queues[side].pop(0), queues)
        raise AssertionError("sync did not settle")

    def _deliver(self, side: int, message: bytes, queues: tuple[list[bytes], list[bytes]]) -> None:
        self.bytes_sent += len(message)
        self.messages += 1
        other = 1 - side
        replies, received = self.sessions[other].receive(message, 10)
        queues[other].extend(replies)
        for got in received:
            repo = self.repos[other]
            item = repo.get(got.key)
            if item is None:
                repo.load(got.key, got.update)
            else:
                item.apply_remote(got.update)
            self.items[other].refresh(got.key)


def renders(repo: Repo) -> dict[str, str | None]:
    out = {}
    for key in repo.item_keys():
        item = repo.get(key)
        assert item is not None
        out[key] = item.render()
    return out


def test_equal_replicas_exchange_only_their_roots() -> None:
    a = make_repo("peer-a", 1, 1000)
    b = copy_of(a)
    link = Link(a, b)
    link.run()
    assert link.messages == 2
    assert link.bytes_sent < 100


def test_disjoint_replicas_end_with_the_union() -> None:
    a = make_repo("peer-a", 1, 50)
    b = make_repo("peer-b", 2, 30, start=100)
    link = Link(a, b)
    link.run()
    assert renders(a) == renders(b)
    assert len(list(a.item_keys())) == 80


def test_divergent_edits_of_shared_items_merge_both_ways() -> None:
    a = make_repo("peer-a", 1, 20)
    b = copy_of(a)
    a.ingest("item-3", "item-3.md", parse(item_text(3, "done"), "item-3.md"), 2000)
    b.ingest("item-7", "item-7.md", parse(item_text(7, "review"), "item-7.md"), 2000)
    link = Link(a, b)
    link.run()
    assert renders(a) == renders(b)
    assert "status: done" in (renders(b)["item-3"] or "")
    assert "status: review" in (renders(a)["item-7"] or "")


def test_a_small_difference_among_many_items_costs_little() -> None:
    a = make_repo("peer-a", 1, 2000)
    b = copy_of(a)
    a.ingest("item-5", "item-5.md", parse(item_text(5, "done"), "item-5.md"), 2000)
    link = Link(a, b)
    link.run()
    assert renders(a)["item-5"] == renders(b)["item-5"]
    assert link.bytes_sent < 8_000  # roots, 2 x 2 KB of buckets, one bucket's keys, one item


@pytest.mark.parametrize(
    "message",
    [b"", b"\x63", b"\x04\x00\x00\x00\x05ab", b"\x04\x00\x00", b"\x01", b"\x02\x00\x00\x00\x01x"],
)
def test_bad_messages_are_protocol_errors(message: bytes) -> None:
    session = sp.PeerSync(sp.RepoItems(make_repo("peer-a", 1, 1)), 0)
    with pytest.raises(sp.ProtocolError):
        session.receive(message, 1)


def test_a_silent_peer_is_declared_dead() -> None:
    session = sp.PeerSync(sp.RepoItems(make_repo("peer-a", 1, 1)), 0)
    session.start()
    assert session.deadline_ms() == session.ping_every_ms
    assert sp.decode(session.tick(session.ping_every_ms)[0])[0] is sp.Kind.PING
    with pytest.raises(sp.ProtocolError, match="silent"):
        session.tick(session.dead_after_ms)


def test_a_flood_of_messages_is_cut_off_and_a_normal_rate_is_not() -> None:
    session = sp.PeerSync(sp.RepoItems(make_repo("peer-a", 1, 1)), 0)
    session.limit = sp.RateLimit(burst=100, per_second=1000)
    ping = sp.encode(sp.Kind.PING, b"x")
    for i in range(1000):  # one message per millisecond: within the rate
        session.receive(ping, i)
    for _ in range(90):  # within what is left of the burst
        session.receive(ping, 1000)
    with pytest.raises(sp.ProtocolError, match="flooding"):
        drain(session, ping, 200)


def drain(session: sp.PeerSync, message: bytes, count: int) -> None:
    """Send ``count`` messages at one instant."""
    for _ in range(count):
        session.receive(message, 1000)
