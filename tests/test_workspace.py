"""Workspace creation, opening, and config.toml validation, on real files."""

from __future__ import annotations

import re
import stat
from dataclasses import fields
from pathlib import Path

import pytest

from worksync_p2p import identity
from worksync_p2p.workspace import (
    DEFAULT_CONFIG_TEXT,
    Config,
    InvalidWorkspaceFileError,
    Workspace,
    WorkspaceError,
    WorkspaceNotFoundError,
    init,
    load_config,
    open_workspace,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(directory)): (path.read_bytes(), _mode(path))
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_paths_live_in_the_state_directory(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    state = tmp_path / ".worksync"
    assert workspace.state_dir == state
    assert workspace.store_path == state / "store.sqlite3"
    assert workspace.identity_path == state / "identity.key"
    assert workspace.secret_path == state / "secret.key"
    assert workspace.config_path == state / "config.toml"
    assert workspace.lock_path == state / "daemon.lock"


def test_init_creates_everything_with_the_right_modes(tmp_path: Path) -> None:
    root = tmp_path / "project" / ".claude-work"
    result = init(root)
    workspace = result.workspace
    assert result.created
    assert workspace.root == root
    assert root.is_dir()
    assert _mode(workspace.state_dir) == 0o700
    assert workspace.gitignore_path.read_text() == "*\n"
    for key_path in (workspace.identity_path, workspace.secret_path):
        assert _mode(key_path) == 0o600
        assert len(key_path.read_bytes()) == 32
    assert workspace.config_path.read_text() == DEFAULT_CONFIG_TEXT
    assert workspace.load_config() == Config()
    assert result.identity == identity.load(workspace.identity_path)
    assert set(result.created_paths) == {
        workspace.state_dir,
        workspace.gitignore_path,
        workspace.config_path,
        workspace.identity_path,
        workspace.secret_path,
    }
    assert not workspace.store_path.exists()  # the store adapter creates it


def test_init_again_is_harmless_and_says_so(tmp_path: Path) -> None:
    first = init(tmp_path)
    before = _snapshot(tmp_path)
    second = init(tmp_path)
    assert not second.created
    assert second.created_paths == ()
    assert second.identity == first.identity
    assert _snapshot(tmp_path) == before


def test_init_keeps_existing_items_and_a_user_edited_config(tmp_path: Path) -> None:
    item = tmp_path / "task.md"
    item.write_text("---\nid: t1\n---\nbody\n")
    init(tmp_path)
    config_path = Workspace(tmp_path).config_path
    config_path.write_text("mdns = false\n")
    init(tmp_path)
    assert item.read_text() == "---\nid: t1\n---\nbody\n"
    assert config_path.read_text() == "mdns = false\n"


def test_init_restores_only_what_is_missing(tmp_path: Path) -> None:
    first = init(tmp_path)
    workspace = first.workspace
    workspace.config_path.unlink()
    again = init(tmp_path)
    assert not again.created
    assert again.created_paths == (workspace.config_path,)
    assert again.identity == first.identity


def test_init_refuses_a_file_where_the_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "items").write_text("not a folder")
    with pytest.raises(WorkspaceError, match="items exists and is not a directory"):
        init(tmp_path / "items")


def test_init_validates_an_existing_key(tmp_path: Path) -> None:
    workspace = init(tmp_path).workspace
    workspace.identity_path.chmod(0o644)
    with pytest.raises(InvalidWorkspaceFileError, match=r"identity\.key: permissions 0644"):
        init(tmp_path)
    assert _mode(workspace.identity_path) == 0o644


def test_open_workspace_refuses_an_uninitialised_folder(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceNotFoundError) as caught:
        open_workspace(tmp_path)
    message = str(caught.value)
    assert "not an initialised worksync-p2p workspace" in message
    assert f"run `worksync-p2p init {tmp_path}`" in message
    assert "\n" not in message


def test_open_workspace_refuses_a_state_dir_without_keys(tmp_path: Path) -> None:
    (tmp_path / ".worksync").mkdir()
    with pytest.raises(WorkspaceNotFoundError):
        open_workspace(tmp_path)


def test_open_workspace_loads_what_init_made(tmp_path: Path) -> None:
    made = init(tmp_path)
    workspace = open_workspace(tmp_path)
    assert workspace == made.workspace
    assert workspace.load_identity() == made.identity
    assert len(workspace.load_secret()) == 32
    assert workspace.load_config() == Config()


def test_every_commented_default_is_the_real_default(tmp_path: Path) -> None:
    uncommented = re.sub(r"(?m)^# (?=[a-z_]+ = )", "", DEFAULT_CONFIG_TEXT)
    assert len(re.findall(r"(?m)^[a-z_]+ = ", uncommented)) == len(fields(Config))
    path = tmp_path / "config.toml"
    path.write_text(uncommented)
    assert load_config(path) == Config()


def test_missing_config_means_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "config.toml") == Config()


def test_config_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "max_item_bytes = 2048\nwatch_step_ms = 1\nwatch_debounce_ms = 0\n"
        'listen_host = "127.0.0.1"\nlisten_port = 7420\n'
        'peers = ["10.0.0.2:7420", "[::1]:7421", "host.lan:9"]\nmdns = false\n'
    )
    assert load_config(path) == Config(
        max_item_bytes=2048,
        watch_step_ms=1,
        watch_debounce_ms=0,
        listen_host="127.0.0.1",
        listen_port=7420,
        peers=("10.0.0.2:7420", "[::1]:7421", "host.lan:9"),
        mdns=False,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 1", "unknown key 'colour'"),
        ("[network]\nlisten_port = 1", "unknown key 'network'"),
        ("max_item_bytes = 0", "key 'max_item_bytes': expected a positive integer"),
        ("max_item_bytes = true", "key 'max_item_bytes': expected a positive integer"),
        ('watch_step_ms = "5"', "key 'watch_step_ms': expected a positive integer"),
        ("watch_debounce_ms = -1", "key 'watch_debounce_ms': expected an integer >= 0"),
        ("watch_debounce_ms = 2.5", "key 'watch_debounce_ms': expected an integer >= 0"),
        ('listen_host = ""', "key 'listen_host': expected a non-empty host"),
        ("listen_host = 1", "key 'listen_host': expected a non-empty host"),
        ("listen_port = 70000", "key 'listen_port': expected a port number"),
        ('peers = "10.0.0.2:7420"', "key 'peers': expected a list"),
        ('peers = ["10.0.0.2"]', "key 'peers': expected \"host:port\""),
        ('peers = [":7420"]', "key 'peers': expected \"host:port\""),
        ('peers = ["h:0"]', "key 'peers': expected \"host:port\""),
        ("peers = [7420]", "key 'peers': expected \"host:port\""),
        ('mdns = "yes"', "key 'mdns': expected true or false"),
        ("mdns = ", "invalid TOML"),
    ],
)
def test_bad_config_names_the_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text + "\n")
    with pytest.raises(InvalidWorkspaceFileError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_config_that_is_not_utf8_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'listen_host = "\xff"\n')
    with pytest.raises(InvalidWorkspaceFileError, match="invalid TOML"):
        load_config(path)
