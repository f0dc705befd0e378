"""The handshake that opens a secure channel between two peers, sans-I/O.

In the spirit of Noise XX with a pre-shared key: three messages, ephemeral
X25519 keys for forward secrecy, Ed25519 identities, and the 32-byte workspace
secret ``psk`` mixed into every key. Notation: ``e_i``/``e_r`` are the
initiator's and responder's ephemeral public keys, ``dh = X25519(e_i, e_r)``,
``||`` is concatenation, and

- ``H(x) = BLAKE2b-256(x, person="wsy1-hash")``, the running transcript hash
  ``h``, so every key and signature is bound to every byte sent before it;
- ``KDF(label, h) = BLAKE2b-256(h || dh, key=psk, person=label)``: a key needs
  both the secret and the ephemeral DH; it stays secret if either does
  (a revoked member knows ``psk``, but not ``dh``);
- ``AEAD(k, x)`` is SecretBox with an all-zero nonce, sent without the nonce;
  each such key is derived from a fresh transcript and used exactly once.

Messages, with why each step is there:

1. ``msg1 = "WSY1" || version (u16 BE) || e_i`` (38 bytes). Magic and version
   let a responder refuse a stranger or a newer protocol with a clear reason;
   nothing else is readable, so a listener learns no identity and no
   workspace. ``h1 = H(H("worksync-p2p XXpsk v1") || msg1)``; magic and
   version are in the transcript, so a downgrade is detected.
2. ``msg2 = e_r || c2`` (144 bytes), ``h2a = H(h1 || e_r)``,
   ``c2 = AEAD(KDF("wsy1-msg2", h2a), vk_r || Sign_r("wsy1 responder" || h2a))``.
   Opening ``c2`` proves the responder knows ``psk``; the signature over both
   ephemerals proves it holds ``vk_r`` now (a recorded msg2 cannot be replayed
   against another ``e_i``). Only a holder of ``psk`` learns ``vk_r``.
3. ``msg3 = c3`` (112 bytes), ``h2 = H(h2a || c2)``,
   ``c3 = AEAD(KDF("wsy1-msg3", h2), vk_i || Sign_i("wsy1 initiator" || h2))``.
   The same two proofs from the initiator, sent only after it has
   authenticated (and allowed) the responder; ``h2`` covers ``c2``, so the
   initiator's signature also binds the responder's identity. The role labels
   keep one side's signature from being reflected as the other's.
4. ``h3 = H(h2 || c3)``; session keys ``KDF("wsy1-i2r", h3)`` (initiator to
   responder) and ``KDF("wsy1-r2i", h3)``, one per direction (``frames.py``).
   The ephemeral secrets are dropped, so later theft of ``psk`` and the
   identity keys does not decrypt a recorded session.

Each side turns the other's ``vk`` into a peer id (``identity.peer_id_for``)
and asks the injected ``is_allowed(peer_id)`` (revocation). Any bad input (a
wrong length, magic or version, a wrong secret, a bad signature, a refused
peer, a message out of order, anything over :data:`MAX_HANDSHAKE_BYTES`)
raises :class:`HandshakeError` with a one-line reason, and the handshake then
refuses everything. No other exception type escapes ``receive``.

Randomness is injected (``random_bytes``) and Ed25519 signatures are
deterministic, so the same random source gives a byte-identical transcript.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Protocol

import nacl.bindings
import nacl.encoding
import nacl.exceptions
import nacl.hash
from nacl.secret import SecretBox
from nacl.signing import VerifyKey

from worksync_p2p.core.frames import Session
from worksync_p2p.identity import peer_id_for

MAGIC = b"WSY1"
VERSION = 1
SECRET_BYTES = 32
EPHEMERAL_BYTES = 32
HASH_BYTES = 32
VERIFY_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEALED_IDENTITY_BYTES = VERIFY_KEY_BYTES + SIGNATURE_BYTES + SecretBox.MACBYTES
MSG1_BYTES = len(MAGIC) + 2 + EPHEMERAL_BYTES
MSG2_BYTES = EPHEMERAL_BYTES + SEALED_IDENTITY_BYTES
MSG3_BYTES = SEALED_IDENTITY_BYTES
MAX_HANDSHAKE_BYTES = 1024
"""Larger handshake messages are refused before any work is done on them."""

PROTOCOL_NAME = b"worksync-p2p XXpsk v1"
_HASH_PERSON = b"wsy1-hash"
_RESPONDER_SIGNS = b"wsy1 responder"
_INITIATOR_SIGNS = b"wsy1 initiator"
_ZERO_NONCE = bytes(SecretBox.NONCE_SIZE)
_MESSAGE_BY_LENGTH = {MSG1_BYTES: "msg1", MSG2_BYTES: "msg2", MSG3_BYTES: "msg3"}


class HandshakeError(Exception):
    """The handshake failed; ``reason`` is one line fit for a log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Signer(Protocol):
    """What the handshake needs of our identity (``identity.Identity`` fits)."""

    @property
    def verify_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


