"""Peer identity and workspace secret key files: derivation, creation, refusal."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from nacl.signing import VerifyKey

from worksync_p2p import identity
from worksync_p2p.identity import Identity, KeyFileError

SEED = bytes(range(32))
# Pinned: a change to the derivation would split every existing peer from its id.
SEED_PEER_ID = "qgstfrwkdjonshim"
SEED_VERIFY_KEY_HEX = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write(path: Path, data: bytes, mode: int) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_peer_id_is_base32_of_blake2b_80_of_the_verify_key() -> None:
    me = Identity.from_seed(SEED)
    digest = hashlib.blake2b(me.verify_key, digest_size=10).digest()
    assert me.peer_id == base64.b32encode(digest).decode().lower()
    assert len(me.peer_id) == 16
    assert set(me.peer_id) <= set("abcdefghijklmnopqrstuvwxyz234567")


def test_peer_id_of_a_fixed_seed_is_pinned() -> None:
    me = Identity.from_seed(SEED)
    assert me.verify_key.hex() == SEED_VERIFY_KEY_HEX
    assert me.peer_id == SEED_PEER_ID
    assert identity.peer_id_for(me.verify_key) == SEED_PEER_ID


def test_signature_verifies_with_the_verify_key() -> None:
    me = Identity.from_seed(SEED)
    signature = me.sign(b"hello")
    assert len(signature) == 64
    assert VerifyKey(me.verify_key).verify(b"hello", signature) == b"hello"


def test_repr_does_not_show_the_signing_key() -> None:
    me = Identity.from_seed(SEED)
    assert "signing_key" not in repr(me)
    assert SEED.hex() not in repr(me)


def test_seed_of_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Identity.from_seed(b"short")


def test_load_or_create_writes_a_private_seed_and_is_stable(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    first = identity.load_or_create(path)
    seed = path.read_bytes()
    assert len(seed) == 32
    assert _mode(path) == 0o600
    assert identity.load_or_create(path) == first
    assert identity.load(path) == first
    assert path.read_bytes() == seed
    assert first == Identity.from_seed(seed)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_two_new_identities_differ(tmp_path: Path) -> None:
    one = identity.load_or_create(tmp_path / "a.key")
    two = identity.load_or_create(tmp_path / "b.key")
    assert one.peer_id != two.peer_id


def test_load_reads_an_existing_seed(tmp_path: Path) -> None:
    path = _write(tmp_path / "identity.key", SEED, 0o600)
    assert identity.load(path).peer_id == SEED_PEER_ID


def test_owner_read_only_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path / "identity.key", SEED, 0o400)
    assert identity.load_or_create(path).peer_id == SEED_PEER_ID


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_wrong_size_is_refused_naming_the_file(tmp_path: Path, size: int) -> None:
    path = _write(tmp_path / "identity.key", b"k" * size, 0o600)
    with pytest.raises(KeyFileError, match=rf"identity\.key: expected 32 bytes, found {size}"):
        identity.load_or_create(path)
    assert path.read_bytes() == b"k" * size  # not replaced


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700, 0o666])
def test_broad_permissions_are_refused_not_fixed(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path / "identity.key", SEED, mode)
    with pytest.raises(KeyFileError, match=rf"identity\.key: permissions {mode:04o}") as caught:
        identity.load_or_create(path)
    assert "\n" not in str(caught.value)
    assert _mode(path) == mode
    assert path.read_bytes() == SEED


def test_missing_file_is_reported_by_load(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"nothing\.key: key file is missing"):
        identity.load(tmp_path / "nothing.key")


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    path.mkdir(mode=0o700)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=r"identity\.key"):
        identity.load(path)


def test_write_new_file_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert identity.write_new_file(path, b"first", 0o600)
    assert not identity.write_new_file(path, b"second", 0o644)
    assert path.read_bytes() == b"first"
    assert _mode(path) == 0o600
    assert sorted(tmp_path.iterdir()) == [path]


def test_write_new_file_sets_the_exact_mode_despite_the_umask(tmp_path: Path) -> None:
    old_umask = os.umask(0o077)
    try:
        assert identity.write_new_file(tmp_path / "public", b"x", 0o644)
    finally:
        os.umask(old_umask)
    assert _mode(tmp_path / "public") == 0o644


def test_secret_is_32_private_random_bytes_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    secret = identity.load_or_create_secret(path)
    assert len(secret) == 32
    assert _mode(path) == 0o600
    assert identity.load_or_create_secret(path) == secret
    assert identity.load_secret(path) == secret
    assert identity.load_or_create_secret(tmp_path / "other.key") != secret


def test_secret_follows_the_key_file_rules(tmp_path: Path) -> None:
    path = _write(tmp_path / "secret.key", bytes(32), 0o644)
    with pytest.raises(KeyFileError, match=r"secret\.key: permissions 0644"):
        identity.load_or_create_secret(path)
    path.chmod(0o600)
    path.write_bytes(bytes(8))
    with pytest.raises(KeyFileError, match=r"secret\.key: expected 32 bytes, found 8"):
        identity.load_secret(path)


def test_workspace_tag_is_a_keyed_hash_of_a_fixed_label() -> None:
    secret = bytes(range(100, 132))
    tag = identity.workspace_tag(secret)
    expected = hashlib.blake2b(b"worksync-p2p workspace tag v1", key=secret, digest_size=8)
    assert tag == expected.hexdigest()
    assert len(tag) == 16
    assert tag == identity.workspace_tag(secret)
    assert tag != identity.workspace_tag(bytes(32))
    assert tag not in secret.hex()
