"""A workspace on disk: the items folder and its private ``.worksync/`` state.

Layout (``root`` is the folder of markdown items, ``./.claude-work`` by default)::

    root/
      *.md                      the work items, edited by people and agents
      .worksync/                mode 0700, never synced, never tracked by git
        .gitignore              "*": git ignores the whole state directory
        identity.key            this peer's Ed25519 seed (32 bytes, 0600)
        secret.key              the workspace secret shared by members (32 bytes, 0600)
        config.toml             settings; every key optional (see DEFAULT_CONFIG_TEXT)
        store.sqlite3           CRDT state (written by the store adapter)
        daemon.lock             held by the running daemon

:func:`init` is idempotent: it creates what is missing, overwrites nothing, and
validates what already exists. Everything that reads a workspace goes through
:func:`open_workspace`, which refuses a folder that was never initialised.
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nacl.utils

from worksync_p2p import identity as identity_files
from worksync_p2p.identity import Identity, KeyFileError

DEFAULT_ROOT = Path(".claude-work")
STATE_DIR_NAME = ".worksync"
STATE_DIR_MODE = 0o700
PUBLIC_FILE_MODE = 0o644
MAX_PORT = 65535

_T = TypeVar("_T")


class WorkspaceError(Exception):
    """A workspace cannot be created or used; the message is one line for the user."""


class WorkspaceNotFoundError(WorkspaceError):
    """The folder is not an initialised workspace."""


class InvalidWorkspaceFileError(WorkspaceError):
    """A file of the workspace (config, key) is malformed or unsafe; the message names it."""


@dataclass(frozen=True)
class Config:
    """Settings from ``config.toml``; the defaults apply to every key left out."""

    max_item_bytes: int = 1_048_576
    watch_step_ms: int = 1
    watch_debounce_ms: int = 20
    watch_doorbell: bool = True
    listen_host: str = "0.0.0.0"
    listen_port: int = 0
    peers: tuple[str, ...] = field(default=())
    mdns: bool = True


DEFAULT_CONFIG_TEXT = """\
# worksync-p2p workspace settings (TOML). Every key is optional: the commented
# values below are the defaults. Uncomment a line to change it.

# Item files larger than this many bytes are not synced (a warning names them).
# max_item_bytes = 1048576

# File watcher (watchfiles): how often it looks for changes while files are
# changing, and how long a burst of changes may keep coming before they are
# processed, in milliseconds. A save is seen 1-2 steps after it happened.
# watch_step_ms = 1
# watch_debounce_ms = 20

# Look only when inotify says something changed (Linux), so an idle daemon
# does not wake every step; false polls every step (for file systems where
# inotify misses changes, e.g. network mounts).
# watch_doorbell = true

# Where the daemon listens for peers; port 0 picks a free port (mDNS advertises it).
# listen_host = "0.0.0.0"
# listen_port = 0

# Peers to dial directly, as "host:port", for networks that block multicast.
# Example: peers = ["192.168.1.20:7420", "[fe80::1]:7420"]
# peers = []

# Find peers on the local network by mDNS (zeroconf).
# mdns = true
"""


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace; loading is explicit (see the ``load_*`` methods)."""

    root: Path

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR_NAME

    @property
    def gitignore_path(self) -> Path:
        return self.state_dir / ".gitignore"

    @property
    def store_path(self) -> Path:
        return self.state_dir / "store.sqlite3"

    @property
    def identity_path(self) -> Path:
        return self.state_dir / "identity.key"

    @property
    def secret_path(self) -> Path:
        return self.state_dir / "secret.key"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "config.toml"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "daemon.lock"

    def load_identity(self) -> Identity:
        return _wrap_key_error(identity_files.load, self.identity_path)

    def load_secret(self) -> bytes:
        return _wrap_key_error(identity_files.load_secret, self.secret_path)

    def load_config(self) -> Config:
        return load_config(self.config_path)


@dataclass(frozen=True)
class InitResult:
    """What :func:`init` did. ``created`` is False when the workspace already existed."""

    created: bool
    workspace: Workspace
    identity: Identity
    created_paths: tuple[Path, ...] = ()