RandomBytes = Callable[[int], bytes]
IsAllowed = Callable[[str], bool]


# -- pure primitives ------------------------------------------------------------


def _mix_hash(h: bytes, data: bytes) -> bytes:
    """The transcript hash after ``data``: ``H(h || data)``."""
    return _blake2b(h + data, key=b"", person=_HASH_PERSON)


def _initial_hash() -> bytes:
    return _mix_hash(b"", PROTOCOL_NAME)


def _derive_key(psk: bytes, dh: bytes, h: bytes, label: bytes) -> bytes:
    """``KDF(label, h)``: a 32-byte key bound to the secret, the DH and the transcript."""
    return _blake2b(h + dh, key=psk, person=label)


def _seal_identity(key: bytes, signer: Signer, signed: bytes) -> bytes:
    """``AEAD(key, vk || Sign(signed))``: a message 2 or 3 body."""
    payload = signer.verify_key + signer.sign(signed)
    return SecretBox(key).encrypt(payload, _ZERO_NONCE).ciphertext


def _blake2b(data: bytes, *, key: bytes, person: bytes) -> bytes:
    return nacl.hash.blake2b(
        data, digest_size=HASH_BYTES, key=key, person=person, encoder=nacl.encoding.RawEncoder
    )


def _dh(our_secret: bytes, their_public: bytes) -> bytes:
    try:
        return nacl.bindings.crypto_scalarmult(our_secret, their_public)
    except nacl.exceptions.CryptoError:
        # libsodium refuses a low-order point (the shared secret would be zero).
        raise HandshakeError("peer's ephemeral key is invalid (low-order point)") from None


def _open_identity(key: bytes, sealed: bytes, signed: bytes, name: str) -> bytes:
    """The peer's verify key from a msg2/msg3 body, after checking its signature."""
    try:
        payload = SecretBox(key).decrypt(sealed, _ZERO_NONCE)
    except nacl.exceptions.CryptoError:
        raise HandshakeError(
            f"{name} does not decrypt: wrong workspace secret, or tampered in transit"
        ) from None
    verify_key, signature = payload[:VERIFY_KEY_BYTES], payload[VERIFY_KEY_BYTES:]
    try:
        VerifyKey(verify_key).verify(signed, signature)
    except nacl.exceptions.CryptoError:
        raise HandshakeError(f"{name} identity signature is invalid") from None
    return verify_key


def _check_length(data: bytes, expected: str) -> None:
    wanted = {"msg1": MSG1_BYTES, "msg2": MSG2_BYTES, "msg3": MSG3_BYTES}[expected]
    if len(data) == wanted:
        return
    got = _MESSAGE_BY_LENGTH.get(len(data))
    if got is not None and (got != "msg1" or data.startswith(MAGIC)):
        raise HandshakeError(f"message out of order: got a {got} where {expected} was expected")
    raise HandshakeError(f"{expected} is {len(data)} bytes, expected {wanted}")


# -- the two roles --------------------------------------------------------------


class _State(enum.Enum):
    NEW = enum.auto()
    WAITING = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()


