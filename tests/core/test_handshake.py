"""The handshake with real crypto: who may connect, what fails and why, what leaks.

Hostile messages are built by ``forge_msg2`` / ``forge_msg3`` from the protocol
as the module docstring states it, so an attacker here holds exactly what a
real one would (the workspace secret, when testing a member gone bad).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base
from nacl.encoding import RawEncoder
from nacl.hash import blake2b
from nacl.secret import SecretBox

from worksync_p2p.core.frames import FrameError, Session
from worksync_p2p.core.handshake import (
    MAX_HANDSHAKE_BYTES,
    MSG1_BYTES,
    MSG2_BYTES,
    MSG3_BYTES,
    HandshakeError,
    Initiator,
    Responder,
)
from worksync_p2p.identity import Identity, workspace_tag

ALICE = Identity.from_seed(b"\x0a" * 32)  # initiator
BOB = Identity.from_seed(b"\x0b" * 32)  # responder
MALLORY = Identity.from_seed(b"\x0c" * 32)  # a member (holds the secret) turned hostile
SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
LOW_ORDER_POINT = bytes(32)  # X25519 of anything with it is all zeros


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def allow_all(peer_id: str) -> bool:
    return True


@dataclass
class Gate:
    """An ``is_allowed`` that records what it was asked."""

    refused: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)

    def __call__(self, peer_id: str) -> bool:
        self.asked.append(peer_id)
        return peer_id not in self.refused


def initiator(
    secret: bytes = SECRET, seed: int = 1, allowed: Callable[[str], bool] = allow_all
) -> Initiator:
    return Initiator(ALICE, secret, seeded(seed), allowed)


def responder(
    secret: bytes = SECRET, seed: int = 2, allowed: Callable[[str], bool] = allow_all
) -> Responder:
    return Responder(BOB, secret, seeded(seed), allowed)


def only(messages: list[bytes]) -> bytes:
    assert len(messages) == 1
    return messages[0]


def handshake(alice: Initiator, bob: Responder) -> tuple[bytes, bytes, bytes]:
    msg1 = alice.start()
    msg2 = only(bob.receive(msg1))
    msg3 = only(alice.receive(msg2))
    assert bob.receive(msg3) == []
    return msg1, msg2, msg3


def sessions(alice: Initiator, bob: Responder) -> tuple[Session, Session]:
    assert alice.session is not None
    assert bob.session is not None
    return alice.session, bob.session


def flip(data: bytes, position: int) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 0x01
    return bytes(changed)


# -- the protocol as the module docstring states it, written again independently --


def mix_hash(h: bytes, data: bytes) -> bytes:
    return blake2b(h + data, digest_size=32, person=b"wsy1-hash", encoder=RawEncoder)


def initial_hash() -> bytes:
    return mix_hash(b"", b"worksync-p2p XXpsk v1")


def derive_key(psk: bytes, dh: bytes, h: bytes, label: bytes) -> bytes:
    return blake2b(h + dh, digest_size=32, key=psk, person=label, encoder=RawEncoder)


def forge_msg2(
    msg1: bytes,
    ephemeral_secret: bytes,
    payload_for: Callable[[bytes], bytes],
    secret: bytes = SECRET,
) -> bytes:
    """A msg2 whose sealed payload is ``payload_for(h2a)``."""
    e_r = crypto_scalarmult_base(ephemeral_secret)
    dh = crypto_scalarmult(ephemeral_secret, msg1[-32:])
    h2a = mix_hash(mix_hash(initial_hash(), msg1), e_r)
    k2 = derive_key(secret, dh, h2a, b"wsy1-msg2")
    return e_r + SecretBox(k2).encrypt(payload_for(h2a), bytes(24)).ciphertext


def forge_msg3(
    msg2: bytes,
    h1: bytes,
    ephemeral_secret: bytes,
    payload_for: Callable[[bytes], bytes],
    secret: bytes = SECRET,
) -> bytes:
    """A msg3 whose sealed payload is ``payload_for(h2)``, from the initiator's ephemeral."""
    e_r, c2 = msg2[:32], msg2[32:]
    dh = crypto_scalarmult(ephemeral_secret, e_r)
    h2 = mix_hash(mix_hash(h1, e_r), c2)
    k3 = derive_key(secret, dh, h2, b"wsy1-msg3")
    return SecretBox(k3).encrypt(payload_for(h2), bytes(24)).ciphertext


def signed_by(claimed: Identity, signer: Identity, label: bytes) -> Callable[[bytes], bytes]:
    return lambda h: claimed.verify_key + signer.sign(label + h)


