"""Per-item costs in µs: codec parse/render and one local edit into a document."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from benchmarks import corpus
from benchmarks.harness import Result, time_calls, time_with_setup
from benchmarks.session import Session, new_repo
from worksync_p2p import items
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core import codec, naming
from worksync_p2p.core.repo import Repo
from worksync_p2p.node import now_ms

TARGET_BYTES = 2_048
ITEM_INDEX = 1  # has frontmatter (see corpus.NO_FRONTMATTER_EVERY)
PATH = "tasks/bench-item.md"


@dataclass(frozen=True)
class Sample:
    """One ~2 KB item and two edits of it: a body line and one field."""

    original: str
    body_edit: str
    field_edit: str

    @property
    def size(self) -> int:
        return len(self.original.encode())


def _text_near(seed: int, target: int) -> str:
    """The benchmark item with its body grown until the file is about ``target`` bytes."""
    body = target // 2
    text = corpus.item_text(seed, ITEM_INDEX, body)
    while len(text.encode()) < target - 100:
        body += 50
        text = corpus.item_text(seed, ITEM_INDEX, body)
    return text


def sample(seed: int) -> Sample:
    text = _text_near(seed, TARGET_BYTES)
    line = next(ln for ln in text.splitlines() if ln.startswith("- ["))
    flipped = line.replace("- [ ]", "- [X]") if "- [ ]" in line else line.replace("- [x]", "- [ ]")
    status = re.search(r"^status: (\S+)$", text, re.MULTILINE)
    assert status is not None
    assert flipped != line
    new_status = "done" if status.group(1) != "done" else "open"
    return Sample(
        original=text,
        body_edit=text.replace(line, flipped, 1),
        field_edit=text.replace(status.group(0), f"status: {new_status}", 1),
    )


def _parse(text: str) -> codec.ParsedItem:
    return codec.parse(text.encode(), PATH)


def codec_case(session: Session) -> list[Result]:
    """Benchmark 1: parse a 2 KB item, then render its head back."""
    item = sample(session.config.seed)
    data = item.original.encode()
    changed = _parse(item.field_edit).fields
    runs = session.config.runs(2_000, 100)
    note = f"{item.size} B item, {len(_parse(item.original).fields or {})} fields"

    def parse_render(fields: dict[str, object] | None) -> None:
        parsed = codec.parse(data, PATH)
        codec.render_head(parsed.head, parsed.fields if fields is None else fields)

    return [
        Result("codec: parse", tuple(time_calls(lambda: codec.parse(data, PATH), runs)), note=note),
        Result(
            "codec: parse + render_head, fields unchanged",
            tuple(time_calls(lambda: parse_render(None), runs)),
        ),
        Result(
            "codec: parse + render_head, 1 field changed",
            tuple(time_calls(lambda: parse_render(changed), runs)),
            note="status changed: one line patched",
        ),
    ]


def _seeded(item: Sample) -> tuple[Repo, str, bytes]:
    """A repo holding the item as seeded from its original file, and that state."""
    repo = new_repo()
    parsed = _parse(item.original)
    key = naming.item_key(parsed.fields, PATH)
    repo.ingest(key, PATH, parsed, now_ms())
    doc = repo.get(key)
    assert doc is not None
    return repo, key, doc.doc.get_update()


def _ingest_times(item: Sample, text: str, runs: int) -> list[float]:
    repo, key, state = _seeded(item)
    parsed = _parse(text)
    changed = text != item.original
    result = repo.ingest(key, PATH, parsed, now_ms())
    assert (result.update is not None) == changed, "benchmark input is not what it claims"
    return time_with_setup(
        lambda: repo.load(key, state),
        lambda _doc: repo.ingest(key, PATH, parsed, now_ms()),
        runs,
    )


def _file_to_store_times(session: Session, item: Sample, runs: int) -> list[float]:
    """Read, parse, ingest and persist one edited file, as LocalNode.on_changes does.

    The file flips between two versions (a checkbox ticked and unticked), so
    every run is a real edit of one long-lived document, as in a session.
    """
    repo, key, state = _seeded(item)
    root = session.fresh_dir("edit-")
    path = root / PATH
    path.parent.mkdir(parents=True)
    versions = [item.body_edit.encode(), item.original.encode()]
    turn = itertools.count()

    def flip() -> None:
        path.write_bytes(versions[next(turn) % 2])

    with SqliteStore(root / "store.sqlite3") as store:
        store.append(key, state)

        def op(_: None) -> None:
            found = items.read_item(root, path)
            update = repo.ingest(key, found.relpath, found.parsed, now_ms()).update
            assert update is not None
            store.append(key, update)

        samples = time_with_setup(flip, op, runs)
    session.discard(root)
    return samples


def local_edit_case(session: Session) -> list[Result]:
    """Benchmark 6: Repo.ingest of one changed file into an existing document."""
    item = sample(session.config.seed)
    runs = session.config.runs(2_000, 100)
    fresh = "into a freshly loaded seeded doc"
    return [
        Result(
            "local edit: Repo.ingest, 1 body line changed",
            tuple(_ingest_times(item, item.body_edit, runs)),
            note=fresh,
        ),
        Result(
            "local edit: Repo.ingest, 1 field changed",
            tuple(_ingest_times(item, item.field_edit, runs)),
            note=fresh,
        ),
        Result(
            "local edit: Repo.ingest, file unchanged",
            tuple(_ingest_times(item, item.original, runs)),
            note="no-op: the per-item cost of startup reconcile",
        ),
        Result(
            "local edit: read+parse+ingest+append, 1 body line",
            tuple(_file_to_store_times(session, item, runs)),
            note="LocalNode path, one commit per edit; doc keeps its history",
        ),
    ]
