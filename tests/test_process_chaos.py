"""Process-level chaos: real `worksync-p2p up` daemons on loopback under kills and link faults.

The short runs are part of the default test run; ``--run-slow`` adds a soak.
The plan, the proxy and the checks have their own quick tests, so a chaos
run that passes is known to have been able to fail.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from simulations.chaos import checks, replay
from simulations.chaos.files import Delete
from simulations.chaos.plan import EDITS, GUARANTEED, make_plan
from simulations.chaos.proxy import LOOPBACK, LinkProxy
from simulations.chaos.runner import Result, run_chaos
from simulations.ledger import Ledger
from worksync_p2p.adapters import files
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core.bridge import Bridge, Persist
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import Writer
from worksync_p2p.core.repo import Repo

SHORT_SEEDS = (2, 3)  # one run from one origin, one from cloned folders
SHORT_SECONDS = 5.0
SOAK_SEEDS = range(100, 106)
SOAK_SECONDS = 30.0
SOAK_TIMEOUT_S = 600  # a 5-peer seed takes minutes on a loaded machine; the run bounds itself
WAIT_S = 5.0
QUIET_S = 0.3


def test_a_seed_replays_the_same_plan_and_every_plan_has_every_fault() -> None:
    assert make_plan(7, 3, 5.0) == make_plan(7, 3, 5.0)
    assert make_plan(7, 3, 5.0).steps != make_plan(8, 3, 5.0).steps
    for seed in range(200):
        plan = make_plan(seed, 3, SHORT_SECONDS)
        counts = plan.counts()
        assert all(counts[kind] >= 1 for kind in GUARANTEED), (seed, counts)
        assert all(step.at_s < SHORT_SECONDS for step in plan.steps)
        assert sum(counts[kind] for kind in EDITS) > 0


# -- the proxy --------------------------------------------------------------------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _proxy_modes() -> None:
    server = await asyncio.start_server(_echo, LOOPBACK, 0)
    proxy = LinkProxy("test")
    await proxy.start()
    proxy.target = (LOOPBACK, int(server.sockets[0].getsockname()[1]))
    reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
    try:
        writer.write(b"one")
        assert await asyncio.wait_for(reader.readexactly(3), WAIT_S) == b"one"
        proxy.hold()
        writer.write(b"two")
        with pytest.raises(TimeoutError):  # a quiet window: nothing comes back while held
            await asyncio.wait_for(reader.readexactly(3), QUIET_S)
        proxy.heal()
        assert await asyncio.wait_for(reader.readexactly(3), WAIT_S) == b"two"
        proxy.drop()
        assert proxy.aborted == 1
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), WAIT_S)
        refused_reader, refused_writer = await asyncio.open_connection(LOOPBACK, proxy.port)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(refused_reader.readexactly(1), WAIT_S)
        refused_writer.close()
        assert proxy.refused == 1
    finally:
        writer.close()
        await proxy.close()
        server.close()
        await server.wait_closed()


def test_the_proxy_passes_holds_then_delivers_and_drops() -> None:
    asyncio.run(_proxy_modes())


# -- the checks -------------------------------------------------------------------------


def _item(key: str, body: str) -> bytes:
    return f"---\nid: {key}\ntitle: t\n---\n{body}\n".encode()


def test_the_checks_report_lost_duplicated_resurrected_diverged_and_stray(tmp_path: Path) -> None:
    ledger = Ledger()
    for text in ("m00001z", "m00002z", "m00003z", "m00004z"):
        ledger.add(text, "p0", "insert_line")
    ledger.retract(["m00004z"])
    files = {"a.md": _item("a", "m00001z m00002z m00002z"), "b.md": _item("b", "x")}
    assert checks.lost("p0", files, '[{"others": ["m00003z"]}]', ledger) == []
    assert checks.lost("p0", files, "[]", ledger) == [
        "p0: lost edit: m00003z (insert_line by p0) is in no file and in no conflict"
    ]
    assert checks.duplicates("p0", files) == ["p0: duplicated: m00002z appears 2 times"]
    came_back = Delete("b", 1, seen={"m00009z"})
    assert checks.deletes(files, [came_back], {"b": {"m00009z"}})
    assert checks.deletes(files, [came_back], {"b": {"m00009z", "m00010z"}}) == []
    assert checks.convergence({"p0": files, "p1": {"a.md": files["a.md"]}})
    (tmp_path / "p0" / "sub").mkdir(parents=True)
    (tmp_path / "p0" / "sub" / ".a.md.1234.worksync-tmp").write_text("x")
    (tmp_path / "elsewhere.md").write_text("x")
    found = checks.containment(tmp_path, [tmp_path / "p0"], {"p0"})
    assert len(found) == 2, found
    assert checks.rewritten("p0", {"a.md": (1, 2, 3)}, {"a.md": (1, 5, 3)})


def test_the_failure_report_names_the_seed_command_artifacts_and_store_file_gaps(
    tmp_path: Path,
) -> None:
    bridge = Bridge(Repo(Writer("p", Hlc("p"), 0), 7))
    text = "---\nid: t1\n---\nline m00001z\n"
    root = tmp_path / "p0"
    (root / ".worksync").mkdir(parents=True)
    with SqliteStore(root / ".worksync" / "store.sqlite3") as store:
        for effect in bridge.on_file("t1.md", text.encode(), 1000):
            if isinstance(effect, Persist):
                store.append(effect.key, effect.update)
    assert checks.store_vs_files("p0", root, {"t1.md": text.encode()}) == []
    stale = {"t1.md": b"---\nid: t1\n---\nline\n"}
    assert checks.store_vs_files("p0", root, stale) == [
        "p0: t1.md (t1): store renders ['m00001z'] the file lacks, file has [] the store does not"
    ]
    assert checks.store_vs_files("p0", root, {}) == [
        "p0: t1.md: the store has item t1 there, no file"
    ]
    result = Result(7, 3, 6.0, make_plan(7, 3, 6.0), problems=["p1: lost edit: m00015z"])
    result.kept = tmp_path
    report = result.report()
    assert report.startswith("FAIL chaos seed 7 (3 peers, 6 s of faults): 1 problem(s)")
    assert "python -m simulations chaos --seed 7 --peers 3 --seconds 6" in report
    assert f"artifacts: {tmp_path} " in report


def test_a_daemon_start_finds_the_temp_files_a_kill_left(tmp_path: Path) -> None:
    """What start-up tidies (tests/test_node_bridge.py: which it puts back, which it removes)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / ".worksync").mkdir()
    left = [tmp_path / ".a.md.0123abcd.worksync-tmp", tmp_path / "sub" / ".b.md.ff.worksync-tmp"]
    kept = [tmp_path / "a.md", tmp_path / ".a.md.swp", tmp_path / ".worksync" / ".x.worksync-tmp"]
    for path in left + kept:
        path.write_text("x")
    assert files.leftover_temps(tmp_path) == [
        (".a.md.0123abcd.worksync-tmp", "a.md"),
        ("sub/.b.md.ff.worksync-tmp", "sub/b.md"),
    ]