def first_ephemeral(seed: int) -> bytes:
    """The ephemeral secret a handshake object seeded with ``seed`` draws first."""
    return seeded(seed)(32)


# -- the happy path --------------------------------------------------------------


def test_handshake_gives_matching_sessions_and_peer_ids() -> None:
    alice_gate, bob_gate = Gate(), Gate()
    alice, bob = initiator(allowed=alice_gate), responder(allowed=bob_gate)
    assert not alice.done
    assert not bob.done
    assert alice.session is None
    msg1, msg2, msg3 = handshake(alice, bob)
    assert (len(msg1), len(msg2), len(msg3)) == (MSG1_BYTES, MSG2_BYTES, MSG3_BYTES)
    assert alice.done
    assert bob.done
    assert alice.peer_id == BOB.peer_id
    assert bob.peer_id == ALICE.peer_id
    assert alice_gate.asked == [BOB.peer_id]
    assert bob_gate.asked == [ALICE.peer_id]
    ours, theirs = sessions(alice, bob)
    for index in range(3):
        assert theirs.open(ours.seal(b"a->b %d" % index)) == b"a->b %d" % index
        assert ours.open(theirs.seal(b"b->a %d" % index)) == b"b->a %d" % index


def test_two_handshakes_between_the_same_peers_give_unrelated_sessions() -> None:
    first, second = (initiator(seed=1), responder(seed=2)), (initiator(seed=3), responder(seed=4))
    handshake(*first)
    handshake(*second)
    first_alice, _ = sessions(*first)
    _, second_bob = sessions(*second)
    with pytest.raises(FrameError, match="does not open"):
        second_bob.open(first_alice.seal(b"cross-session"))


def test_session_keys_follow_the_documented_derivation() -> None:
    # Pins the key schedule of the module docstring, DH term included: whoever
    # recorded the transcript and holds the secret still lacks ``dh``.
    alice, bob = initiator(seed=1), responder(seed=2)
    msg1, msg2, msg3 = handshake(alice, bob)
    dh = crypto_scalarmult(first_ephemeral(1), msg2[:32])
    assert dh == crypto_scalarmult(first_ephemeral(2), msg1[-32:])
    h3 = mix_hash(mix_hash(mix_hash(mix_hash(initial_hash(), msg1), msg2[:32]), msg2[32:]), msg3)
    i2r = derive_key(SECRET, dh, h3, b"wsy1-i2r")
    r2i = derive_key(SECRET, dh, h3, b"wsy1-r2i")
    ours, theirs = sessions(alice, bob)
    assert Session(r2i, i2r).open(ours.seal(b"to bob")) == b"to bob"
    assert Session(i2r, r2i).open(theirs.seal(b"to alice")) == b"to alice"
    without_dh = derive_key(SECRET, bytes(32), h3, b"wsy1-i2r")
    with pytest.raises(FrameError):
        Session(r2i, without_dh).open(ours.seal(b"again"))


def test_msg1_carries_only_magic_version_and_an_ephemeral_key() -> None:
    msg1 = initiator(seed=7).start()
    assert msg1 == b"WSY1" + b"\x00\x01" + crypto_scalarmult_base(first_ephemeral(7))


def test_same_randomness_gives_a_byte_identical_transcript() -> None:
    def transcript(seed_i: int, seed_r: int) -> list[bytes]:
        alice, bob = initiator(seed=seed_i), responder(seed=seed_r)
        messages = list(handshake(alice, bob))
        ours, theirs = sessions(alice, bob)
        return [*messages, ours.seal(b"hello"), theirs.seal(b"world")]

    assert transcript(5, 6) == transcript(5, 6)
    different = transcript(5, 7)
    assert different[0] == transcript(5, 6)[0]  # same initiator randomness: same msg1
    assert all(a != b for a, b in zip(different[1:], transcript(5, 6)[1:], strict=True))


def test_nothing_readable_on_the_wire() -> None:
    alice, bob = initiator(), responder()
    wire = list(handshake(alice, bob))
    ours, theirs = sessions(alice, bob)
    payload = f"item text from {ALICE.peer_id} to {BOB.peer_id}".encode()
    wire += [ours.seal(payload), theirs.seal(payload)]
    needles = [
        ALICE.peer_id.encode(),
        BOB.peer_id.encode(),
        ALICE.verify_key,
        BOB.verify_key,
        SECRET,
        workspace_tag(SECRET).encode(),
        bytes.fromhex(workspace_tag(SECRET)),
        payload,
        b"item text",
    ]
    for message in wire:
        for needle in needles:
            assert needle not in message
    assert wire[0][:6] == b"WSY1\x00\x01"  # the only readable bytes of the whole exchange
    assert all(b"WSY1" not in message for message in wire[1:])


