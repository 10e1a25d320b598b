"""Hypothesis: mutations of a valid signed alert never verify, and verification never raises."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.protocol.b64 import b64url_decode, b64url_encode
from firmware.protocol.errors import CODES, Rejection
from firmware.protocol.verify import verify_alert
from tests.protocol.factory import COMMUNE_TOPIC, NOW, Keys, envelope, signed

KEYS = Keys()
VALID = signed(KEYS.district)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def verify(raw: bytes, topic: str = COMMUNE_TOPIC):
    return verify_alert(raw, topic, trusted_keys=KEYS.trusted, seen=set(), now=NOW, clock_trusted=True)


def assert_rejected(result) -> None:
    assert isinstance(result, Rejection), "a mutated message verified"
    assert result.code in CODES
    assert isinstance(result.reason, str) and result.reason


def test_the_unmutated_message_verifies():
    assert not isinstance(verify(VALID), Rejection)


@SETTINGS
@given(st.data())
def test_any_bit_flip_of_the_envelope_is_rejected(data):
    raw = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        pos = data.draw(st.integers(0, len(raw) - 1), label="byte")
        raw[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    if bytes(raw) != VALID:
        assert_rejected(verify(bytes(raw)))


@SETTINGS
@given(st.data())
def test_any_bit_flip_of_the_signed_payload_is_rejected(data):
    env = json.loads(VALID)
    payload = bytearray(b64url_decode(env["payload"]))
    pos = data.draw(st.integers(0, len(payload) - 1))
    payload[pos] ^= 1 << data.draw(st.integers(0, 7))
    env["payload"] = b64url_encode(bytes(payload))
    assert_rejected(verify(json.dumps(env).encode()))


@SETTINGS
@given(st.data())
def test_deleting_or_replacing_fields_is_rejected(data):
    env = json.loads(VALID)
    doc = json.loads(b64url_decode(env["payload"]))
    where = data.draw(st.sampled_from(["envelope", "payload"]))
    target = env if where == "envelope" else doc
    name = data.draw(st.sampled_from(sorted(target)))
    if data.draw(st.booleans(), label="delete"):
        del target[name]
    else:
        target[name] = data.draw(
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(),
                st.text(max_size=20),
                st.lists(st.integers(), max_size=2),
            )
        )
    if where == "payload":
        # The payload changed but the signature is the original one.
        env["payload"] = b64url_encode(json.dumps(doc, separators=(",", ":")).encode())
    raw = json.dumps(env).encode()
    if raw != VALID:
        assert_rejected(verify(raw))


@SETTINGS
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(raw):
    assert_rejected(verify(raw))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {"v": JSON, "kid": st.sampled_from([KEYS.district.kid, "x"]) | JSON, "payload": JSON, "sig": JSON}
    ),
    st.sampled_from([COMMUNE_TOPIC, "loa/v1/hoa-vang/alert", "loa/v1/x", "", "loa/v1/A/alert"]),
)
def test_arbitrary_envelope_shapes_never_raise(env, topic):
    assert_rejected(verify(json.dumps(env).encode(), topic))


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "id",
                "issued",
                "expires",
                "status",
                "msg_type",
                "references",
                "severity",
                "headline",
                "text",
                "audio",
                "tone",
                "repeat",
                "target",
                "extra",
            ]
        ),
        JSON,
    )
)
def test_arbitrary_signed_payloads_never_raise(doc):
    # Correctly signed by the trusted key: only the payload model stands between it and the speakers.
    raw = envelope(json.dumps(doc).encode(), KEYS.district)
    result = verify(raw)
    assert isinstance(result, Rejection)
