"""The bad-input corpus: messages a station must refuse, each with the rejection code it must produce.

Built by a generator (signatures need a fresh key), deterministic otherwise. Each case carries the context it
is verified in (topic, seen ids, clock trust), so the same case runs directly through `verify_alert` and
through a real mosquitto.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from firmware.protocol.b64 import b64url_encode
from firmware.protocol.envelope import MAX_MESSAGE_BYTES
from tests.protocol.factory import (
    COMMUNE_TOPIC,
    DELETE,
    DISTRICT,
    DISTRICT_TOPIC,
    NOW,
    STATION_TOPIC,
    Keys,
    envelope,
    payload_bytes,
    payload_doc,
    signed,
)


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    code: str
    topic: str = COMMUNE_TOPIC
    seen: frozenset[str] = field(default_factory=frozenset)
    clock_trusted: bool = True
    last_trusted: datetime | None = None
    now: datetime = NOW


def _raw_env(**env) -> bytes:
    return json.dumps(env, separators=(",", ":")).encode()


def build(keys: Keys) -> list[Case]:
    k = keys.district
    good_payload = payload_bytes(payload_doc())
    good_b64 = b64url_encode(good_payload)
    good_sig = b64url_encode(k.sign(good_payload))
    good = signed(k)
    cases: list[Case] = []

    def add(name: str, raw: bytes, code: str, **ctx) -> None:
        cases.append(Case(name, raw, code, **ctx))

    def add_payload(name: str, code: str = "bad-payload", **overrides) -> None:
        add(name, signed(k, **overrides), code)

    # -- transport and JSON -------------------------------------------------------------------------------
    add("empty message", b"", "not-json")
    add("not utf-8", b"\xff\xfe\x00garbage", "not-json")
    add("truncated json", good[: len(good) // 2], "not-json")
    add("plain text", "Cảnh báo lũ! Sơ tán ngay.".encode(), "not-json")
    add("json with NaN", b'{"v":NaN,"kid":"x","payload":"","sig":""}', "not-json")
    add("duplicate envelope key", good[:-1] + b',"v":1}', "not-json")
    add("deeply nested json", b"[" * 30000 + b"]" * 30000, "not-json")
    add(
        "oversize envelope",
        _raw_env(v=1, kid=k.kid, payload=good_b64, sig=good_sig, pad="x" * MAX_MESSAGE_BYTES),
        "oversize",
    )
    big_text = "a" * (MAX_MESSAGE_BYTES * 3 // 4 + 100)
    add("oversize signed payload", envelope(payload_bytes(payload_doc(text=big_text)), k), "oversize")
    # -- envelope shape --------------------------------------------------------------------------------------
    add("json null", b"null", "bad-envelope")
    add("json array", b"[1,2,3]", "bad-envelope")
    add("json string", b'"hello"', "bad-envelope")
    add("json number", b"42", "bad-envelope")
    add("unsigned: bare alert payload", good_payload, "bad-envelope")
    add("unsigned: envelope without sig", envelope(good_payload, k, drop=("sig",)), "bad-envelope")
    add("envelope without kid", envelope(good_payload, k, drop=("kid",)), "bad-envelope")
    add("envelope without payload", envelope(good_payload, k, drop=("payload",)), "bad-envelope")
    add("envelope without v", envelope(good_payload, k, drop=("v",)), "bad-envelope")
    add("envelope with unknown field", envelope(good_payload, k, alg="none"), "bad-envelope")
    add("v as string", envelope(good_payload, k, v="1"), "bad-envelope")
    add("v as float", envelope(good_payload, k, v=1.0), "bad-envelope")
    add("v as bool", envelope(good_payload, k, v=True), "bad-envelope")
    add("kid as number", envelope(good_payload, k, kid=123), "bad-envelope")
    add("sig as null", envelope(good_payload, k, sig=None), "bad-envelope")
    add("payload as object", envelope(good_payload, k, payload=payload_doc()), "bad-envelope")
    add("version 2", envelope(good_payload, k, v=2), "bad-version")
    add("version 0", envelope(good_payload, k, v=0), "bad-version")
    # -- keys and signatures ---------------------------------------------------------------------------------
    add("unknown key id", envelope(good_payload, keys.untrusted), "unknown-key")
    add("empty key id", envelope(good_payload, k, kid=""), "unknown-key")
    add("key id of another system", envelope(good_payload, k, kid="../../etc/passwd"), "unknown-key")
    add(
        "payload with base64 padding",
        envelope(good_payload, k, payload=good_b64 + "=" * (-len(good_b64) % 4 or 4)),
        "bad-base64",
    )
    add(
        "payload in standard base64 alphabet",
        envelope(good_payload, k, payload="+/" + good_b64[2:]),
        "bad-base64",
    )
    add(
        "payload with impossible length",
        envelope(good_payload, k, payload=good_b64 + "A" * (5 - len(good_b64) % 4)),
        "bad-base64",
    )
    add("sig with padding", envelope(good_payload, k, sig=good_sig + "=="), "bad-base64")
    add("sig not base64", envelope(good_payload, k, sig="!!not-a-signature!!"), "bad-base64")
    add("sig too short", envelope(good_payload, k, sig=b64url_encode(b"\x01" * 32)), "bad-signature")
    add("sig all zeros", envelope(good_payload, k, sig=bytes(64)), "bad-signature")
    add("empty sig", envelope(good_payload, k, sig=b""), "bad-signature")
    add(
        "signed by untrusted key under a trusted kid",
        envelope(good_payload, keys.untrusted, kid=k.kid),
        "bad-signature",
    )
    tampered = payload_bytes(payload_doc(status="actual"))
    add(
        "tampered payload (status exercise -> actual)",
        envelope(tampered, k, sig=k.sign(good_payload)),
        "bad-signature",
    )
    add(
        "tampered payload (one byte)",
        envelope(good_payload[:-2] + b" }", k, sig=k.sign(good_payload)),
        "bad-signature",
    )
    add(
        "signature of the base64 text instead of the bytes",
        envelope(good_payload, k, sig=k.sign(good_b64.encode())),
        "bad-signature",
    )
    add("key of another district", signed(keys.other_district), "key-not-for-scope")
    # -- payload (correctly signed, still refused) -------------------------------------------------------------
    add("payload not json", envelope(b"not json at all", k), "bad-payload")
    add("payload not utf-8", envelope(b'{"id":"\xff"}', k), "bad-payload")
    add("payload json array", envelope(b'["alert"]', k), "bad-payload")
    add("payload duplicate key", envelope(good_payload[:-1] + b',"repeat":9}', k), "bad-payload")
    add_payload("missing id", id=DELETE)
    add_payload("missing target", target=DELETE)
    add_payload("unknown field", priority="high")
    add_payload("repeat as string", repeat="3")
    add_payload("repeat zero", repeat=0)
    add_payload("repeat eleven", repeat=11)
    add_payload("tone as string", tone="yes")
    add_payload("status draft", status="draft")
    add_payload("msg_type ack", msg_type="ack")
    add_payload("cancel without references", msg_type="cancel")
    add_payload("update without references", msg_type="update")
    add_payload("references not a list", msg_type="cancel", references="hv-2026-0000")
    add_payload("naive issued time", issued="2026-11-26T11:00:00")
    add_payload("issued as epoch seconds", issued=1795665600)
    add_payload("expires before issued", expires=(NOW - timedelta(minutes=1)).isoformat())
    add_payload("lifetime over a week", expires=(NOW + timedelta(days=8)).isoformat())
    add_payload("unknown severity", severity="catastrophic")
    add_payload("audio sha256 not hex", audio={"url": "https://cdn.example/a.ogg", "sha256": "z" * 64})
    add_payload("audio url not http", audio={"url": "file:///etc/shadow", "sha256": "a" * 64})
    add_payload(
        "audio with extra field", audio={"url": "https://cdn.example/a.ogg", "sha256": "a" * 64, "x": 1}
    )
    add_payload("id with a space", id="hv 2026")
    add_payload("id too long", id="a" * 200)
    add_payload("nothing to play", text="", audio=None)
    add_payload("target not a scope", target="Hoa Vang")
    add_payload("target too deep", target="hoa-vang/hoa-bac/tram-01/x")
    # -- meaning: where, when, how often ------------------------------------------------------------------
    add(
        "district-wide alert on a station topic",
        signed(k, target=DISTRICT),
        "wrong-target",
        topic=STATION_TOPIC,
    )
    add(
        "station alert on the district topic",
        signed(k, target=f"{DISTRICT}/hoa-bac/tram-01"),
        "wrong-target",
        topic=DISTRICT_TOPIC,
    )
    add("alert for another commune", signed(k, target=f"{DISTRICT}/hoa-ninh"), "wrong-target")
    add("replayed id", good, "replayed", seen=frozenset({"hv-2026-0001"}))
    add("expired", good, "expired", now=NOW + timedelta(minutes=31))
    add("expires exactly now", good, "expired", now=NOW + timedelta(minutes=30))
    add("issued ten minutes in the future", good, "future", now=NOW - timedelta(minutes=10))
    add(
        "untrusted clock, issued before the last trusted time",
        good,
        "clock-untrusted",
        clock_trusted=False,
        last_trusted=NOW + timedelta(seconds=1),
    )
    add("untrusted clock, no last trusted time", good, "clock-untrusted", clock_trusted=False)
    # -- topic --------------------------------------------------------------------------------------------
    add("alert envelope on a schedule topic", good, "bad-topic", topic=f"loa/v1/{DISTRICT}/schedule")
    add(
        "alert envelope on a status topic",
        good,
        "bad-topic",
        topic=f"loa/v1/{DISTRICT}/hoa-bac/tram-01/status",
    )
    add("topic of another protocol version", good, "bad-topic", topic=f"loa/v2/{DISTRICT}/alert")
    return cases
