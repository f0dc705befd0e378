"""Start-up of `up`: what it may skip for speed, and what it must still take in.

Start-up talks to its static peers before it starts the watcher (whose start
holds the event loop tens of milliseconds over 10,000 files), so the watcher
catches up on saves made since reconcile looked; these tests pin that nothing
is lost on the way, in one process and across real processes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

from tests.nodehelpers import copy_corpus, render, wait_until
from tests.test_up_processes import CORPUS, Peer, append_line, identical, wait_for
from worksync_p2p import commands
from worksync_p2p.node import NetOptions, running
from worksync_p2p.workspace import init

LOOPBACK = "127.0.0.1"
TASK = "task-fsnotify-research.md"
TASK_ID = "task-fsnotify-research"
PLAN = "plan-multi-session.md"
CATCH_UP_WAIT_S = 3.0


def test_a_save_between_reconcile_and_the_watcher_start_is_taken_in(tmp_path: Path) -> None:
    """The watcher sees only saves after its watches are set; catch_up finds the rest."""

    async def scenario() -> None:
        root = tmp_path / "ws"
        path = copy_corpus(root, TASK)[TASK]
        async with running(root):
            pass  # the first run ingests the file
        edited = path.read_text().replace("# ", "# Saved during start-up: ", 1)
        assert edited != path.read_text()
        accepted = asyncio.Event()

        async def silent_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Dialled after reconcile, before the watcher starts (start-up waits
            # for this peer's first round, which never comes): the save lands
            # in between, and no later save will make the watcher report it.
            path.write_text(edited)
            accepted.set()
            await reader.read()  # until start-up's peering hangs up
            writer.close()

        server = await asyncio.start_server(silent_peer, LOOPBACK, 0)
        port = server.sockets[0].getsockname()[1]
        net = NetOptions(host=LOOPBACK, port=0, peers=(f"{LOOPBACK}:{port}",))
        try:
            async with running(root, net=net) as node:
                assert accepted.is_set()
                await wait_until(
                    lambda: render(node, TASK_ID) == edited,
                    CATCH_UP_WAIT_S,
                    "the save made before the watcher started",
                )
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


def test_offline_edits_and_a_peer_edit_during_the_restart_all_land(tmp_path: Path) -> None:
    """Real processes: B's edits made while stopped reach A, and A's edits (made while
    B was stopped, and while B starts) reach B; both folders end identical."""
    a_root, b_root = tmp_path / "a", tmp_path / "b"
    init(a_root)
    commands.join(str(commands.invite(a_root)["code"]), b_root)
    for name in (TASK, PLAN):
        (a_root / name).write_bytes((CORPUS / name).read_bytes())
    a, b = Peer(a_root), Peer(b_root)
    try:
        a.start([])
        b.start([a.address])
        wait_for(identical(a, b), "the first sync")
        b.stop()
        append_line(b_root, TASK, "offline on b\n")
        (b_root / "made-while-stopped.md").write_text("---\nid: offline-b\n---\nfrom b\n")
        append_line(a_root, PLAN, "on a while b was stopped\n")
        restart = threading.Thread(target=b.start, args=([a.address],))
        restart.start()
        append_line(a_root, TASK, "on a while b starts\n")  # B is still importing
        restart.join(timeout=30)
        assert b.process is not None, "B did not start"
        wait_for(identical(a, b), "everything merged after the restart")
        for root in (a_root, b_root):
            task = (root / TASK).read_text()
            assert "offline on b\n" in task
            assert "on a while b starts\n" in task
            assert "on a while b was stopped\n" in (root / PLAN).read_text()
            assert (root / "made-while-stopped.md").read_text().endswith("from b\n")
    finally:
        a.stop()
        b.stop()


CA_PROBE = """
import json, os, ssl
before = os.environ.get("SSL_CERT_FILE")
import worksync_p2p.node
from aiohttp import connector
print(json.dumps({
    "aiohttp": connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"],
    "fresh": ssl.create_default_context().cert_store_stats()["x509_ca"],
    "env_kept": os.environ.get("SSL_CERT_FILE") == before,
}))
"""


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def test_aiohttp_is_imported_without_the_ca_bundle_and_the_environment_is_restored() -> None:
    """Loading the CA bundle is 40 % of importing aiohttp; peers never use TLS."""
    probe = json.loads(_run(CA_PROBE))
    assert probe["env_kept"]
    assert probe["aiohttp"] == 0
    # Any other TLS context made after the import still trusts the system's CAs.
    assert probe["fresh"] == int(_run(FRESH_PROBE))


FRESH_PROBE = "import ssl; print(ssl.create_default_context().cert_store_stats()['x509_ca'])"


DAEMON_ONLY = ("aiohttp", "watchfiles", "zeroconf", "worksync_p2p.node")
IMPORT_PROBE = """
import json, sys
from pathlib import Path
import worksync_p2p.cli
from worksync_p2p import commands
names = {names!r}
before = sorted(m for m in names if m in sys.modules)
commands.net_options(Path(sys.argv[1]), "127.0.0.1", 0, [])
after = sorted(m for m in names if m in sys.modules)
print(json.dumps([before, after]))
"""


def test_the_daemons_stack_is_imported_by_up_alone(tmp_path: Path) -> None:
    """`list`, `show`, `new`, ... start without aiohttp and watchfiles (~100 ms);
    `up` imports them when it builds its network options, zeroconf only with mDNS."""
    code = IMPORT_PROBE.format(names=DAEMON_ONLY)
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    before, after = json.loads(done.stdout)
    assert before == []
    assert after == ["aiohttp", "watchfiles", "worksync_p2p.node"]
