"""Play one plan against real daemons, then heal, restart, wait for quiescence and judge.

Phases:

1. set-up: the first folder is initialised and the others join it with an
   invitation (in-process, as tests do); the first items land in the first
   folder (in every folder when the swarm says ``cloned``); a proxy per
   directed pair; every daemon starts, dialling its proxies;
2. the plan's steps at their planned times (the run's clock decides when a
   step starts, never whether something has happened);
3. final heal: every proxy passes; every daemon is stopped and started; wait,
   bounded, until all are linked, the folders are identical and no event came
   for ``QUIET_S`` (polled: no single event says "converged");
4. restart every daemon once more and wait again: a converged peer must come
   back without rewriting a file;
5. ``worksync-p2p conflicts --json`` per folder, clean stops, the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from simulations.chaos import checks
from simulations.chaos.files import People, item_files
from simulations.chaos.plan import EDITS, Plan, Step, make_plan
from simulations.chaos.procs import Daemon
from simulations.chaos.proxy import LinkProxy
from worksync_p2p import commands
from worksync_p2p.workspace import init

READY_S = 30.0
LIVENESS_S = 45.0
QUIET_S = 0.6  # well over the bridge's grace periods (150 ms) and a watcher step
POLL_S = 0.05
CLI_S = 30.0
SETTLE_LIMIT_S = 200.0
"""Hard bound on one run beyond its planned seconds: set-up, final phase, checks."""
HISTORY = 30


@dataclass
class Result:
    seed: int
    peers: int
    seconds: float
    plan: Plan
    problems: list[str] = field(default_factory=list)
    done: Counter[str] = field(default_factory=Counter)
    """Steps that really happened, by kind (a skipped edit is not counted)."""
    history: list[str] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)
    """Where each folder and its own store disagree (printed with a failure)."""
    kept: Path | None = None
    """Where the run's folders, stores and logs are (a failing run's are always kept)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def command(self) -> str:
        return (
            f"python -m simulations chaos --seed {self.seed} --peers {self.peers}"
            f" --seconds {self.seconds:g}"
        )

    def report(self) -> str:
        lines = [
            f"FAIL chaos seed {self.seed} ({self.peers} peers, {self.seconds:g} s of faults):"
            f" {len(self.problems)} problem(s)"
        ]
        lines += [f"  - {problem}" for problem in self.problems[:20]]
        lines += [f"  note: {note}" for note in self.notes[:5]]
        lines += [f"  store vs file: {line}" for line in self.diagnosis]
        lines.append(f"  plan: {self.plan.summary()}")
        lines.append(f"  done: {dict(sorted(self.done.items()))}")
        lines.append(f"  stats: {self.stats}")
        lines.append("  last operations:")
        lines += [f"    {line}" for line in self.history[-HISTORY:]]
        lines.append(f"  reproduce: {self.command()} (a few times: timings vary)")
        lines += self.where()
        return "\n".join(lines)

    def where(self) -> list[str]:
        """Where the artifacts are and how to read them (nothing when none were kept)."""
        if self.kept is None:
            return ["  artifacts: none kept"]
        store = self.kept / "pN" / ".worksync" / "store.sqlite3"
        return [
            f"  artifacts: {self.kept} (folders pN/ with .worksync/store.sqlite3;"
            " logs/history.txt, logs/pN.events, logs/pN.err)",
            f"  replay an item: python -m simulations.chaos.replay {store} ITEM",
        ]


