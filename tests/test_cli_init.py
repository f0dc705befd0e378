"""The CLI shell and `init`, run as real processes (`python -m worksync_p2p`)."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clihelpers import run_cli as run
from worksync_p2p import __version__, identity
from worksync_p2p.cli import ExitCode, emit_json, emit_table, main

STATE = Path(".claude-work") / ".worksync"


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("worksync-p2p: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_exit_codes_are_stable() -> None:
    assert [int(code) for code in ExitCode] == [0, 1, 2, 3, 4, 5, 130]
    assert ExitCode["ALREADY_RUNNING"] is ExitCode["CONFLICT"]
    assert int(ExitCode.ALREADY_RUNNING) == 4


def test_init_creates_the_default_folder(tmp_path: Path) -> None:
    result = run("init", cwd=tmp_path)
    assert result.returncode == ExitCode.OK, result.stderr
    assert result.stderr == ""
    peer_id = identity.load(tmp_path / STATE / "identity.key").peer_id
    assert f"Created workspace {tmp_path / '.claude-work'}" in result.stdout
    assert f"peer id:  {peer_id}" in result.stdout
    assert stat.S_IMODE((tmp_path / STATE).stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / STATE / "secret.key").stat().st_mode) == 0o600
    assert (tmp_path / STATE / ".gitignore").read_text() == "*\n"


def test_init_twice_says_it_already_exists(tmp_path: Path) -> None:
    first = run("init", "items", cwd=tmp_path)
    seed = (tmp_path / "items" / ".worksync" / "identity.key").read_bytes()
    second = run("init", "items", cwd=tmp_path)
    assert first.returncode == second.returncode == ExitCode.OK
    assert "already exists" in second.stdout
    assert "nothing overwritten" in second.stdout
    assert (tmp_path / "items" / ".worksync" / "identity.key").read_bytes() == seed


def test_init_json_before_and_after_the_subcommand(tmp_path: Path) -> None:
    first = run("--json", "init", cwd=tmp_path)
    second = run("init", "--json", cwd=tmp_path)
    assert first.returncode == second.returncode == ExitCode.OK
    created, existing = json.loads(first.stdout), json.loads(second.stdout)
    root = tmp_path / ".claude-work"
    assert created["created"] is True
    assert existing["created"] is False
    assert existing["created_paths"] == []
    assert str(root / ".worksync" / "identity.key") in created["created_paths"]
    assert created["path"] == existing["path"] == str(root)
    assert created["state_dir"] == str(root / ".worksync")
    peer_id = identity.load(root / ".worksync" / "identity.key").peer_id
    assert created["peer_id"] == existing["peer_id"] == peer_id


def test_concurrent_inits_agree_on_one_identity(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "worksync_p2p", "--json", "init", "shared"]
    processes = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    assert [process.returncode for process in processes] == [ExitCode.OK] * 4
    peer_ids = {json.loads(output)["peer_id"] for output in outputs}
    assert peer_ids == {identity.load(tmp_path / "shared" / ".worksync" / "identity.key").peer_id}
    assert sum(json.loads(output)["created"] for output in outputs) == 1


def test_broad_key_permissions_are_one_line_bad_input(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == ExitCode.OK
    key_path = tmp_path / STATE / "identity.key"
    key_path.chmod(0o644)
    result = run("init", cwd=tmp_path)
    assert result.returncode == ExitCode.BAD_INPUT
    assert_one_line_error(result, str(key_path), "0644")
    assert result.stdout == ""
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o644


def test_wrong_key_size_is_bad_input_and_json_reports_it(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == ExitCode.OK
    key_path = tmp_path / STATE / "secret.key"
    key_path.write_bytes(b"too short")
    result = run("--json", "init", cwd=tmp_path)
    assert result.returncode == ExitCode.BAD_INPUT
    assert_one_line_error(result, str(key_path), "expected 32 bytes, found 9")
    assert json.loads(result.stdout) == {"error": result.stderr.removeprefix("worksync-p2p: ")[:-1]}


def test_bad_config_names_file_and_key(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == ExitCode.OK
    config_path = tmp_path / STATE / "config.toml"
    config_path.write_text("watch_step_ms = -3\n")
    result = run("init", cwd=tmp_path)
    assert result.returncode == ExitCode.BAD_INPUT
    assert_one_line_error(result, str(config_path), "'watch_step_ms'")


def test_a_file_in_the_way_is_a_runtime_error(tmp_path: Path) -> None:
    (tmp_path / "items").write_text("")
    result = run("init", "items", cwd=tmp_path)
    assert result.returncode == ExitCode.ERROR
    assert_one_line_error(result, "items exists and is not a directory")


def test_help_lists_subcommands_and_exit_codes(tmp_path: Path) -> None:
    result = run("--help", cwd=tmp_path)
    assert result.returncode == ExitCode.OK
    assert "init" in result.stdout
    assert "exit codes:" in result.stdout
    assert "5    bad input" in result.stdout


def test_version(tmp_path: Path) -> None:
    result = run("--version", cwd=tmp_path)
    assert result.returncode == ExitCode.OK
    assert result.stdout.strip() == f"worksync-p2p {__version__}"


@pytest.mark.parametrize(
    "args", [("frobnicate",), (), ("init", "--bogus"), ("init", "a", "b")], ids=repr
)
def test_usage_errors_exit_2_in_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE
    assert_one_line_error(result)
    assert not (tmp_path / ".claude-work").exists()


def test_usage_error_under_json_is_a_json_document(tmp_path: Path) -> None:
    result = run("--json", "frobnicate", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE
    assert "frobnicate" in json.loads(result.stdout)["error"]


def test_main_returns_the_exit_code_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", str(tmp_path / "w")]) == ExitCode.OK
    assert "Created workspace" in capsys.readouterr().out
    assert main(["--json", "init", str(tmp_path / "w")]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["created"] is False
    assert main(["nope"]) == ExitCode.USAGE


def test_emit_table_aligns_columns() -> None:
    out = io.StringIO()
    rows = [
        {"id": "t1", "title": "short", "status": "open"},
        {"id": "task-22", "title": "a longer\ntitle", "status": "done"},
        {"id": "t3"},
    ]
    emit_table(rows, ["id", "title", "status"], file=out)
    assert out.getvalue().splitlines() == [
        "ID       TITLE           STATUS",
        "t1       short           open",
        "task-22  a longer title  done",
        "t3",
    ]


def test_emit_table_with_no_rows_prints_the_header() -> None:
    out = io.StringIO()
    emit_table([], ["id", "title"], file=out)
    assert out.getvalue() == "ID  TITLE\n"


def test_emit_json_prints_one_document_with_paths_as_strings() -> None:
    out = io.StringIO()
    emit_json({"path": Path("/x/y"), "n": 1, "title": "café"}, file=out)
    assert json.loads(out.getvalue()) == {"path": "/x/y", "n": 1, "title": "café"}
    assert "café" in out.getvalue()