def init(root: Path, secret: bytes | None = None) -> InitResult:
    """Create the workspace at ``root`` (or complete it), then validate all of it.

    ``secret`` (from an invitation) makes the workspace a member of that group;
    a workspace that already has a different secret is refused, never rewritten.
    """
    workspace = Workspace(Path(root).absolute())
    if secret is not None and workspace.secret_path.exists() and workspace.load_secret() != secret:
        raise WorkspaceError(
            f"{workspace.root} already belongs to another workspace group; "
            "join into a new folder instead"
        )
    _make_directory(workspace.root, mode=None)
    state_created = _make_directory(workspace.state_dir, mode=STATE_DIR_MODE)
    new_files: list[tuple[Path, Callable[[], bytes], int]] = [
        (workspace.gitignore_path, lambda: b"*\n", PUBLIC_FILE_MODE),
        (workspace.config_path, DEFAULT_CONFIG_TEXT.encode, PUBLIC_FILE_MODE),
        (
            workspace.secret_path,
            (lambda: secret) if secret is not None else _random_secret,
            identity_files.KEY_FILE_MODE,
        ),
        (workspace.identity_path, _random_seed, identity_files.KEY_FILE_MODE),
    ]
    created_paths = [workspace.state_dir] if state_created else []
    for path, make_data, mode in new_files:
        if not path.exists() and _write_new_file(path, make_data(), mode):
            created_paths.append(path)
    workspace.load_config()
    workspace.load_secret()
    return InitResult(
        created=state_created,
        workspace=workspace,
        identity=workspace.load_identity(),
        created_paths=tuple(created_paths),
    )


def open_workspace(root: Path) -> Workspace:
    """The initialised workspace at ``root``; raises WorkspaceNotFoundError otherwise."""
    workspace = Workspace(Path(root).absolute())
    required = (workspace.identity_path, workspace.secret_path)
    if not workspace.state_dir.is_dir() or not all(path.exists() for path in required):
        raise WorkspaceNotFoundError(
            f"{workspace.root} is not an initialised worksync-p2p workspace;"
            f" run `worksync-p2p init {shlex.quote(str(root))}`"
        )
    return workspace


def load_config(path: Path) -> Config:
    """Parse and validate ``config.toml``; a missing file means all defaults."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        return Config()
    except OSError as error:
        raise InvalidWorkspaceFileError(f"{path}: cannot read: {error.strerror}") from None
    except ValueError as error:  # TOMLDecodeError, or bytes that are not UTF-8
        raise InvalidWorkspaceFileError(f"{path}: invalid TOML: {error}") from None
    return config_from_mapping(data, source=path)


def config_from_mapping(data: Mapping[str, object], source: Path) -> Config:
    """Validate parsed TOML against :class:`Config`; errors name ``source`` and the key."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        check = _CONFIG_CHECKS.get(key)
        if check is None:
            known = ", ".join(_CONFIG_CHECKS)
            raise InvalidWorkspaceFileError(f"{source}: unknown key '{key}' (known: {known})")
        try:
            values[key] = check(value)
        except ValueError as error:
            raise InvalidWorkspaceFileError(f"{source}: key '{key}': {error}") from None
    return Config(**values)


def _positive_int(value: object) -> int:
    if type(value) is not int or value <= 0:  # type() rejects bool, a subclass of int
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


def _non_negative_int(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"expected an integer >= 0, got {value!r}")
    return value


def _port_or_zero(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_PORT:
        raise ValueError(f"expected a port number 0..{MAX_PORT}, got {value!r}")
    return value


def _host(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty host name or address, got {value!r}")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _peer_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f'expected a list of "host:port" strings, got {value!r}')
    return tuple(_peer_address(item) for item in value)


def _peer_address(value: object) -> str:
    if isinstance(value, str):
        host, colon, port = value.rpartition(":")
        if colon and host.strip() and port.isdigit() and 1 <= int(port) <= MAX_PORT:
            return value
    raise ValueError(f'expected "host:port" with a port 1..{MAX_PORT}, got {value!r}')


_CONFIG_CHECKS: dict[str, Callable[[object], object]] = {
    "max_item_bytes": _positive_int,
    "watch_step_ms": _positive_int,
    "watch_debounce_ms": _non_negative_int,
    "watch_doorbell": _boolean,
    "listen_host": _host,
    "listen_port": _port_or_zero,
    "peers": _peer_list,
    "mdns": _boolean,
}


def _make_directory(path: Path, mode: int | None) -> bool:
    """Create ``path`` (with exactly ``mode`` if given); False if it already existed."""
    try:
        if mode is None:
            path.mkdir(parents=True)
        else:
            path.mkdir(mode=mode)
            path.chmod(mode)  # mkdir's mode is narrowed by the umask; be exact
    except FileExistsError:
        if not path.is_dir():
            raise WorkspaceError(f"{path} exists and is not a directory") from None
        return False
    except OSError as error:
        raise WorkspaceError(f"cannot create {path}: {error.strerror}") from None
    return True


def _write_new_file(path: Path, data: bytes, mode: int) -> bool:
    try:
        return identity_files.write_new_file(path, data, mode)
    except OSError as error:
        raise WorkspaceError(f"cannot create {path}: {error.strerror}") from None


def _random_secret() -> bytes:
    return nacl.utils.random(identity_files.SECRET_BYTES)


def _random_seed() -> bytes:
    return nacl.utils.random(identity_files.SEED_BYTES)


def _wrap_key_error(load: Callable[[Path], _T], path: Path) -> _T:
    try:
        return load(path)
    except KeyFileError as error:
        raise InvalidWorkspaceFileError(str(error)) from None
