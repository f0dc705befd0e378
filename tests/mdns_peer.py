"""A worksync-p2p process for the mDNS tests; run it inside a network namespace.

``mdns_peer.py node ROOT IP``
    Run a node on ROOT that listens on IP and finds peers by mDNS on IP's
    interface only. Prints one JSON line per event: ``started`` then ``peer``
    lines, each with ``t`` (``time.monotonic()``, shared by all namespaces).
    Stops on SIGTERM.

``mdns_peer.py discover IP``
    The TXT filtering check: registers a peer of our workspace, a peer of
    another workspace and malformed services, then prints one JSON line with
    what our Discovery reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from pathlib import Path

from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from worksync_p2p import node
from worksync_p2p.adapters.mdns import SERVICE_TYPE, Discovery

FOUND_WAIT_S = 10.0
GRACE_S = 1.0


def emit(event: dict[str, object]) -> None:
    print(json.dumps({**event, "t": time.monotonic()}), flush=True)


def run_node(root: Path, ip: str) -> None:
    def started(info: node.Started) -> None:
        emit({"event": "started", "peer": info.peer_id, "address": info.address})

    def on_peer(peer_id: str, state: str) -> None:
        emit({"event": "peer", "peer": peer_id, "state": state})

    net = node.NetOptions(True, ip, 0, (), mdns=True, interfaces=(ip,))
    asyncio.run(node.run(root, net=net, on_started=started, on_peer=on_peer))


async def discover(ip: str) -> dict[str, object]:
    found: list[tuple[str, str, int]] = []
    got_peer = asyncio.Event()

    def on_found(peer_id: str, host: str, port: int) -> None:
        found.append((peer_id, host, port))
        got_peer.set()

    def ignore(_peer: str, _host: str, _port: int) -> None:
        pass

    ours = Discovery(on_found)
    await ours.start("listener", 1111, "tag-ours", [ip])
    others = [Discovery(ignore), Discovery(ignore)]
    raw = AsyncZeroconf(interfaces=[ip])
    malformed: dict[str, dict[str, str] | dict[bytes, bytes]] = {
        "nows": {"v": "1", "id": "nows"},
        "badversion": {"v": "2", "id": "badversion", "ws": "tag-ours"},
        "mismatch": {"v": "1", "id": "someone-else", "ws": "tag-ours"},
        "badbytes": {b"v": b"1", b"id": b"badbytes", b"ws": b"\xff\xfe"},
    }
    try:
        # The ignored ones first, so they are seen before the peer we wait for.
        await others[0].start("stranger", 2222, "tag-theirs", [ip])
        for name, txt in malformed.items():
            info = AsyncServiceInfo(
                SERVICE_TYPE,
                f"{name}.{SERVICE_TYPE}",
                port=3333,
                properties=txt,
                server=f"{name}.local.",
                parsed_addresses=[ip],
            )
            await raw.async_register_service(info, cooperating_responders=True)
        await others[1].start("friend", 4444, "tag-ours", [ip])
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(got_peer.wait(), FOUND_WAIT_S)
        elapsed = time.monotonic() - started
        await asyncio.sleep(GRACE_S)  # room for anything wrongly reported
    finally:
        stop_started = time.monotonic()
        await ours.stop()
        stop_s = time.monotonic() - stop_started
        for other in others:
            await other.stop()
        await raw.async_close()
    return {"found": found, "first_s": elapsed, "stop_s": stop_s}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("worksync_p2p.adapters.mdns").setLevel(logging.DEBUG)
    match argv:
        case ["node", root, ip]:
            run_node(Path(root), ip)
        case ["discover", ip]:
            print(json.dumps(asyncio.run(discover(ip))), flush=True)
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
