"""Deterministic, realistic work item files for the benchmarks.

Items look like ``tests/fixtures/corpus``: 8-12 frontmatter fields including a
nested map and a list, then a 1-2 KB markdown body. Item ``i`` of seed ``s``
is always the same text, so a benchmark can regenerate one item on its own.
A few items have no frontmatter (keyed by path), as in real folders.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

TYPES = ("task", "plan", "proposal", "bug", "note")
STATUSES = ("open", "in_progress", "blocked", "review", "done")
TAGS = ("sync", "ui", "daemon", "crdt", "perf", "docs", "net", "store", "cli", "yaml")
PEOPLE = ("Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana")
WORDS = (
    "sync",
    "watcher",
    "store",
    "replica",
    "peer",
    "document",
    "field",
    "merge",
    "conflict",
    "update",
    "folder",
    "markdown",
    "session",
    "agent",
    "daemon",
    "network",
    "latency",
    "batch",
    "index",
    "schema",
    "rename",
    "delete",
    "ingest",
    "render",
    "parse",
    "frontmatter",
    "body",
    "state",
    "clock",
)
UNICODE = ("naïve café", "東京 ✅", "Zürich ü", "résumé — ok", "Ωmega λ")
BASE_TIME = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NO_FRONTMATTER_EVERY = 37


def item_id(seed: int, index: int) -> str:
    kind = TYPES[index % len(TYPES)]
    return f"{kind}-bench-{seed}-{index:06d}"


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
    return " ".join(words).capitalize() + "."


def _stamp(rng: random.Random) -> str:
    moment = BASE_TIME + dt.timedelta(seconds=rng.randint(0, 300 * 86_400))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _tag_list(rng: random.Random) -> str:
    return "[" + ", ".join(rng.sample(TAGS, rng.randint(1, 4))) + "]"


def frontmatter(rng: random.Random, seed: int, index: int) -> str:
    lines = [
        f"id: {item_id(seed, index)}",
        f"type: {TYPES[index % len(TYPES)]}",
        f"summary: {_sentence(rng)[:-1]}, item {index}",
        f"status: {rng.choice(STATUSES)}",
        f"priority: {rng.randint(1, 5)}",
        f"technical_tags: {_tag_list(rng)}",
        f"created_at: {_stamp(rng)}",
        f"updated_at: {_stamp(rng)}",
        "links:",
        f"  parent: {item_id(seed, rng.randrange(index + 1))}",
        "  related:",
        *(f"    - {item_id(seed, rng.randrange(10_000))}" for _ in range(rng.randint(1, 3))),
        "metadata:",
        f"  owner: {rng.choice(PEOPLE)}",
        f"  estimate_hours: {rng.randint(1, 40) / 2}",
        f"  blocked: {str(rng.random() < 0.2).lower()}",
    ]
    if rng.random() < 0.5:
        lines.append(f"assignee: session-{rng.randint(100, 999)}")
    if rng.random() < 0.5:
        lines.append(f'note: "{rng.choice(UNICODE)}: {_sentence(rng)}"')
    return "---\n" + "".join(line + "\n" for line in lines) + "---\n"


def body(rng: random.Random, title: str, target_bytes: int) -> str:
    parts = [f"\n# {title}\n", "\n## Checklist\n\n"]
    parts += [f"- [{rng.choice(' x')}] {_sentence(rng)}\n" for _ in range(rng.randint(3, 6))]
    parts.append(f"\n## Notes\n\nSeen with {rng.choice(UNICODE)}.\n")
    size = sum(len(p.encode()) for p in parts)
    while size < target_bytes:
        paragraph = " ".join(_sentence(rng) for _ in range(rng.randint(2, 4))) + "\n"
        parts.append("\n" + paragraph)
        size += len(paragraph.encode()) + 1
    return "".join(parts)


def item_text(seed: int, index: int, body_bytes: int | None = None) -> str:
    """The file text of item ``index``; ``body_bytes`` fixes the body size."""
    rng = random.Random(f"{seed}:{index}")
    target = body_bytes if body_bytes is not None else rng.randint(1_000, 2_000)
    title = f"Item {index}: {_sentence(rng)[:-1]}"
    if body_bytes is None and index % NO_FRONTMATTER_EVERY == NO_FRONTMATTER_EVERY - 1:
        return body(rng, title, target).lstrip("\n")
    return frontmatter(rng, seed, index) + body(rng, title, target)


def relpath(index: int) -> str:
    return f"{TYPES[index % len(TYPES)]}s/item-{index:06d}.md"


def write_corpus(root: Path, count: int, seed: int) -> int:
    """Write ``count`` items below ``root``; returns the bytes written."""
    total = 0
    for index in range(count):
        path = root / relpath(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = item_text(seed, index).encode()
        path.write_bytes(data)
        total += len(data)
    return total