class World:
    def __init__(self, plan: Plan, base: Path) -> None:
        self.plan = plan
        self.base = base
        self.roots = [base / f"p{i}" for i in range(plan.peers)]
        self.logs = base / "logs"
        self.people = People(self.roots)
        self.history = self.people.history
        self.daemons = [Daemon(i, r, self.logs, self._ready) for i, r in enumerate(self.roots)]
        self.proxies: dict[tuple[int, int], LinkProxy] = {}
        self.done: Counter[str] = Counter()
        self.problems: list[str] = []
        self.notes: list[str] = []
        """Worth a look, not a failure: a traceback a daemon logged and survived."""
        self.diagnosis: list[str] = []
        self.t0 = self.people.t0

    def note(self, line: str) -> None:
        self.people.note(line)

    # -- set-up --------------------------------------------------------------------

    async def setup(self) -> None:
        self.logs.mkdir()
        init(self.roots[0])
        code = commands.invite(self.roots[0])["code"]
        for root in self.roots[1:]:
            commands.join(code, root)
        folders = self.roots if self.plan.swarm.cloned else self.roots[:1]
        for key, seed in self.plan.initial:
            relpath, text = self.people.initial_text(key, seed)
            for root in folders:
                (root / relpath).parent.mkdir(parents=True, exist_ok=True)
                (root / relpath).write_text(text)
        for a in range(self.plan.peers):
            for b in range(self.plan.peers):
                if a != b:
                    proxy = LinkProxy(f"p{a}->p{b}")
                    await proxy.start()
                    self.proxies[(a, b)] = proxy
        for daemon in self.daemons:
            await self._start(daemon)
        await self._all_ready()

    def _ready(self, daemon: Daemon) -> None:
        """A daemon listens on a new port after each start: point its proxies there."""
        for (_, b), proxy in self.proxies.items():
            if b == daemon.index:
                proxy.target = daemon.address

    async def _start(self, daemon: Daemon) -> None:
        peers = [p.address for (a, _), p in sorted(self.proxies.items()) if a == daemon.index]
        await daemon.start(peers)

    async def _all_ready(self) -> None:
        waits = [asyncio.wait_for(d.ready.wait(), READY_S) for d in self.daemons]
        try:
            await asyncio.gather(*waits)
        except TimeoutError:
            late = [d.label for d in self.daemons if not d.ready.is_set()]
            raise RunError(f"{late} did not report started within {READY_S}s") from None

    # -- the plan ------------------------------------------------------------------

    async def play(self) -> None:
        start = time.monotonic()
        for step in self.plan.steps:
            # The schedule's clock: when a step begins, never a wait for an outcome.
            await asyncio.sleep(max(0.0, start + step.at_s - time.monotonic()))
            await self.execute(step)

    async def execute(self, step: Step) -> None:
        if step.kind in EDITS:
            if await self.people.do(step):
                self.done[step.kind] += 1
            return
        action = self._actions()[step.kind]
        await action(step)
        self.done[step.kind] += 1
        self.note(step.describe().split("s ", 1)[1])

    def _actions(self) -> dict[str, Callable[[Step], Awaitable[None]]]:
        return {
            "kill": self._kill,
            "kill_mid_save": self._kill_mid_save,
            "kill_during_sync": self._kill_during_sync,
            "stop": self._stop,
            "start": self._restart,
            "drop": self._link(LinkProxy.drop),
            "hold": self._link(LinkProxy.hold),
            "heal": self._link(LinkProxy.heal),
        }

    async def _down(self, daemon: Daemon) -> None:
        for (_, b), proxy in self.proxies.items():
            if b == daemon.index:
                proxy.target = None  # its old port may go to another daemon
        if daemon.up:
            self.done["sigkill"] += 1
            self.done["sigkill_" + ("ready" if daemon.ready.is_set() else "starting")] += 1
        daemon.kill()
        await daemon.wait_ended()

    async def _kill(self, step: Step) -> None:
        await self._down(self.daemons[step.peer])

    async def _kill_mid_save(self, step: Step) -> None:
        daemon = self.daemons[step.peer]

        async def between() -> None:
            self.note(f"kill -9 p{step.peer} half-way through a {step.style} save")
            await self._down(daemon)

        await self.people.do(dataclasses.replace(step, kind="insert_line"), between)
        if daemon.up:  # no file to save on that peer: the kill happens anyway
            await self._down(daemon)

    async def _kill_during_sync(self, step: Step) -> None:
        await self.people.do(dataclasses.replace(step, kind="insert_line"))
        # The planned delay: the edit is on its way to (or landing on) the peer we kill.
        await asyncio.sleep(step.delay_s)
        await self._down(self.daemons[step.other])

    async def _stop(self, step: Step) -> None:
        daemon = self.daemons[step.peer]
        for (_, b), proxy in self.proxies.items():
            if b == daemon.index:
                proxy.target = None
        if daemon.up:
            self.done["sigterm"] += 1
        await daemon.stop()

    async def _restart(self, step: Step) -> None:
        daemon = self.daemons[step.peer]
        if not daemon.up:
            await self._start(daemon)

    def _link(self, how: Callable[[LinkProxy], None]) -> Callable[[Step], Awaitable[None]]:
        async def act(step: Step) -> None:
            how(self.proxies[(step.peer, step.other)])
            how(self.proxies[(step.other, step.peer)])

        return act

    # -- the end -------------------------------------------------------------------

    async def restart_all(self) -> None:
        await asyncio.gather(*(d.stop() for d in self.daemons))
        for proxy in self.proxies.values():
            proxy.target = None
        for daemon in self.daemons:
            await self._start(daemon)
        await self._all_ready()

    def quiescent(self) -> bool:
        ids = {d.peer_id for d in self.daemons}
        if not all(
            d.up and d.ready.is_set() and d.links == ids - {d.peer_id} for d in self.daemons
        ):
            return False
        if time.monotonic() - max(d.last_activity for d in self.daemons) < QUIET_S:
            return False
        first = item_files(self.roots[0])
        return all(item_files(root) == first for root in self.roots[1:])

    async def settle(self, what: str) -> bool:
        """Poll, bounded, until quiescent (no event says so; a quiet window is the evidence)."""
        started = time.monotonic()
        deadline = started + LIVENESS_S
        while not self.quiescent():
            if time.monotonic() > deadline:
                links = {d.label: len(d.links) for d in self.daemons}
                self.problems.append(
                    f"liveness: not quiescent {LIVENESS_S}s after the {what} (links {links})"
                )
                return False
            await asyncio.sleep(POLL_S)  # polling other processes' files and streams
        self.note(f"quiescent {time.monotonic() - started:.1f}s after the {what}")
        return True

    async def final(self) -> dict[str, str]:
        for proxy in self.proxies.values():
            proxy.heal()
        self.note("final heal; restarting every peer")
        await self.restart_all()
        if not await self.settle("final heal and restart"):
            return {}
        before = {d.label: checks.stats(d.root) for d in self.daemons}
        await self.restart_all()
        if await self.settle("second restart"):
            for daemon in self.daemons:
                after = checks.stats(daemon.root)
                self.problems += checks.rewritten(daemon.label, before[daemon.label], after)
        found = await asyncio.gather(*(conflicts(d.root) for d in self.daemons))
        return {d.label: text for d, text in zip(self.daemons, found, strict=True)}

    def judge(self, conflicts_by_peer: dict[str, str]) -> None:
        folders = {d.label: item_files(d.root) for d in self.daemons}
        ledger = self.people.ledger
        self.problems += checks.convergence(folders)
        stores = {d.label: checks.store_bytes(d.root) for d in self.daemons}
        for label, files in folders.items():
            found = conflicts_by_peer.get(label, "")
            self.problems += checks.lost(label, files, found, ledger, stores)
            self.problems += checks.duplicates(label, files)
        self.problems += checks.deletes(folders["p0"], self.people.deletes, self.people.edits)
        allowed = {root.name for root in self.roots} | {self.logs.name}
        self.problems += checks.containment(self.base, self.roots, allowed)
        writes = sum(d.remote_writes for d in self.daemons)
        starts = sum(d.starts for d in self.daemons)
        self.problems += checks.write_budget(writes, ledger.saves, self.plan.peers, starts)
        for daemon in self.daemons:
            self.problems += daemon.problems
            self.notes += daemon.stderr_tracebacks()
        if self.problems:
            for daemon in self.daemons:
                files = folders[daemon.label]
                self.diagnosis += checks.store_vs_files(daemon.label, daemon.root, files)

    async def close(self) -> None:
        for daemon in self.daemons:
            await daemon.close()
        for proxy in self.proxies.values():
            await proxy.close()