# -- who may connect -----------------------------------------------------------------


def test_wrong_secret_is_refused_by_the_initiator() -> None:
    alice, bob = initiator(secret=OTHER_SECRET), responder()
    msg2 = only(bob.receive(alice.start()))
    with pytest.raises(HandshakeError, match="msg2 does not decrypt: wrong workspace secret"):
        alice.receive(msg2)
    assert not alice.done
    assert alice.session is None
    assert alice.peer_id is None


def test_wrong_secret_is_refused_by_the_responder() -> None:
    # An initiator without the secret cannot open msg2, so it can only guess msg3:
    # here a well-formed one, correctly signed, sealed under its own secret.
    alice, bob = initiator(secret=OTHER_SECRET, seed=1), responder()
    msg1 = alice.start()
    msg2 = only(bob.receive(msg1))
    h1 = mix_hash(initial_hash(), msg1)
    sign = signed_by(ALICE, ALICE, b"wsy1 initiator")
    msg3 = forge_msg3(msg2, h1, first_ephemeral(1), sign, secret=OTHER_SECRET)
    with pytest.raises(HandshakeError, match="msg3 does not decrypt: wrong workspace secret"):
        bob.receive(msg3)
    assert not bob.done
    assert bob.session is None
    assert bob.peer_id is None


def test_forged_msg3_with_the_right_secret_is_accepted() -> None:
    # The control for the forgeries above and below: the builder follows the protocol.
    alice, bob = initiator(seed=1), responder()
    msg1 = alice.start()
    msg2 = only(bob.receive(msg1))
    h1 = mix_hash(initial_hash(), msg1)
    sign = signed_by(ALICE, ALICE, b"wsy1 initiator")
    assert bob.receive(forge_msg3(msg2, h1, first_ephemeral(1), sign)) == []
    assert bob.peer_id == ALICE.peer_id


def test_revoked_responder_is_refused_and_learns_nothing_of_us() -> None:
    alice = initiator(allowed=Gate(refused={BOB.peer_id}))
    msg2 = only(responder().receive(alice.start()))
    with pytest.raises(HandshakeError, match=f"peer {BOB.peer_id} is not allowed"):
        alice.receive(msg2)  # raises instead of returning msg3: our identity is never sent
    assert alice.session is None


def test_revoked_initiator_is_refused() -> None:
    alice, bob = initiator(), responder(allowed=Gate(refused={ALICE.peer_id}))
    msg2 = only(bob.receive(alice.start()))
    msg3 = only(alice.receive(msg2))
    with pytest.raises(HandshakeError, match=f"peer {ALICE.peer_id} is not allowed"):
        bob.receive(msg3)
    assert not bob.done
    assert bob.session is None
    assert bob.peer_id is None


# -- forged identities ----------------------------------------------------------------


def test_msg2_claiming_someone_elses_key_is_refused() -> None:
    alice = initiator()
    msg1 = alice.start()
    msg2 = forge_msg2(msg1, b"\x99" * 32, signed_by(BOB, MALLORY, b"wsy1 responder"))
    with pytest.raises(HandshakeError, match="msg2 identity signature is invalid"):
        alice.receive(msg2)


def test_msg2_with_a_signature_recorded_from_another_handshake_is_refused() -> None:
    # Mallory dials Bob and learns his signature over that handshake's transcript...
    mallory = Initiator(MALLORY, SECRET, seeded(50), allow_all)
    mallory_msg1 = mallory.start()
    recorded: list[bytes] = []
    bob_msg2 = only(responder(seed=51).receive(mallory_msg1))
    h2a = mix_hash(mix_hash(initial_hash(), mallory_msg1), bob_msg2[:32])
    dh = crypto_scalarmult(first_ephemeral(50), bob_msg2[:32])
    k2 = derive_key(SECRET, dh, h2a, b"wsy1-msg2")
    recorded.append(SecretBox(k2).decrypt(bob_msg2[32:], bytes(24)))
    # ...then answers Alice as Bob, replaying it (she cannot forge a fresh one).
    alice = initiator()
    msg2 = forge_msg2(alice.start(), b"\x99" * 32, lambda h: recorded[0])
    with pytest.raises(HandshakeError, match="msg2 identity signature is invalid"):
        alice.receive(msg2)


