"""A tiny in-memory mesh of ItemDoc replicas for merge-rule tests.

Updates are delivered explicitly, in an order the test chooses, so each merge
rule can be checked in every delivery order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc

from worksync_p2p.core import codec
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import ItemDoc, Writer, genesis_update

KEY = "item-1"
PATH = "item-1.md"


def parse(text: str, name: str = PATH) -> codec.ParsedItem:
    return codec.parse(text.encode(), name)


def seed(text: str, key: str = KEY, path: str = PATH) -> bytes:
    return genesis_update(key, parse(text, path), path)


@dataclass
class Replica:
    name: str
    item: ItemDoc
    writer: Writer
    outbox: list[bytes] = field(default_factory=list)

    @classmethod
    def from_state(cls, name: str, state: bytes, client_id: int) -> Replica:
        item = ItemDoc.new(client_id)
        item.apply_remote(state)
        return cls(name, item, Writer(name, Hlc(name), 0))

    def edit(self, text: str, now_ms: int, path: str = PATH) -> bytes:
        self.writer.now_ms = now_ms
        update = self.item.ingest(parse(text, path), path, self.writer)
        assert update is not None, f"{self.name}: edit produced no change"
        return update

    def delete(self, now_ms: int) -> bytes:
        self.writer.now_ms = now_ms
        update = self.item.delete(self.writer)
        assert update is not None
        return update

    def receive(self, update: bytes) -> None:
        repair = self.item.apply_remote(update)
        if repair is not None:
            self.outbox.append(repair)

    def state(self) -> bytes:
        return self.item.doc.get_update()


def start(names: Sequence[str], *seeds: bytes) -> list[Replica]:
    """Replicas that all hold the same seeded state."""
    base: Doc[Any] = Doc()
    for update in seeds:
        base.apply_update(update)
    state = base.get_update()
    return [Replica.from_state(n, state, client_id=100 + i) for i, n in enumerate(names)]


def flood(replicas: Sequence[Replica], first: Iterable[tuple[int, bytes]]) -> None:
    """Deliver (sender, update) pairs to everyone else, then repairs, until quiet."""
    queue = list(first)
    for _ in range(100):
        if not queue:
            return
        sender, update = queue.pop(0)
        for i, replica in enumerate(replicas):
            if i != sender:
                replica.receive(update)
        for i, replica in enumerate(replicas):
            queue.extend((i, u) for u in replica.outbox)
            replica.outbox.clear()
    raise AssertionError("repairs did not settle within 100 rounds")


def all_orders(
    make: Callable[[], tuple[list[Replica], list[tuple[int, bytes]]]],
) -> list[list[Replica]]:
    """Run a scenario once per delivery order of its concurrent updates."""
    results = []
    _, updates = make()
    for order in itertools.permutations(range(len(updates))):
        replicas, fresh = make()
        flood(replicas, [fresh[i] for i in order])
        results.append(replicas)
    return results


def renders(replicas: Sequence[Replica]) -> set[str | None]:
    return {r.item.render() for r in replicas}
