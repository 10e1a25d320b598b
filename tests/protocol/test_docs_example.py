"""The worked example of docs/protocol.md is recomputed from the page itself, so the page cannot rot."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.core.alerts import Alert
from firmware.protocol.ack import ack_bytes
from firmware.protocol.alert import parse_alert_payload
from firmware.protocol.b64 import b64url_decode, b64url_encode
from firmware.protocol.envelope import seal
from firmware.protocol.keys import SigningKey, make_kid, parse_trust_anchors
from firmware.protocol.topics import Scope
from firmware.protocol.verify import verify_alert

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
BLOCK = re.compile(r"<!-- example:([a-z0-9-]+) -->\n```[a-z]*\n(.*?)\n```", re.S)


@pytest.fixture(scope="module")
def ex() -> dict[str, str]:
    blocks = dict(BLOCK.findall(DOC.read_text(encoding="utf-8")))
    assert {
        "seed",
        "private-pem",
        "trust-anchor",
        "payload",
        "payload-b64",
        "sig-b64",
        "envelope",
        "ack",
    } <= set(blocks)
    return blocks


def test_the_seed_the_pem_and_the_trust_anchor_are_one_key(ex):
    seed = b64url_decode(ex["seed"])
    assert seed == hashlib.sha256(b"loa docs example key: never trust it").digest()
    private = Ed25519PrivateKey.from_private_bytes(seed)
    pem = serialization.load_pem_private_key(ex["private-pem"].encode(), None)
    raw = serialization.Encoding.Raw
    assert pem.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()) == seed
    [anchor] = parse_trust_anchors(ex["trust-anchor"].encode()).values()
    assert anchor.raw() == private.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    assert anchor.kid == make_kid(private.public_key()) == "ed25519-da869dda6fd29719"


def test_payload_bytes_their_digest_base64url_and_signature(ex):
    payload = ex["payload"].encode("utf-8")
    text = DOC.read_text(encoding="utf-8")
    assert f"{len(payload)}\nbytes, SHA-256 `{hashlib.sha256(payload).hexdigest()}`" in text
    assert b64url_encode(payload) == ex["payload-b64"]
    private = Ed25519PrivateKey.from_private_bytes(b64url_decode(ex["seed"]))
    sig = b64url_decode(ex["sig-b64"])
    private.public_key().verify(sig, payload)  # raises if it does not verify
    assert private.sign(payload) == sig  # Ed25519 is deterministic


def test_the_envelope_is_what_seal_produces_and_a_station_accepts_it(ex):
    private = Ed25519PrivateKey.from_private_bytes(b64url_decode(ex["seed"]))
    key = SigningKey(make_kid(private.public_key()), private)
    assert seal(ex["payload"].encode(), key) == ex["envelope"].encode()
    env = json.loads(ex["envelope"])
    assert env == {"v": 1, "kid": key.kid, "payload": ex["payload-b64"], "sig": ex["sig-b64"]}
    anchors = parse_trust_anchors(ex["trust-anchor"].encode())
    now = datetime.fromisoformat("2026-11-26T10:30:02+07:00")
    alert = verify_alert(
        ex["envelope"].encode(),
        "loa/v1/hoa-vang/hoa-bac/alert",
        trusted_keys=anchors,
        seen=set(),
        now=now,
        clock_trusted=True,
    )
    assert isinstance(alert, Alert) and alert.id == "hoa-vang-20261126T103000-5e1f2a"
    ack = ack_bytes(alert.id, "received", station=Scope("hoa-vang", "hoa-bac", "tram-01"), at=now)
    assert json.loads(ack) == json.loads(ex["ack"])
    refused = {
        "wrong-target": dict(topic="loa/v1/hoa-vang/alert"),
        "expired": dict(now=datetime.fromisoformat("2026-11-26T11:00:00+07:00")),
        "replayed": dict(seen={alert.id}),
    }
    for code, change in refused.items():
        args = dict(topic="loa/v1/hoa-vang/hoa-bac/alert", trusted_keys=anchors, seen=set(), now=now)
        args.update(change)
        topic = args.pop("topic")
        assert verify_alert(ex["envelope"].encode(), topic, clock_trusted=True, **args).code == code


def test_the_cancel_example_is_a_valid_payload(ex):
    cancel = parse_alert_payload(ex["cancel-payload"].encode())
    assert cancel.msg_type == "cancel" and cancel.references == ["hoa-vang-20261126T103000-5e1f2a"]
