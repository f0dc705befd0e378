"""Settings and shared fixtures of one benchmark run, all inside one temp dir."""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from benchmarks import corpus
from worksync_p2p import items
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import Writer
from worksync_p2p.core.repo import Repo
from worksync_p2p.node import LocalNode, now_ms
from worksync_p2p.workspace import Workspace, init

PEER = "bench-peer"
CLIENT_ID = 1


@dataclass(frozen=True)
class Config:
    items: int = 10_000
    quick: bool = False
    seed: int = 20250112

    def runs(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def new_repo() -> Repo:
    return Repo(Writer(PEER, Hlc(PEER), 0), CLIENT_ID)


def seed_all(repo: Repo, found: list[items.LocalItem]) -> list[tuple[str, bytes]]:
    """Repo.ingest every item; the updates to persist, in order."""
    updates = []
    for item in found:
        update = repo.ingest(item.key, item.relpath, item.parsed, now_ms()).update
        if update is not None:
            updates.append((item.key, update))
    return updates


def open_node(workspace: Workspace) -> LocalNode:
    """A LocalNode as ``up`` builds it (without the daemon lock and the watcher)."""
    return LocalNode(workspace, workspace.load_config(), SqliteStore(workspace.store_path))


def update_rows(store_path: Path) -> int:
    """Rows in the store's update table, read beside the store's own connection."""
    with sqlite3.connect(store_path) as conn:
        (count,) = conn.execute("SELECT count(*) FROM updates").fetchone()
    conn.close()
    return int(count)


class Session:
    """Owns the temp dir; builds the ingested workspace once, on first use."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._tmp = tempfile.TemporaryDirectory(prefix="worksync-bench-")
        self.root = Path(self._tmp.name)
        self._workspace: Workspace | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._tmp.cleanup()

    def fresh_dir(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root))

    def discard(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def write_corpus(self, root: Path) -> int:
        return corpus.write_corpus(root, self.config.items, self.config.seed)

    def workspace(self) -> Workspace:
        """A workspace of ``items`` files, already ingested by a LocalNode."""
        if self._workspace is None:
            self._workspace = self._build_workspace()
        return self._workspace

    def _build_workspace(self) -> Workspace:
        progress(f"building an ingested workspace of {self.config.items} items")
        start = time.perf_counter()
        root = self.root / "workspace"
        self.write_corpus(root)
        workspace = init(root).workspace
        node = open_node(workspace)
        try:
            node.load()
            node.reconcile()
        finally:
            node.store.close()
        progress(f"workspace ready in {time.perf_counter() - start:.1f} s")
        return workspace