def test_msg2_signed_with_the_initiator_label_is_refused() -> None:
    alice = initiator()
    msg2 = forge_msg2(alice.start(), b"\x99" * 32, signed_by(BOB, BOB, b"wsy1 initiator"))
    with pytest.raises(HandshakeError, match="msg2 identity signature is invalid"):
        alice.receive(msg2)


def test_honest_forge_of_msg2_is_accepted() -> None:
    alice = initiator()
    msg2 = forge_msg2(alice.start(), b"\x99" * 32, signed_by(MALLORY, MALLORY, b"wsy1 responder"))
    only(alice.receive(msg2))
    assert alice.peer_id == MALLORY.peer_id  # a member is who she says she is, no more


def test_msg3_claiming_someone_elses_key_is_refused() -> None:
    alice, bob = initiator(seed=1), responder()
    msg1 = alice.start()
    msg2 = only(bob.receive(msg1))
    h1 = mix_hash(initial_hash(), msg1)
    forged = forge_msg3(msg2, h1, first_ephemeral(1), signed_by(ALICE, MALLORY, b"wsy1 initiator"))
    with pytest.raises(HandshakeError, match="msg3 identity signature is invalid"):
        bob.receive(forged)


# -- tampering, truncation, garbage, order ----------------------------------------


@pytest.mark.parametrize("position", [0, 31, 32, 100, MSG2_BYTES - 1])
def test_tampered_msg2_is_refused(position: int) -> None:
    alice = initiator()
    msg2 = only(responder().receive(alice.start()))
    with pytest.raises(HandshakeError, match="msg2 does not decrypt"):
        alice.receive(flip(msg2, position))


@pytest.mark.parametrize("position", [0, 16, 50, MSG3_BYTES - 1])
def test_tampered_msg3_is_refused(position: int) -> None:
    alice, bob = initiator(), responder()
    msg3 = only(alice.receive(only(bob.receive(alice.start()))))
    with pytest.raises(HandshakeError, match="msg3 does not decrypt"):
        bob.receive(flip(msg3, position))


def test_tampered_ephemeral_in_msg1_is_caught_by_the_initiator() -> None:
    alice, bob = initiator(), responder()
    msg2 = only(bob.receive(flip(alice.start(), 20)))  # Bob cannot tell...
    with pytest.raises(HandshakeError, match="msg2 does not decrypt"):
        alice.receive(msg2)  # ...but the transcripts differ, so Alice can


def test_truncated_messages_are_refused() -> None:
    alice, bob = initiator(), responder()
    msg1 = alice.start()
    with pytest.raises(HandshakeError, match="msg1 is 37 bytes, expected 38"):
        responder().receive(msg1[:-1])
    msg2 = only(bob.receive(msg1))
    with pytest.raises(HandshakeError, match="msg2 is 143 bytes, expected 144"):
        _started(initiator()).receive(msg2[:-1])
    msg3 = only(alice.receive(msg2))
    with pytest.raises(HandshakeError, match="msg3 is 111 bytes, expected 112"):
        bob.receive(msg3[:-1])