# -- real daemons -------------------------------------------------------------------------


def _assert_everything_happened(result: Result) -> None:
    done = result.done
    assert done["sigkill"] >= 2, done
    assert done["kill_mid_save"] >= 1, done
    assert done["kill_during_sync"] >= 1, done
    assert done["sigterm"] >= 1, done
    assert done["start"] >= 1, done
    assert done["drop"] >= 1, done
    assert done["hold"] >= 1, done
    assert result.stats["saves"] > 0, result.stats
    assert result.stats["proxy_aborted"] + result.stats["proxy_refused"] > 0, result.stats


KNOWN_LOST = (
    "open limit (simulations/README.md, Process-level chaos): a save made from content"
    " read just before a daemon write landed drops what that write brought"
)


def _judge(result: Result) -> None:
    """Every check strict, except lost edits: a known open bug, so an expected failure."""
    _assert_everything_happened(result)
    others = [p for p in result.problems if "lost edit" not in p]
    assert not others, result.report()
    if result.problems:
        pytest.xfail(f"{KNOWN_LOST}: {result.problems[0]}; reproduce: {result.command()}")


@pytest.mark.parametrize("seed", SHORT_SEEDS)
def test_a_short_chaos_run_loses_nothing(seed: int) -> None:
    # Not strict: no seed has lost an edit since session 3's fixes (45 seeds),
    # but the stale-save limit can still strike under load (see the README).
    _judge(run_chaos(seed, peers=3, seconds=SHORT_SECONDS))


@pytest.mark.slow
@pytest.mark.timeout(SOAK_TIMEOUT_S)
@pytest.mark.parametrize("seed", SOAK_SEEDS)
def test_a_chaos_soak_loses_nothing(seed: int) -> None:
    peers = 5 if seed % 3 == 0 else 3
    _judge(run_chaos(seed, peers=peers, seconds=SOAK_SECONDS))


def test_the_replay_shows_what_each_stored_update_changed(tmp_path: Path) -> None:
    bridge = Bridge(Repo(Writer("p", Hlc("p"), 0), 7))
    text = "---\nid: t1\n---\nline m00001z\n"
    path = tmp_path / "store.sqlite3"
    with SqliteStore(path) as store:
        for ms, body in ((1000, text), (2000, text.replace(" m00001z", " m00002z"))):
            for effect in bridge.on_file("t1.md", body.encode(), ms):
                if isinstance(effect, Persist):
                    store.append(effect.key, effect.update)
    steps = replay.changes(path, "t1")
    assert len(steps) == 2
    assert "+line m00001z" in steps[0][2]
    assert steps[1][2] == ["-line m00001z", "+line m00002z"]
