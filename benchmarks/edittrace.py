"""Where an edit's time goes between two peers: a per-stage trace, trees side by side.

    python -m benchmarks.edittrace [--items 500] [--edits 100] [--tree NAME=PYTHON ...]

Each tree (``NAME=PYTHON``: a Python whose ``worksync_p2p`` is that tree's;
by default only this one, as ``this``) gets its own pair: A seeded with
``--items`` corpus files, B brought level by a first sync, then both run
under :mod:`benchmarks.stagetrace`. The edits alternate between the pairs,
one save each in turn, so every tree sees the same moment of a shared
machine. Printed per tree: the median time from the save on A to each stage
(ms), and to the events that the benchmark row times.

Stages are found in the notes by label, each the first one after the stage
it hangs on (see ``STAGES``), so stages that overlap are found too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchmarks import bridge, corpus, peerproc
from benchmarks.peerruns import EVENT_TIMEOUT_S, ITEM_INDEX, START_TIMEOUT_S, count_items
from worksync_p2p import commands
from worksync_p2p.workspace import init

SYNC_TIMEOUT_S = 300.0
POLL_S = 0.05
SETTLE_S = 0.5
WARMUP_EDITS = 3

# (stage, peer, label of the note, stage it hangs on); "save" is the save itself.
STAGES: tuple[tuple[str, str, str, str], ...] = (
    ("A doorbell rang", "a", "ring<", "save"),
    ("A watchfiles batch", "a", "collected>", "save"),
    ("A paths handed over", "a", "handed>", "save"),
    ("A second look starts", "a", "feed>", "A watchfiles batch"),
    ("A second look ends", "a", "feed<", "A second look starts"),
    ("A loop takes paths", "a", "loop>", "save"),
    ("A file read", "a", "read<", "A loop takes paths"),
    ("A ingested", "a", "ingest<", "A loop takes paths"),
    ("A event published", "a", "emit>", "A loop takes paths"),
    ("A bases saved", "a", "bases<", "A event published"),
    ("A feed returns", "a", "feed<", "A loop takes paths"),
    ("A sync starts", "a", "sync>", "A event published"),
    ("A fsync starts", "a", "fsync-wal>", "A loop takes paths"),
    ("A fsync ends", "a", "fsync-wal<", "A fsync starts"),
    ("A broadcast", "a", "broadcast>", "A loop takes paths"),
    ("A frame sealed", "a", "seal<", "A broadcast"),
    ("B frame opened", "b", "open>", "A frame sealed"),
    ("B receive starts", "b", "receive>", "B frame opened"),
    ("B applied and stored", "b", "apply<", "B receive starts"),
    ("B flush started", "b", "ahead<", "B receive starts"),
    ("B render starts", "b", "render>", "B receive starts"),
    ("B rendered", "b", "render<", "B receive starts"),
    ("B sync starts", "b", "sync>", "B rendered"),
    ("B fsync starts", "b", "fsync-wal>", "B receive starts"),
    ("B fsync ends", "b", "fsync-wal<", "B fsync starts"),
    ("B temp file fsynced", "b", "temp<", "B receive starts"),
    ("B swap starts", "b", "swap>", "B receive starts"),
    ("B swap ends", "b", "swap<", "B receive starts"),
    ("B file written", "b", "write<", "B receive starts"),
    ("B event published", "b", "emit>", "B receive starts"),
    ("B receive ends", "b", "receive<", "B receive starts"),
)


@dataclass
class Tree:
    name: str
    python: str
    root: Path
    edits: list[tuple[float, float, float]] = field(default_factory=list)
    """(save, A's event, B's event), perf_counter seconds."""
    cpu_s: tuple[float, float] = (0.0, 0.0)
    """CPU seconds of A and B over all the edits (warm-up included)."""

    @property
    def daemon(self) -> list[str]:
        return [self.python, "-m", "worksync_p2p"]

    def traced(self, peer: str) -> list[str]:
        return [self.python, "-m", "benchmarks.stagetrace", str(self.root / f"trace-{peer}.json")]


def _wait_level(a: Path, b: Path, items: int, peer: peerproc.Peer) -> None:
    deadline = time.perf_counter() + SYNC_TIMEOUT_S
    while count_items(b) < items:
        if not peer.alive() or time.perf_counter() > deadline:
            raise RuntimeError(f"first sync into {b} did not finish")
        time.sleep(POLL_S)
    edited = corpus.relpath(ITEM_INDEX)
    if (a / edited).read_bytes() != (b / edited).read_bytes():
        raise RuntimeError("B's edited item differs from A's after the first sync")


def prepare(tree: Tree, items: int, seed: int) -> None:
    """A seeded and B level with it, both stopped."""
    a, b = tree.root / "a", tree.root / "b"
    corpus.write_corpus(a, items, seed)
    init(a)
    code = str(commands.invite(a)["code"])
    commands.join(code, b)
    with peerproc.running(a, tree.root, command=tree.daemon) as up_a:
        address = up_a.address(START_TIMEOUT_S)
        with peerproc.running(b, tree.root, [address], command=tree.daemon) as up_b:
            _wait_level(a, b, items, up_b)


@dataclass
class Live:
    tree: Tree
    editor: bridge.Editor
    on_a: peerproc.Feed
    on_b: peerproc.Feed
    origin: str
    pids: tuple[int, int]

    def cpu_s(self) -> tuple[float, float]:
        """User + system CPU of A and B so far (all their threads)."""
        a, b = (psutil.Process(pid).cpu_times() for pid in self.pids)
        return a.user + a.system, b.user + b.system


@contextmanager
def live(tree: Tree) -> Iterator[Live]:
    a, b = tree.root / "a", tree.root / "b"
    with ExitStack() as stack:
        up_a = stack.enter_context(peerproc.running(a, tree.root, command=tree.traced("a")))
        started = up_a.started(START_TIMEOUT_S).event
        address = str(started["address"])
        up_b = stack.enter_context(
            peerproc.running(b, tree.root, [address], command=tree.traced("b"))
        )
        up_b.joined(START_TIMEOUT_S)
        up_b.started(START_TIMEOUT_S)
        on_a = stack.enter_context(peerproc.tapped(a, EVENT_TIMEOUT_S))
        on_b = stack.enter_context(peerproc.tapped(b, EVENT_TIMEOUT_S))
        editor = bridge.Editor.open(a, ITEM_INDEX)
        yield Live(tree, editor, on_a, on_b, str(started["peer_id"]), (up_a.pid, up_b.pid))


def _modified(key: str, origin: str) -> peerproc.Wanted:
    return lambda e: (
        e.get("event") == "modified" and e.get("id") == key and e.get("origin") == origin
    )


def edit_once(pair: Live, keep: bool) -> None:
    data, _ = pair.editor.next()
    start = bridge.save_atomic(pair.editor.path, data)
    deadline = start + EVENT_TIMEOUT_S
    local, _ = pair.on_a.take(_modified(pair.editor.key, "file"), deadline)
    remote, _ = pair.on_b.take(_modified(pair.editor.key, pair.origin), deadline)
    if keep:
        pair.tree.edits.append((start, local.at, remote.at))
    time.sleep(bridge.GAP_S)


# -- reading the notes --------------------------------------------------------------


def _load(path: Path) -> list[tuple[str, float]]:
    """The notes of one daemon, in order of time (its threads' notes interleaved)."""
    notes = [(label, ns / 1e9) for label, ns in json.loads(path.read_text())]
    return sorted(notes, key=lambda note: note[1])


def _first(notes: list[tuple[str, float]], label: str, after: float, until: float) -> float | None:
    for name, at in notes:
        if name == label and after <= at <= until:
            return at
    return None


SPANS: tuple[tuple[str, str, str], ...] = (
    ("A: save -> paths taken", "save", "A loop takes paths"),
    ("A: paths taken -> ingested", "A loop takes paths", "A ingested"),
    ("A: ingested -> frame sealed", "A ingested", "A frame sealed"),
    ("wire: A sealed -> B opened", "A frame sealed", "B frame opened"),
    ("B: receive -> rendered", "B receive starts", "B rendered"),
    ("B: rendered -> file written", "B rendered", "B file written"),
    ("B: receive -> event published", "B receive starts", "B event published"),
    ("A's event -> B's event (taps)", "A event (tap)", "B event (tap)"),
    ("save -> B's event (tap)", "save", "B event (tap)"),
)
"""Per-edit durations between two stages, for a spread as well as a median."""


def milestones(tree: Tree) -> list[dict[str, float]]:
    """Per edit, when each stage found came (perf_counter seconds)."""
    notes = {peer: _load(tree.root / f"trace-{peer}.json") for peer in "ab"}
    edits = []
    for start, local, remote in tree.edits:
        at: dict[str, float] = {"save": start, "A event (tap)": local, "B event (tap)": remote}
        for name, peer, label, anchor in STAGES:
            if anchor in at:
                hit = _first(notes[peer], label, at[anchor], remote + 0.002)
                if hit is not None:
                    at[name] = hit
        edits.append(at)
    return edits


def _ms(samples: list[float], spread: bool = False) -> str:
    if not samples:
        return "-"
    middle = f"{statistics.median(samples) * 1000:.2f}"
    if not spread or len(samples) < 4:
        return middle
    low, _, high = statistics.quantiles(samples, n=4)
    return f"{middle} ({low * 1000:.2f}-{high * 1000:.2f})"


def report(trees: list[Tree]) -> str:
    found = {tree.name: milestones(tree) for tree in trees}
    names = [name for name, *_ in STAGES] + ["A event (tap)", "B event (tap)"]
    head = "| stage (median ms after the save on A) | " + " | ".join(t.name for t in trees) + " |"
    lines = [head, "|---" + "|---:" * len(trees) + "|"]
    for name in names:
        cells = [_ms([e[name] - e["save"] for e in found[t.name] if name in e]) for t in trees]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| span (median ms, quartiles) | " + " | ".join(t.name for t in trees) + " |"]
    lines.append("|---" + "|---:" * len(trees) + "|")
    for span, first, last in SPANS:
        cells = []
        for tree in trees:
            edits = [e for e in found[tree.name] if first in e and last in e]
            cells.append(_ms([e[last] - e[first] for e in edits], spread=True))
        lines.append(f"| {span} | " + " | ".join(cells) + " |")
    lines += ["", "| CPU per edit (ms, all threads) | " + " | ".join(t.name for t in trees) + " |"]
    lines.append("|---" + "|---:" * len(trees) + "|")
    for index, peer in enumerate("AB"):
        cells = [f"{t.cpu_s[index] * 1000 / max(1, len(t.edits)):.2f}" for t in trees]
        lines.append(f"| {peer} | " + " | ".join(cells) + " |")
    counts = ", ".join(f"{t.name}: {len(t.edits)} edits" for t in trees)
    return "\n".join([*lines, "", counts])


def _trees(specs: Sequence[str], root: Path) -> list[Tree]:
    pairs = [spec.partition("=") for spec in specs] or [("this", "=", sys.executable)]
    return [Tree(name, python, root / name) for name, _, python in pairs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.edittrace", description=__doc__)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20250112)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PYTHON")
    parser.add_argument("--keep", type=Path, help="a folder to keep the pairs and notes in")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="worksync-edittrace-") as temp:
        root = args.keep or Path(temp)
        trees = _trees(args.tree, root)
        for tree in trees:
            tree.root.mkdir(parents=True)
            print(f"[trace] preparing {tree.name}", file=sys.stderr, flush=True)
            prepare(tree, args.items, args.seed)
        with ExitStack() as stack:
            pairs = [stack.enter_context(live(tree)) for tree in trees]
            time.sleep(SETTLE_S)
            before = [pair.cpu_s() for pair in pairs]
            for run in range(WARMUP_EDITS + args.edits):
                turn = pairs if run % 2 == 0 else pairs[::-1]
                for pair in turn:
                    edit_once(pair, keep=run >= WARMUP_EDITS)
            for pair, (a, b) in zip(pairs, before, strict=True):
                after_a, after_b = pair.cpu_s()
                pair.tree.cpu_s = (after_a - a, after_b - b)
        print(report(trees))
    return 0


if __name__ == "__main__":
    sys.exit(main())