class RunError(Exception):
    """The run could not go on (a daemon never started); reported as a problem."""


async def conflicts(root: Path) -> str:
    """``worksync-p2p --json conflicts`` of one folder, as text (markers are searched in it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worksync_p2p",
        "--json",
        "conflicts",
        "-w",
        str(root),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), CLI_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return ""
    if process.returncode not in (0, 4):  # 4: there are conflicts
        return f"(conflicts failed: {err.decode(errors='replace')[:200]})"
    return json.dumps(json.loads(out)["conflicts"])


async def _run(world: World) -> None:
    await world.setup()
    world.note(f"set-up done; playing {world.plan.summary()}")
    await world.play()
    found = await world.final()
    await asyncio.gather(*(d.stop() for d in world.daemons))
    world.judge(found)


async def run_async(plan: Plan, base: Path) -> Result:
    world = World(plan, base)
    result = Result(plan.seed, plan.peers, plan.seconds, plan)
    started = time.monotonic()
    try:
        await asyncio.wait_for(_run(world), plan.seconds + SETTLE_LIMIT_S)
    except TimeoutError:
        world.problems.append(f"the run took longer than {plan.seconds + SETTLE_LIMIT_S}s")
    except RunError as error:
        world.problems.append(str(error))
    finally:
        await world.close()
        # Kept folders get the whole history beside the logs, for digging into a failure.
        if world.logs.is_dir():
            (world.logs / "history.txt").write_text("\n".join(world.history) + "\n")
            for daemon in world.daemons:
                (world.logs / f"{daemon.label}.events").write_text(daemon.events_text(world.t0))
    result.problems = world.problems
    result.notes = world.notes
    result.diagnosis = world.diagnosis
    result.done = world.done
    result.history = world.history
    result.stats = {
        "elapsed_s": round(time.monotonic() - started, 1),
        "saves": world.people.ledger.saves,
        "markers": len(world.people.ledger.markers),
        "skipped": world.people.skipped,
        "starts": sum(d.starts for d in world.daemons),
        "remote_writes": sum(d.remote_writes for d in world.daemons),
        "proxy_aborted": sum(p.aborted for p in world.proxies.values()),
        "proxy_refused": sum(p.refused for p in world.proxies.values()),
        "proxy_held": sum(p.held for p in world.proxies.values()),
    }
    return result


def run_chaos(seed: int, peers: int = 3, seconds: float = 10.0, keep: Path | None = None) -> Result:
    """One seed, start to finish, in ``keep``/seed-N (kept) or in a temp folder that is
    removed when the run passes and kept when it fails (``Result.kept`` says where)."""
    plan = make_plan(seed, peers, seconds)
    if keep is not None:
        base = keep / f"seed-{seed}"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
    else:
        base = Path(tempfile.mkdtemp(prefix=f"wschaos-seed{seed}-"))
    try:
        result = asyncio.run(run_async(plan, base))
    except BaseException:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
        raise
    if result.ok and keep is None:
        shutil.rmtree(base, ignore_errors=True)
    else:
        result.kept = base
    return result


def main(seeds: range, peers: int, seconds: float, verbose: bool, keep: Path | None) -> int:
    failed: list[Result] = []
    started = time.monotonic()
    for seed in seeds:
        plan = make_plan(seed, peers, seconds)
        print(f"chaos seed {seed}: {plan.summary()}", flush=True)
        result = run_chaos(seed, peers, seconds, keep)
        if result.ok and result.notes:
            print("\n".join(f"  seed {seed} note: {note}" for note in result.notes[:5]))
        if not result.ok:
            failed.append(result)
            print(result.report(), flush=True)
        elif verbose:
            print(f"ok seed {seed} done {dict(sorted(result.done.items()))} {result.stats}")
            with contextlib.suppress(BrokenPipeError):
                print("\n".join(f"    {line}" for line in result.history[-HISTORY:]), flush=True)
    count = len(seeds)
    elapsed = time.monotonic() - started
    print(f"{count} chaos seed(s), {len(failed)} failed {[r.seed for r in failed]}; {elapsed:.0f}s")
    for result in failed:
        print(f"  seed {result.seed}: {result.command()}; artifacts: {result.kept}")
    return 1 if failed else 0
