"""Run the official ``yjs`` npm package from tests, through small node scripts.

Import the fixture explicitly in a test module::

    from tests.jsyjs import JsYjs, js_yjs  # noqa: F401  (the fixture)

Documents travel to node as binary Yjs update files and results come back as
JSON on stdout. The scripts live in ``tests/js``; ``npm ci`` installs the
pinned ``yjs`` there on first use.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).parent / "js"
NPM_CI_TIMEOUT_S = 180
NODE_TIMEOUT_S = 60


class JsYjs:
    """Reads and edits item documents with JavaScript's Yjs."""

    def __init__(self, node: str, tmp_factory: pytest.TempPathFactory) -> None:
        self._node = node
        self._tmp_factory = tmp_factory

    def _run(self, script: str, *args: str) -> str:
        try:
            done = subprocess.run(
                [self._node, str(JS_DIR / script), *args],
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=NODE_TIMEOUT_S,
                check=True,
            )
        except subprocess.CalledProcessError as err:
            pytest.fail(f"node {script} failed ({err.returncode}):\n{err.stderr}")
        return done.stdout

    def read(self, update: bytes) -> dict[str, Any]:
        """The item as JS sees it: {key, genesis, path, alive, head, body, fields}."""
        source = self._tmp_factory.mktemp("yjs") / "doc.bin"
        source.write_bytes(update)
        result: dict[str, Any] = json.loads(self._run("read_item.mjs", str(source)))
        return result

    def edit(self, update: bytes, edits: Sequence[dict[str, Any]]) -> bytes:
        """The full state after JS applies ``edits`` (see edit_item.mjs) to ``update``."""
        work = self._tmp_factory.mktemp("yjs")
        source, target = work / "in.bin", work / "out.bin"
        source.write_bytes(update)
        self._run(
            "edit_item.mjs",
            str(source),
            str(target),
            *(json.dumps(e, ensure_ascii=False) for e in edits),
        )
        return target.read_bytes()


def _ensure_yjs_installed() -> None:
    if (JS_DIR / "node_modules" / "yjs" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not on PATH: cannot install the yjs npm package")
    try:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT_S,
            check=True,
        )
    except subprocess.CalledProcessError as err:
        pytest.fail(f"npm ci in {JS_DIR} failed ({err.returncode}):\n{err.stderr}")
    except subprocess.TimeoutExpired:
        pytest.fail(f"npm ci in {JS_DIR} took more than {NPM_CI_TIMEOUT_S} s")


@pytest.fixture(scope="session")
def js_yjs(tmp_path_factory: pytest.TempPathFactory) -> JsYjs:
    """Node with the pinned yjs package installed; skips when node is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the Yjs interop tests need node and npm")
    _ensure_yjs_installed()
    return JsYjs(node, tmp_factory=tmp_path_factory)
