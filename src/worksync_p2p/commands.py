"""What the subcommands do, as functions returning data; cli.py only prints.

``list``, ``show`` and ``new`` work on the files alone, so they work with no
daemon running; ``conflicts`` reads the store, which SQLite lets us read while
a daemon writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worksync_p2p import items, node
from worksync_p2p.adapters import eventsock
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core import codec, values
from worksync_p2p.core.itemdoc import ItemDoc
from worksync_p2p.core.report import conflicts_of
from worksync_p2p.workspace import Config, WorkspaceNotFoundError, open_workspace


@dataclass(frozen=True)
class Listing:
    rows: list[dict[str, str]]
    errors: list[codec.ItemError]

    def as_json(self) -> dict[str, Any]:
        return {
            "items": self.rows,
            "errors": [{"path": e.name, "reason": e.reason} for e in self.errors],
        }


def _existing_folder(root: Path) -> Path:
    if not root.is_dir():
        raise WorkspaceNotFoundError(f"{root}: no such folder (create it with `worksync-p2p init`)")
    return root


def _config(root: Path) -> Config:
    """The workspace's settings if it has been initialised, else the defaults."""
    try:
        return open_workspace(root).load_config()
    except WorkspaceNotFoundError:
        return Config()


def list_items(root: Path) -> Listing:
    found, errors = items.read_all(_existing_folder(root), _config(root).max_item_bytes)
    return Listing([items.summary_row(item) for item in found], errors)


def show_item(root: Path, wanted: str) -> dict[str, Any] | None:
    found, _ = items.read_all(_existing_folder(root), _config(root).max_item_bytes)
    item = items.find(found, wanted)
    if item is None:
        return None
    return {
        "key": item.key,
        "path": item.relpath,
        "fields": values.to_json(item.parsed.fields),
        "body": item.parsed.body,
        "text": codec.render(item.parsed),
        "conflicts": [c for c in list_conflicts(root, missing_ok=True) if c["item"] == item.key],
    }


def new_item(root: Path, item_type: str, summary: str) -> dict[str, str]:
    if not item_type.strip() or not summary.strip():
        raise codec.ItemError(str(root), "TYPE and SUMMARY must not be empty")
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(random.SystemRandom().getrandbits(64))
    path = items.create_item(root, item_type.strip(), summary.strip(), rng, dt.datetime.now(dt.UTC))
    item = items.read_item(root, path)
    return {"id": item.key, "path": item.relpath}


def list_conflicts(root: Path, *, missing_ok: bool = False) -> list[dict[str, Any]]:
    try:
        workspace = open_workspace(root)
    except WorkspaceNotFoundError:
        if missing_ok:
            return []
        raise
    if not workspace.store_path.exists():
        return []
    out: list[dict[str, Any]] = []
    with SqliteStore(workspace.store_path) as store:
        for key, state in store.load_all():
            item = ItemDoc.new(1)
            item.doc.apply_update(state)
            out.extend(conflicts_of(key, item))
    return out


def conflict_rows(found: list[dict[str, Any]]) -> list[dict[str, str]]:
    def show(cell: dict[str, Any]) -> str:
        return json.dumps(cell.get("value"), ensure_ascii=False)[:60]

    return [
        {
            "item": c["item"],
            "path": c["path"] or "",
            "kind": c["kind"],
            "field": c["field"],
            "kept": show(c["kept"]),
            "others": "; ".join(show(o) for o in c["others"]),
        }
        for c in found
    ]


def up(root: Path, *, json_output: bool) -> None:
    def started(info: node.Started) -> None:
        if json_output:
            print(
                json.dumps(
                    {
                        "event": "started",
                        "path": str(info.root),
                        "peer_id": info.peer_id,
                        "items": info.items,
                        "bad_files": info.bad_files,
                        "network": "local-only",
                    }
                ),
                flush=True,
            )
            return
        print(
            f"worksync-p2p: peer {info.peer_id} serving {info.root} "
            f"({info.items} items, {info.bad_files} unreadable)",
            flush=True,
        )
        print(
            "worksync-p2p: local workspace only: syncing with other peers is not implemented yet",
            flush=True,
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(node.run(root, on_started=started))
    sys.stdout.flush()


def print_events(root: Path) -> None:
    """Copy the running daemon's event lines to stdout until it stops or we are interrupted."""
    workspace = open_workspace(root)
    if not eventsock.socket_path(workspace.state_dir).exists():
        raise WorkspaceNotFoundError(f"{root}: no running peer (start one with `worksync-p2p up`)")

    async def copy() -> None:
        async for line in eventsock.follow(workspace.state_dir):
            sys.stdout.write(line.decode())
            sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt, ConnectionError):
        asyncio.run(copy())
