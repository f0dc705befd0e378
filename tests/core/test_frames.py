"""Frames: counter nonces, one failure closes the session, size and counter limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.secret import SecretBox

from worksync_p2p.core.frames import (
    MAC_BYTES,
    MAX_FRAME_BYTES,
    MAX_SEALED_FRAME_BYTES,
    FrameError,
    Session,
    nonce_for,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))


def pair(counter_limit: int = 2**64) -> tuple[Session, Session]:
    """Two ends of one session: what ``alice`` seals, ``bob`` opens, and back."""
    alice = Session(KEY_A, KEY_B, counter_limit=counter_limit)
    bob = Session(KEY_B, KEY_A, counter_limit=counter_limit)
    return alice, bob


def test_frames_open_in_order_in_both_directions() -> None:
    alice, bob = pair()
    for index in range(5):
        assert bob.open(alice.seal(f"to bob {index}".encode())) == f"to bob {index}".encode()
        assert alice.open(bob.seal(f"to alice {index}".encode())) == f"to alice {index}".encode()
    assert bob.open(alice.seal(b"")) == b""
    assert not alice.closed
    assert not bob.closed


def test_wire_format_is_secretbox_with_the_counter_nonce_and_no_nonce_sent() -> None:
    alice, _ = pair()
    frames = [alice.seal(b"same text") for _ in range(3)]
    assert len(set(frames)) == 3  # one nonce per frame: equal plaintexts look different
    for counter, frame in enumerate(frames):
        assert len(frame) == len(b"same text") + MAC_BYTES
        assert frame == SecretBox(KEY_A).encrypt(b"same text", nonce_for(counter)).ciphertext
    assert nonce_for(1) == b"\x01" + bytes(23)
    assert nonce_for(2**64 - 1) == b"\xff" * 8 + bytes(16)


def test_replayed_frame_is_refused() -> None:
    alice, bob = pair()
    frame = alice.seal(b"pay 10")
    assert bob.open(frame) == b"pay 10"
    with pytest.raises(FrameError, match="frame 1 does not open"):
        bob.open(frame)


def test_reordered_frames_are_refused() -> None:
    alice, bob = pair()
    first, second = alice.seal(b"one"), alice.seal(b"two")
    with pytest.raises(FrameError, match="frame 0 does not open"):
        bob.open(second)
    with pytest.raises(FrameError, match="session closed"):
        bob.open(first)


def test_dropped_frame_delivered_later_is_refused() -> None:
    alice, bob = pair()
    dropped, after = alice.seal(b"one"), alice.seal(b"two")
    with pytest.raises(FrameError, match="frame 0 does not open"):
        bob.open(after)  # frame 1 where frame 0 was due: the gap is noticed at once
    with pytest.raises(FrameError, match="session closed"):
        bob.open(dropped)


@pytest.mark.parametrize("cut", [1, MAC_BYTES, 20])
def test_truncated_frame_is_refused(cut: int) -> None:
    alice, bob = pair()
    frame = alice.seal(b"a payload that is long enough")
    with pytest.raises(FrameError):
        bob.open(frame[:-cut])
    assert bob.closed


@pytest.mark.parametrize("frame", [b"", b"\x00" * (MAC_BYTES - 1)])
def test_frame_shorter_than_its_mac_is_refused(frame: bytes) -> None:
    _, bob = pair()
    with pytest.raises(FrameError, match="shorter than its MAC"):
        bob.open(frame)


def test_every_single_bit_flip_is_refused() -> None:
    frame = pair()[0].seal(b"hello")
    for position in range(len(frame)):
        for bit in range(8):
            tampered = bytearray(frame)
            tampered[position] ^= 1 << bit
            _, bob = pair()
            with pytest.raises(FrameError, match="does not open"):
                bob.open(bytes(tampered))
    assert pair()[1].open(frame) == b"hello"  # the untouched frame still opens


def test_appended_bytes_are_refused() -> None:
    alice, bob = pair()
    with pytest.raises(FrameError, match="does not open"):
        bob.open(alice.seal(b"hello") + b"\x00")


def test_our_own_frame_reflected_back_is_refused() -> None:
    alice, _ = pair()
    with pytest.raises(FrameError, match="does not open"):
        alice.open(alice.seal(b"echo"))


def test_frame_from_another_session_is_refused() -> None:
    other = Session(bytes(32), b"\x01" * 32)
    _, bob = pair()
    with pytest.raises(FrameError, match="does not open"):
        bob.open(other.seal(b"hello"))


def test_failure_closes_the_session_in_both_directions() -> None:
    alice, bob = pair()
    good = alice.seal(b"one")
    with pytest.raises(FrameError):
        bob.open(b"x" * 40)
    assert bob.closed
    assert bob.closed_reason is not None
    with pytest.raises(FrameError, match="session closed: frame 0 does not open"):
        bob.open(good)  # the right frame, but too late
    with pytest.raises(FrameError, match="session closed"):
        bob.seal(b"reply")


def test_oversized_plaintext_is_our_bug_and_consumes_nothing() -> None:
    alice, bob = pair()
    with pytest.raises(ValueError, match="MAX_FRAME_BYTES"):
        alice.seal(bytes(MAX_FRAME_BYTES + 1))
    assert not alice.closed
    assert bob.open(alice.seal(b"next")) == b"next"  # still frame 0


def test_largest_frame_opens() -> None:
    alice, bob = pair()
    frame = alice.seal(bytes(MAX_FRAME_BYTES))
    assert len(frame) == MAX_SEALED_FRAME_BYTES
    assert bob.open(frame) == bytes(MAX_FRAME_BYTES)


def test_oversized_frame_from_the_peer_is_refused() -> None:
    _, bob = pair()
    with pytest.raises(FrameError, match="exceeds the limit"):
        bob.open(bytes(MAX_SEALED_FRAME_BYTES + 1))
    assert bob.closed


def test_send_counter_exhaustion_closes_the_session() -> None:
    alice, bob = pair(counter_limit=3)
    for index in range(3):
        assert bob.open(alice.seal(bytes([index]))) == bytes([index])
    with pytest.raises(FrameError, match="send counter exhausted"):
        alice.seal(b"one too many")
    assert alice.closed
    with pytest.raises(FrameError, match="session closed"):
        alice.open(bob.seal(b"reply"))


def test_receive_counter_exhaustion_closes_the_session() -> None:
    alice = Session(KEY_A, KEY_B, counter_limit=4)
    bob = Session(KEY_B, KEY_A, counter_limit=3)
    frames = [alice.seal(bytes([index])) for index in range(4)]
    for frame in frames[:3]:
        bob.open(frame)
    with pytest.raises(FrameError, match="receive counter exhausted"):
        bob.open(frames[3])


def test_nothing_readable_on_the_wire() -> None:
    alice, bob = pair()
    payload = b"peer abcdefghijklmnop says: the secret plan is ready"
    frame = alice.seal(payload)
    for needle in (payload, b"abcdefghijklmnop", b"secret plan", KEY_A, KEY_B):
        assert needle not in frame
    assert KEY_A.hex() not in repr(alice)
    assert str(list(KEY_A)) not in repr(alice)
    assert bob.open(frame) == payload


@pytest.mark.parametrize(
    ("send_key", "recv_key"),
    [(KEY_A, KEY_A), (KEY_A, b"short"), (b"", KEY_B)],
)
def test_bad_keys_are_our_bug(send_key: bytes, recv_key: bytes) -> None:
    with pytest.raises(ValueError, match="key"):
        Session(send_key, recv_key)


@given(st.lists(st.binary(max_size=200), max_size=8))
def test_arbitrary_bytes_only_ever_raise_frame_error(inputs: list[bytes]) -> None:
    _, bob = pair()
    for data in inputs:
        with pytest.raises(FrameError):
            bob.open(data)


@given(
    st.lists(st.binary(max_size=64), min_size=1, max_size=6),
    st.lists(st.integers(min_value=0, max_value=5), max_size=10),
)
def test_delivering_frames_out_of_order_never_yields_a_wrong_plaintext(
    plaintexts: list[bytes], order: list[int]
) -> None:
    alice, bob = pair()
    frames = [alice.seal(text) for text in plaintexts]
    expected: int | None = 0  # the next frame bob may open; None once closed
    for index in order:
        if index >= len(frames):
            continue
        if index != expected:
            with pytest.raises(FrameError):
                bob.open(frames[index])
            assert bob.closed
            expected = None
            continue
        assert bob.open(frames[index]) == plaintexts[index]
        expected = index + 1
