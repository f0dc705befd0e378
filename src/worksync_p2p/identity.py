"""Peer identity (Ed25519) and the workspace secret, stored as small key files.

Rules this module keeps:

- A key file holds exactly 32 raw bytes and has mode 0600 or narrower. A file
  that breaks either rule is refused with a :class:`KeyFileError` naming it; we
  never "fix" it silently, because a key readable by others may already be
  compromised and the user must decide.
- Key files are created atomically and never overwritten: the bytes go to a
  private temporary file (``os.open(..., 0o600)``, fsync), which is then
  hard-linked to its final name. Unlike ``rename``, ``link`` fails when the
  name exists, so two processes initialising one workspace at once end up
  sharing the first key instead of one silently replacing the other.
- The peer id is ``base32(BLAKE2b(verify_key, digest_size=10))``, lowercase,
  without padding: 80 bits in 16 characters, deterministic, and derived only
  from the public key, so any peer can check it against a handshake.
- :func:`workspace_tag` is a keyed BLAKE2b of a fixed label: peers holding the
  same secret compute the same tag, and the tag reveals nothing about the secret.

This module is not part of the sans-I/O core: it touches the disk and draws
random bytes from the operating system.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import nacl.utils
from nacl.signing import SigningKey

from worksync_p2p.adapters import files

SEED_BYTES = 32
SECRET_BYTES = 32
PEER_ID_DIGEST_BYTES = 10
WORKSPACE_TAG_BYTES = 8
KEY_FILE_MODE = 0o600
_WORKSPACE_TAG_LABEL = b"worksync-p2p workspace tag v1"


class KeyFileError(Exception):
    """A key file is missing, malformed or too widely readable (message names the file)."""


def peer_id_for(verify_key: bytes) -> str:
    """The peer id of an Ed25519 public key: 16 lowercase base32 characters."""
    digest = hashlib.blake2b(verify_key, digest_size=PEER_ID_DIGEST_BYTES).digest()
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def workspace_tag(secret: bytes) -> str:
    """A 16-hex-digit tag that identifies a workspace without revealing its secret."""
    mac = hashlib.blake2b(_WORKSPACE_TAG_LABEL, key=secret, digest_size=WORKSPACE_TAG_BYTES)
    return mac.hexdigest()


@dataclass(frozen=True)
class Identity:
    """This peer's Ed25519 key pair and the peer id derived from its public key."""

    signing_key: SigningKey = field(repr=False)
    verify_key: bytes
    peer_id: str

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 seed is {SEED_BYTES} bytes, not {len(seed)}")
        signing_key = SigningKey(seed)
        verify_key = bytes(signing_key.verify_key)
        return cls(signing_key=signing_key, verify_key=verify_key, peer_id=peer_id_for(verify_key))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached signature of ``message``."""
        return self.signing_key.sign(message).signature


def load(path: Path) -> Identity:
    """Read an existing identity key file (see the module rules)."""
    return Identity.from_seed(read_key_file(path, SEED_BYTES))


def load_or_create(path: Path) -> Identity:
    """Read the identity at ``path``, creating a new random one if there is none."""
    if not path.exists():
        write_new_file(path, nacl.utils.random(SEED_BYTES), KEY_FILE_MODE)
    return load(path)


def load_secret(path: Path) -> bytes:
    """Read an existing workspace secret file."""
    return read_key_file(path, SECRET_BYTES)


def load_or_create_secret(path: Path) -> bytes:
    """Read the workspace secret at ``path``, creating a new random one if there is none."""
    if not path.exists():
        write_new_file(path, nacl.utils.random(SECRET_BYTES), KEY_FILE_MODE)
    return load_secret(path)


def read_key_file(path: Path, size: int) -> bytes:
    """The ``size`` bytes of a key file, after checking its type, mode and length."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file is missing") from None
    except OSError as error:
        raise KeyFileError(f"{path}: cannot open key file: {error.strerror}") from None
    try:
        # Checked on the open descriptor, so the file cannot change between check and read.
        _check_key_file(path, os.fstat(fd), size)
        data = os.read(fd, size + 1)  # a regular file of this size: one read gets it all
    finally:
        os.close(fd)
    if len(data) != size:
        raise KeyFileError(f"{path}: expected {size} bytes, found {len(data)}")
    return data


def _check_key_file(path: Path, info: os.stat_result, size: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"{path}: not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & ~KEY_FILE_MODE:
        raise KeyFileError(
            f"{path}: permissions {mode:04o} are broader than {KEY_FILE_MODE:04o};"
            f" refusing to use it (check it was not exposed, then chmod 600 it)"
        )
    if info.st_size != size:
        raise KeyFileError(f"{path}: expected {size} bytes, found {info.st_size}")


def write_new_file(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` holding ``data`` with exactly ``mode``, atomically and durably.

    Returns False, leaving the file untouched, when ``path`` already exists.
    """
    temp_path = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)  # the umask may have narrowed it; be exact
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temp_path, path)
        except FileExistsError:
            return False
    finally:
        temp_path.unlink(missing_ok=True)
    files.fsync_folder(path.parent)
    return True
