"""Cheap comparison of two replicas' item sets.

Each item has an 8-byte hash of its state vector *and* delete set (a Yjs
deletion does not move the state vector, so the vector alone would call two
different replicas equal). Items fall into 256 buckets by key; a bucket's
hash is the XOR of its items' hashes, so it is updated in O(1) per change,
and the root is the hash of the bucket hashes. Two replicas compare roots
(32 bytes), then buckets (2 KB), then only the keys of differing buckets:
10,000 unchanged items cost a few hundred bytes.
"""

from __future__ import annotations

import functools
import hashlib

import pycrdt

BUCKETS = 256
HASH_BYTES = 8
_ZERO = bytes(HASH_BYTES)


@functools.lru_cache(maxsize=256)
def item_hash(state: bytes) -> bytes:
    """Hash of an encoded document's state vector and delete set.

    Kept for the last states hashed: the digest is refreshed after every
    update a peer sends, and most of them are copies of ones already held, so
    the state asked about is the one hashed last time (often the very object:
    an item keeps its encoded state until it changes, ``ItemDoc.encoded``).
    """
    vector = pycrdt.get_state(state)
    deletes = pycrdt.get_update(state, vector)
    return hashlib.sha256(vector + b"\0" + deletes).digest()[:HASH_BYTES]


def bucket_of(key: str) -> int:
    return hashlib.sha256(key.encode()).digest()[0]


def _entry(key: str, digest: bytes) -> bytes:
    return hashlib.sha256(key.encode() + b"\0" + digest).digest()[:HASH_BYTES]


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a) ^ int.from_bytes(b)).to_bytes(HASH_BYTES)


class DigestIndex:
    def __init__(self) -> None:
        self._items: dict[str, bytes] = {}
        self._buckets = [_ZERO] * BUCKETS
        self._keys: list[set[str]] = [set() for _ in range(BUCKETS)]

    def __len__(self) -> int:
        return len(self._items)

    def set(self, key: str, digest: bytes) -> None:
        old = self._items.get(key)
        if old == digest:
            return  # refreshed after an update it already held: nothing moves
        bucket = bucket_of(key)
        if old is not None:
            self._buckets[bucket] = _xor(self._buckets[bucket], _entry(key, old))
        self._items[key] = digest
        self._keys[bucket].add(key)
        self._buckets[bucket] = _xor(self._buckets[bucket], _entry(key, digest))

    def get(self, key: str) -> bytes | None:
        return self._items.get(key)

    def root(self) -> bytes:
        return hashlib.sha256(b"".join(self._buckets)).digest()

    def buckets(self) -> list[bytes]:
        return list(self._buckets)

    def keys_in(self, bucket: int) -> list[tuple[str, bytes]]:
        return sorted((key, self._items[key]) for key in self._keys[bucket])

    # -- saved between runs --------------------------------------------------

    def to_bytes(self) -> bytes:
        """Every ``(key, digest)``, for :meth:`from_bytes` (u16 key length, key, digest)."""
        parts = []
        for key, digest in sorted(self._items.items()):
            raw = key.encode()
            parts += [len(raw).to_bytes(2, "big"), raw, digest]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, blob: bytes) -> DigestIndex:
        """The index :meth:`to_bytes` wrote; ValueError if ``blob`` is not one."""
        items: dict[str, bytes] = {}
        offset = 0
        while offset < len(blob):
            size = int.from_bytes(blob[offset : offset + 2], "big")
            end = offset + 2 + size + HASH_BYTES
            if offset + 2 > len(blob) or end > len(blob):
                raise ValueError("truncated digest index")
            items[blob[offset + 2 : offset + 2 + size].decode()] = blob[end - HASH_BYTES : end]
            offset = end
        return cls._of(items)

    @classmethod
    def _of(cls, items: dict[str, bytes]) -> DigestIndex:
        """The index of ``items``, as ``set`` for each would build it, in one pass
        (a restart restores 10,000 entries before it dials)."""
        index = cls()
        sums = [0] * BUCKETS
        for key, digest in items.items():
            bucket = bucket_of(key)
            index._keys[bucket].add(key)
            sums[bucket] ^= int.from_bytes(_entry(key, digest))
        index._items = items
        index._buckets = [total.to_bytes(HASH_BYTES) for total in sums]
        return index