def _started(alice: Initiator) -> Initiator:
    alice.start()
    return alice


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (b"", "msg1 is 0 bytes, expected 38"),
        (b"WS", "msg1 is 2 bytes, expected 38"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad magic"),
        (bytes(range(MSG1_BYTES)), "bad magic"),
        (b"WSY2\x00\x01" + bytes(32), "bad magic"),
        (b"WSY1\x00\x02" + bytes(32), "unsupported protocol version 2 (we speak 1)"),
        (b"WSY1\x00\x00" + bytes(40), "unsupported protocol version 0"),
        (b"WSY1\x00\x01" + bytes(31), "msg1 is 37 bytes"),
        (b"WSY1\x00\x01" + LOW_ORDER_POINT, "low-order point"),
        (b"WSY1" + bytes(MAX_HANDSHAKE_BYTES), "exceeds the limit"),
    ],
)
def test_bad_msg1_is_refused_with_its_reason(garbage: bytes, reason: str) -> None:
    bob = responder()
    with pytest.raises(HandshakeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        bob.receive(garbage)
    assert bob.failure is not None
    assert reason in bob.failure


def test_low_order_ephemeral_in_msg2_is_refused() -> None:
    alice = _started(initiator())
    with pytest.raises(HandshakeError, match="low-order point"):
        alice.receive(LOW_ORDER_POINT + bytes(MSG2_BYTES - 32))


def test_oversized_message_is_refused_by_the_initiator() -> None:
    alice = _started(initiator())
    with pytest.raises(HandshakeError, match="exceeds the limit"):
        alice.receive(bytes(MAX_HANDSHAKE_BYTES + 1))


def test_messages_out_of_order_are_refused() -> None:
    with pytest.raises(HandshakeError, match="has not started"):
        initiator().receive(bytes(MSG2_BYTES))
    alice, bob = initiator(), responder()
    msg1 = alice.start()
    with pytest.raises(HandshakeError, match="got a msg1 where msg2 was expected"):
        _started(initiator()).receive(msg1)
    msg2 = only(bob.receive(msg1))
    with pytest.raises(HandshakeError, match="got a msg3 where msg2 was expected"):
        _started(initiator()).receive(msg2[:MSG3_BYTES])
    with pytest.raises(HandshakeError, match="got a msg1 where msg3 was expected"):
        bob.receive(msg1)
    assert bob.failure is not None


def test_input_after_completion_is_refused() -> None:
    alice, bob = initiator(), responder()
    _msg1, msg2, msg3 = handshake(alice, bob)
    with pytest.raises(HandshakeError, match="already complete"):
        alice.receive(msg2)
    with pytest.raises(HandshakeError, match="already complete"):
        bob.receive(msg3)
    assert alice.done
    assert bob.done


def test_a_failed_handshake_refuses_everything_after() -> None:
    alice, bob = initiator(), responder()
    msg1 = alice.start()
    with pytest.raises(HandshakeError):
        bob.receive(b"junk")
    with pytest.raises(HandshakeError, match="already failed: msg1 has a bad magic"):
        bob.receive(msg1)  # even a valid msg1


def test_replayed_msg1_gets_a_fresh_ephemeral_and_cannot_complete() -> None:
    alice, bob = initiator(), responder(seed=2)
    msg1, msg2, msg3 = handshake(alice, bob)
    replay_target = responder(seed=3)  # another connection, fresh randomness
    replayed_msg2 = only(replay_target.receive(msg1))
    assert replayed_msg2[:32] != msg2[:32]
    assert replayed_msg2 != msg2
    with pytest.raises(HandshakeError, match="msg3 does not decrypt"):
        replay_target.receive(msg3)  # the recorded msg3 is bound to the old transcript


def test_misuse_is_our_bug() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Initiator(ALICE, b"short", seeded(1), allow_all)
    alice = initiator()
    alice.start()
    with pytest.raises(RuntimeError, match="twice"):
        alice.start()
    with pytest.raises(ValueError, match="random_bytes"):
        Initiator(ALICE, SECRET, lambda n: b"", allow_all).start()


# -- properties -----------------------------------------------------------------------

ROLES = ["fresh responder", "started initiator", "responder after msg1"]


def _at(role: str) -> Initiator | Responder:
    if role == "fresh responder":
        return responder()
    if role == "started initiator":
        return _started(initiator())
    bob = responder()
    bob.receive(initiator(seed=9).start())
    return bob


@given(st.sampled_from(ROLES), st.lists(st.binary(max_size=MSG2_BYTES + 8), max_size=5))
def test_arbitrary_bytes_only_ever_raise_handshake_error(role: str, inputs: list[bytes]) -> None:
    shake = _at(role)
    reasons = []
    for data in inputs:
        try:
            shake.receive(data)
        except HandshakeError as error:  # anything else fails the test
            reasons.append(error.reason)
    assert all(reason and "\n" not in reason for reason in reasons)


@given(
    st.sampled_from([0, 1, 2]),
    st.integers(min_value=0, max_value=MSG2_BYTES),
    st.integers(min_value=1, max_value=255),
    st.sampled_from(["xor", "truncate", "extend"]),
)
def test_any_change_to_any_message_is_detected(
    which: int, position: int, value: int, how: str
) -> None:
    honest = handshake(initiator(), responder())
    message = honest[which]
    if how == "xor":
        index = position % len(message)
        changed = message[:index] + bytes([message[index] ^ value]) + message[index + 1 :]
    elif how == "truncate":
        changed = message[: position % len(message)]
    else:
        changed = message + bytes([value])
    assert _failure_with(which, changed) is not None


def _failure_with(which: int, changed: bytes) -> str | None:
    """Run a handshake with message ``which`` replaced; the failure reason, if any."""
    alice, bob = initiator(), responder()
    try:
        msg1 = alice.start()
        msg2 = only(bob.receive(changed if which == 0 else msg1))
        msg3 = only(alice.receive(changed if which == 1 else msg2))
        bob.receive(changed if which == 2 else msg3)
    except HandshakeError as error:
        assert not (alice.done and bob.done)
        return error.reason
    return None
