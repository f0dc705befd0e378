"""What the subcommands do, as functions returning data; cli.py only prints.

``list``, ``show`` and ``new`` work on the files alone, so they work with no
daemon running; ``conflicts`` reads the store, which SQLite lets us read while
a daemon writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import random
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycrdt import Doc

from worksync_p2p import gcsettings, items
from worksync_p2p.adapters import eventsock
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core import codec, members, values
from worksync_p2p.core.itemdoc import ItemDoc
from worksync_p2p.core.report import conflicts_of
from worksync_p2p.invite import Invitation, parse_code
from worksync_p2p.workspace import Config, WorkspaceNotFoundError, init, open_workspace

if TYPE_CHECKING:  # imported by `up` alone: the daemon's stack (aiohttp, watchfiles)
    from worksync_p2p import node


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


def _say(json_output: bool, event: dict[str, Any], text: str) -> None:
    print(json.dumps(event) if json_output else f"worksync-p2p: {text}", flush=True)


def up(root: Path, *, json_output: bool, net: node.NetOptions) -> None:
    from worksync_p2p import node  # noqa: PLC0415 - see the TYPE_CHECKING import

    def started(info: node.Started) -> None:
        event = {
            "event": "started",
            "path": str(info.root),
            "peer_id": info.peer_id,
            "items": info.items,
            "bad_files": info.bad_files,
            "address": info.address,
            "peers": list(net.peers),
        }
        _say(
            json_output,
            event,
            f"peer {info.peer_id} serving {info.root} "
            f"({info.items} items, {info.bad_files} unreadable)",
        )
        if not json_output:
            print(_network_line(info, net), flush=True)

    def peer_changed(peer_id: str, what: str) -> None:
        _say(
            json_output, {"event": "peer", "peer": peer_id, "state": what}, f"peer {peer_id} {what}"
        )

    gcsettings.settle()  # the daemon is loaded: a first sync allocates by the million
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(node.run(root, on_started=started, net=net, on_peer=peer_changed))
    sys.stdout.flush()


def _network_line(info: node.Started, net: node.NetOptions) -> str:
    if not net.enabled:
        return "worksync-p2p: local workspace only (--local-only): not syncing with peers"
    dialling = ", ".join(net.peers) or "none"
    finding = "mDNS on" if net.mdns else "mDNS off"
    return f"worksync-p2p: listening on {info.address}; static peers: {dialling}; {finding}"


def net_options(
    root: Path,
    host: str | None,
    port: int | None,
    peers: list[str],
    *,
    local_only: bool = False,
    mdns: bool = True,
    interfaces: list[str] | None = None,
) -> node.NetOptions:
    """Command-line flags over config.toml over the defaults.

    mDNS stays off on a loopback-only listener: nothing on the LAN could reach
    us, and it keeps multicast off every interface when tests run peers locally.
    """
    from worksync_p2p import node  # noqa: PLC0415 - see the TYPE_CHECKING import

    config = _config(root)
    for address in peers:
        _check_address(address)
    listen_host = host if host is not None else config.listen_host
    return node.NetOptions(
        enabled=not local_only,
        host=listen_host,
        port=port if port is not None else config.listen_port,
        peers=tuple(dict.fromkeys([*config.peers, *peers])),
        mdns=mdns and config.mdns and not _is_loopback(listen_host),
        interfaces=tuple(interfaces or ()),
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _check_address(address: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise codec.ItemError(address, "a peer address must look like HOST:PORT")


def invite(root: Path) -> dict[str, Any]:
    workspace = open_workspace(root)
    config = workspace.load_config()
    hints = (
        [f"{ip}:{config.listen_port}" for ip in _local_addresses()] if config.listen_port else []
    )
    code = Invitation(workspace.load_secret(), tuple(hints)).code()
    return {"code": code, "addresses": hints}


def _local_addresses() -> list[str]:
    """This machine's addresses as the resolver knows them (no traffic is sent)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos if not str(info[4][0]).startswith("127.")})


def join(code: str, root: Path) -> dict[str, Any]:
    invitation = parse_code(code)
    result = init(root, secret=invitation.secret)
    if invitation.addresses:
        _add_peers(result.workspace.config_path, invitation.addresses)
    return {
        "path": str(result.workspace.root),
        "peer_id": result.identity.peer_id,
        "peers": list(invitation.addresses),
    }


def _add_peers(config_path: Path, addresses: tuple[str, ...]) -> None:
    text = config_path.read_text(encoding="utf-8")
    if any(line.strip().startswith("peers") for line in text.splitlines()):
        return  # the user chose peers already; do not second-guess them
    listed = ", ".join(json.dumps(a) for a in addresses)
    config_path.write_text(text + f"\n# From the invitation.\npeers = [{listed}]\n")


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


PEER_ID_CHARS = set("abcdefghijklmnopqrstuvwxyz234567")


def _daemon_request(root: Path, message: dict[str, Any]) -> dict[str, Any] | None:
    """Ask the running daemon; None when no daemon serves this workspace."""
    workspace = open_workspace(root)
    if not eventsock.control_path(workspace.state_dir).exists():
        return None
    try:
        return asyncio.run(eventsock.request(workspace.state_dir, message))
    except (OSError, ValueError):
        return None  # a socket left by a daemon that died


def peers(root: Path) -> list[dict[str, Any]]:
    reply = _daemon_request(root, {"cmd": "peers"})
    if reply is not None:
        return list(reply.get("peers", []))
    workspace = open_workspace(root)
    with SqliteStore(workspace.store_path) as store:
        raw = store.get_meta("peers")
        known: dict[str, Any] = json.loads(raw) if raw else {}
        revoked = {r.peer_id for r in _stored_revocations(store)}
    return [
        {
            "peer": peer_id,
            "address": known.get(peer_id, {}).get("address", ""),
            "last_seen_ms": known.get(peer_id, {}).get("last_seen_ms", 0),
            "connected": False,
            "revoked": peer_id in revoked,
        }
        for peer_id in sorted(set(known) | revoked)
    ]


def _stored_revocations(store: SqliteStore) -> list[members.Revocation]:
    state = store.load(members.MEMBERS_KEY)
    doc: Doc[Any] = Doc()
    if state is not None:
        doc.apply_update(state)
    return members.revocations(doc)


def revoke(root: Path, peer_id: str) -> dict[str, Any]:
    if len(peer_id) != 16 or not set(peer_id) <= PEER_ID_CHARS:
        raise codec.ItemError(peer_id, "not a peer id (16 characters, as `peers` lists them)")
    reply = _daemon_request(root, {"cmd": "revoke", "peer": peer_id})
    if reply is not None:
        return reply
    workspace = open_workspace(root)
    with SqliteStore(workspace.store_path) as store:
        state = store.load(members.MEMBERS_KEY)
        doc: Doc[Any] = Doc()
        if state is not None:
            doc.apply_update(state)
        me = workspace.load_identity().peer_id
        now = dt.datetime.now(dt.UTC)
        update = members.revoke(doc, peer_id, me, int(now.timestamp() * 1000))
        if update is not None:
            store.append(members.MEMBERS_KEY, update)
    return {"peer": peer_id, "revoked": True, "new": update is not None}
