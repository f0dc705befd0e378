"""Encrypted, authenticated frames over an established session, sans-I/O.

A :class:`Session` holds the two directional keys a handshake produced
(``handshake.py``) and turns plaintext messages into frames and back. Rules:

1. A frame is ``XSalsa20-Poly1305(key, nonce, plaintext)`` (PyNaCl's
   ``SecretBox``) without the nonce: 16 bytes of MAC, then the ciphertext.
   Each direction has its own key, so the two sides never share a nonce space.
2. The nonce is the little-endian 64-bit frame counter of that direction,
   padded with zeros to 24 bytes. It is not sent: the receiver knows which
   frame comes next, so a replayed, reordered, dropped-then-later, truncated or
   tampered frame does not open. This relies on a transport that neither loses
   nor reorders messages (a WebSocket over TCP); on such a transport any of
   those events is an attack or a bug, and the session ends.
3. The first frame that fails to open closes the session for good: every
   later ``open`` or ``seal`` raises :class:`FrameError`. A half-broken session
   has no safe way to resynchronise, and refusing everything makes the failure
   impossible to ignore.
4. Plaintexts are at most :data:`MAX_FRAME_BYTES`. Sealing a larger one is our
   own bug (``ValueError``, nothing is consumed); receiving a larger frame is
   bad peer input (``FrameError``, checked before any decryption work).
5. A counter is never reused: when a direction has used all its nonces the
   session closes (:class:`FrameError`), and the caller reconnects, which runs a
   new handshake with new keys. At 2**64 frames this is theoretical, but it is
   a rule, not a hope.

The session is a plain object: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import nacl.exceptions
from nacl.secret import SecretBox

KEY_BYTES = SecretBox.KEY_SIZE
MAC_BYTES = SecretBox.MACBYTES
NONCE_BYTES = SecretBox.NONCE_SIZE
COUNTER_BYTES = 8
MAX_FRAME_BYTES = 8 * 1024 * 1024
"""The largest plaintext a frame may carry (8 MiB)."""
MAX_SEALED_FRAME_BYTES = MAX_FRAME_BYTES + MAC_BYTES
"""The largest frame on the wire."""
COUNTER_LIMIT = 2**64
"""Frames per direction per session; the counter must stay below this."""

_NONCE_PADDING = bytes(NONCE_BYTES - COUNTER_BYTES)


class FrameError(Exception):
    """A frame did not open, or the session is closed; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def nonce_for(counter: int) -> bytes:
    """The 24-byte nonce of frame number ``counter`` in one direction."""
    return counter.to_bytes(COUNTER_BYTES, "little") + _NONCE_PADDING


class Session:
    """Seal outgoing and open incoming frames with per-direction counter nonces."""

    __slots__ = (
        "_closed_reason",
        "_counter_limit",
        "_recv_box",
        "_recv_counter",
        "_send_box",
        "_send_counter",
    )

    def __init__(
        self, send_key: bytes, recv_key: bytes, *, counter_limit: int = COUNTER_LIMIT
    ) -> None:
        """``counter_limit`` exists so tests can reach counter exhaustion."""
        if len(send_key) != KEY_BYTES or len(recv_key) != KEY_BYTES:
            raise ValueError(f"session keys are {KEY_BYTES} bytes each")
        if send_key == recv_key:
            raise ValueError("the send and receive keys must differ (reflection)")
        if not 0 < counter_limit <= COUNTER_LIMIT:
            raise ValueError(f"counter_limit must be in 1..2**64, not {counter_limit}")
        self._send_box = SecretBox(send_key)
        self._recv_box = SecretBox(recv_key)
        self._send_counter = 0
        self._recv_counter = 0
        self._counter_limit = counter_limit
        self._closed_reason: str | None = None

    def __repr__(self) -> str:
        # Never the keys.
        state = f"closed: {self._closed_reason}" if self._closed_reason else "open"
        return f"<Session sent={self._send_counter} received={self._recv_counter} {state}>"

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    @property
    def closed_reason(self) -> str | None:
        return self._closed_reason

    def seal(self, plaintext: bytes) -> bytes:
        """The frame carrying ``plaintext``; the next ``open`` on the peer's side opens it."""
        if len(plaintext) > MAX_FRAME_BYTES:
            raise ValueError(
                f"plaintext of {len(plaintext)} bytes exceeds MAX_FRAME_BYTES={MAX_FRAME_BYTES}"
            )
        self._check_open()
        if self._send_counter >= self._counter_limit:
            raise self._close("send counter exhausted; reconnect for new keys")
        nonce = nonce_for(self._send_counter)
        self._send_counter += 1
        return self._send_box.encrypt(plaintext, nonce).ciphertext

    def open(self, frame: bytes) -> bytes:
        """The plaintext of the peer's next frame; any failure closes the session."""
        self._check_open()
        if len(frame) > MAX_SEALED_FRAME_BYTES:
            raise self._close(f"frame of {len(frame)} bytes exceeds the limit")
        if len(frame) < MAC_BYTES:
            raise self._close(f"frame of {len(frame)} bytes is shorter than its MAC")
        if self._recv_counter >= self._counter_limit:
            raise self._close("receive counter exhausted; reconnect for new keys")
        try:
            plaintext = self._recv_box.decrypt(frame, nonce_for(self._recv_counter))
        except nacl.exceptions.CryptoError:
            raise self._close(
                f"frame {self._recv_counter} does not open (tampered, replayed, reordered"
                " or truncated)"
            ) from None
        self._recv_counter += 1
        return plaintext

    def _check_open(self) -> None:
        if self._closed_reason is not None:
            raise FrameError(f"session closed: {self._closed_reason}")

    def _close(self, reason: str) -> FrameError:
        self._closed_reason = reason
        return FrameError(reason)