class _Handshake:
    """What both roles share: inputs, the result, the size limit and failure."""

    def __init__(
        self, identity: Signer, secret: bytes, random_bytes: RandomBytes, is_allowed: IsAllowed
    ) -> None:
        if len(secret) != SECRET_BYTES:
            raise ValueError(f"the workspace secret is {SECRET_BYTES} bytes, not {len(secret)}")
        self._identity = identity
        self._psk = secret
        self._random_bytes = random_bytes
        self._is_allowed = is_allowed
        self._state = _State.NEW
        self._ephemeral_secret = b""
        self._h = _initial_hash()
        self._dh = b""
        self.session: Session | None = None
        """The channel, once ``done``."""
        self.peer_id: str | None = None
        """The authenticated, allowed peer id, once ``done``."""
        self.failure: str | None = None
        """The reason, once the handshake failed."""

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def receive(self, data: bytes) -> list[bytes]:
        """Take the peer's next message; return the messages to send back."""
        if self._state is _State.FAILED:
            raise HandshakeError(f"handshake already failed: {self.failure}")
        if self._state is _State.DONE:
            raise HandshakeError("message out of order: the handshake is already complete")
        if len(data) > MAX_HANDSHAKE_BYTES:
            raise self._fail(f"handshake message of {len(data)} bytes exceeds the limit")
        try:
            return self._step(bytes(data))
        except HandshakeError as error:
            raise self._fail(error.reason) from None

    def _step(self, data: bytes) -> list[bytes]:
        raise NotImplementedError

    def _new_ephemeral(self) -> bytes:
        secret = self._random_bytes(EPHEMERAL_BYTES)
        if len(secret) != EPHEMERAL_BYTES:
            raise ValueError(f"random_bytes({EPHEMERAL_BYTES}) returned {len(secret)} bytes")
        self._ephemeral_secret = secret
        return nacl.bindings.crypto_scalarmult_base(secret)

    def _authorise(self, verify_key: bytes) -> str:
        peer_id = peer_id_for(verify_key)
        if not self._is_allowed(peer_id):
            raise HandshakeError(f"peer {peer_id} is not allowed (revoked or not a member)")
        return peer_id

    def _finish(self, peer_id: str, h3: bytes, *, initiator: bool) -> None:
        i2r = _derive_key(self._psk, self._dh, h3, b"wsy1-i2r")
        r2i = _derive_key(self._psk, self._dh, h3, b"wsy1-r2i")
        self.session = Session(i2r, r2i) if initiator else Session(r2i, i2r)
        self.peer_id = peer_id
        self._state = _State.DONE
        self._forget()

    def _fail(self, reason: str) -> HandshakeError:
        self._state = _State.FAILED
        self.failure = reason
        self._forget()
        return HandshakeError(reason)

    def _forget(self) -> None:
        # Forward secrecy: nothing that derives the session keys outlives the handshake.
        # (Python cannot wipe memory; dropping the references is the best we can do.)
        self._ephemeral_secret = b""
        self._dh = b""


class Initiator(_Handshake):
    """The dialling side: ``start()`` gives msg1, ``receive(msg2)`` gives ``[msg3]``."""

    def start(self) -> bytes:
        if self._state is not _State.NEW:
            raise RuntimeError("Initiator.start() called twice")
        msg1 = MAGIC + struct.pack(">H", VERSION) + self._new_ephemeral()
        self._h = _mix_hash(self._h, msg1)
        self._state = _State.WAITING
        return msg1

    def _step(self, data: bytes) -> list[bytes]:
        if self._state is _State.NEW:
            raise HandshakeError("message out of order: the handshake has not started")
        _check_length(data, "msg2")
        e_r, c2 = data[:EPHEMERAL_BYTES], data[EPHEMERAL_BYTES:]
        self._dh = _dh(self._ephemeral_secret, e_r)
        h2a = _mix_hash(self._h, e_r)
        k2 = _derive_key(self._psk, self._dh, h2a, b"wsy1-msg2")
        verify_key = _open_identity(k2, c2, _RESPONDER_SIGNS + h2a, "msg2")
        peer_id = self._authorise(verify_key)
        h2 = _mix_hash(h2a, c2)
        k3 = _derive_key(self._psk, self._dh, h2, b"wsy1-msg3")
        msg3 = _seal_identity(k3, self._identity, _INITIATOR_SIGNS + h2)
        self._finish(peer_id, _mix_hash(h2, msg3), initiator=True)
        return [msg3]


class Responder(_Handshake):
    """The accepting side: ``receive(msg1)`` gives ``[msg2]``, ``receive(msg3)`` gives ``[]``."""

    def _step(self, data: bytes) -> list[bytes]:
        if self._state is _State.NEW:
            return [self._on_msg1(data)]
        self._on_msg3(data)
        return []

    def _on_msg1(self, data: bytes) -> bytes:
        if len(data) >= len(MAGIC) and not data.startswith(MAGIC):
            raise HandshakeError("msg1 has a bad magic (not a worksync peer)")
        if len(data) >= len(MAGIC) + 2:
            (version,) = struct.unpack_from(">H", data, len(MAGIC))
            if version != VERSION:
                raise HandshakeError(f"unsupported protocol version {version} (we speak {VERSION})")
        _check_length(data, "msg1")
        e_i = data[-EPHEMERAL_BYTES:]
        h1 = _mix_hash(self._h, data)
        e_r = self._new_ephemeral()
        self._dh = _dh(self._ephemeral_secret, e_i)
        h2a = _mix_hash(h1, e_r)
        k2 = _derive_key(self._psk, self._dh, h2a, b"wsy1-msg2")
        c2 = _seal_identity(k2, self._identity, _RESPONDER_SIGNS + h2a)
        self._h = _mix_hash(h2a, c2)
        self._state = _State.WAITING
        return e_r + c2

    def _on_msg3(self, data: bytes) -> None:
        _check_length(data, "msg3")
        h2 = self._h
        k3 = _derive_key(self._psk, self._dh, h2, b"wsy1-msg3")
        verify_key = _open_identity(k3, data, _INITIATOR_SIGNS + h2, "msg3")
        peer_id = self._authorise(verify_key)
        self._finish(peer_id, _mix_hash(h2, data), initiator=False)
