"""Child process for the kill -9 test, and the document helpers both sides share.

Run as ``python store_writer.py DB COMPACT_EVERY SEED [DIE_AT_OP]``: it opens the store,
continues the documents of :data:`KEYS` from what the store holds, and then
writes seeded random edits, one write at a time, reporting each on stdout:

    write N KEY:HEX [KEY:HEX ...]   before the write (one append, or one append_many)
    ack N                           after the write returned

The parent kills it with SIGKILL at some point and checks that every acked
write survived and that the one announced but not acked survived whole or not
at all. With DIE_AT_OP the writer sends itself SIGKILL when SQLite has run
that many virtual machine instructions after "ready": a reproducible kill
inside any statement of any transaction, compactions included. The loop is
bounded by :data:`MAX_WRITES` in case the parent goes away.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map, Text

from worksync_p2p.adapters.sqlite_store import SqliteStore

KEYS = ("item-a", "item-b", "item-c")
MAX_WRITES = 5_000


def new_doc(update: bytes | None = None, client_id: int | None = None) -> Doc[Any]:
    """A document with our shape (``body`` Text, ``fields`` Map), after ``update``."""
    doc: Doc[Any] = Doc(client_id=client_id)
    doc["body"] = Text()
    doc["fields"] = Map()
    if update is not None:
        doc.apply_update(update)
    return doc


def content(doc: Doc[Any]) -> tuple[str, dict[str, Any]]:
    """What a user sees of a document."""
    return str(doc.get("body", type=Text)), doc.get("fields", type=Map).to_py()


def state(doc: Doc[Any]) -> dict[int, int]:
    """The decoded state vector, client id -> clock: equal iff both saw the same operations."""
    data = doc.get_state()
    values: list[int] = []
    shift = value = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            values.append(value)
            shift = value = 0
    count, pairs = values[0], values[1:]
    assert len(pairs) == 2 * count
    return dict(zip(pairs[0::2], pairs[1::2], strict=True))


def random_edit(doc: Doc[Any], rng: random.Random) -> bytes:
    """Apply one seeded edit (insert, delete or field set) and return its update.

    ASCII text only: pycrdt indexes Text by UTF-8 byte, so a random index
    could split a character.
    """
    before = doc.get_state()
    body = doc.get("body", type=Text)
    fields = doc.get("fields", type=Map)
    choice = rng.random()
    with doc.transaction():
        if choice < 0.2 and len(body) > 0:
            start = rng.randrange(len(body))
            del body[start : min(len(body), start + rng.randint(1, 40))]
        elif choice < 0.4:
            fields[f"k{rng.randrange(10)}"] = rng.choice(["todo", "doing", "done", "x" * 50])
        else:
            text = "".join(rng.choice("abcdefgh \n") for _ in range(rng.randint(1, 120)))
            body.insert(rng.randint(0, len(body)), text)
    return doc.get_update(before)


def die_at_op(conn: sqlite3.Connection, op: int) -> None:
    """SIGKILL this process once SQLite has run ``op`` more VM instructions."""
    ops = 0

    def tick() -> int:
        nonlocal ops
        ops += 1
        if ops >= op:
            os.kill(os.getpid(), signal.SIGKILL)
        return 0

    conn.set_progress_handler(tick, 1)


def main(argv: list[str]) -> int:
    db, compact_every, seed = Path(argv[1]), int(argv[2]), int(argv[3])
    rng = random.Random(seed)
    client_id = rng.randrange(1, 2**31)
    print("opening", flush=True)
    with SqliteStore(db, compact_every=compact_every) as store:
        docs = {key: new_doc(store.load(key), client_id) for key in KEYS}
        if len(argv) > 4:
            assert store._conn is not None  # a test hook, not an API
            die_at_op(store._conn, int(argv[4]))
        print("ready", flush=True)
        for n in range(MAX_WRITES):
            keys = rng.sample(KEYS, rng.choice([1, 1, 2, 3]))
            batch = [(key, random_edit(docs[key], rng)) for key in keys]
            print("write", n, *(f"{key}:{update.hex()}" for key, update in batch), flush=True)
            if len(batch) == 1:
                store.append(*batch[0])
            else:
                store.append_many(batch)
            print("ack", n, flush=True)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
