"""Test helpers: keys, payload documents and envelopes, built the way a district (or an attacker) would."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from firmware.protocol.b64 import b64url_encode
from firmware.protocol.keys import SigningKey, TrustAnchor, generate

ICT = timezone(timedelta(hours=7))
NOW = datetime(2026, 11, 26, 11, 0, tzinfo=ICT)
DISTRICT = "hoa-vang"
COMMUNE = "hoa-bac"
STATION = "tram-01"
DISTRICT_TOPIC = f"loa/v1/{DISTRICT}/alert"
COMMUNE_TOPIC = f"loa/v1/{DISTRICT}/{COMMUNE}/alert"
STATION_TOPIC = f"loa/v1/{DISTRICT}/{COMMUNE}/{STATION}/alert"


class Keys:
    """A trusted district key, a second trusted key restricted to another district, and an untrusted key."""

    def __init__(self) -> None:
        self.district = generate(DISTRICT)
        self.other_district = generate("dai-loc")
        self.untrusted = generate(DISTRICT)
        self.trusted: dict[str, TrustAnchor] = {
            self.district.kid: self.district.anchor(),
            self.other_district.kid: self.other_district.anchor(),
        }


def payload_doc(**overrides) -> dict:
    doc = {
        "id": "hv-2026-0001",
        "issued": NOW.isoformat(),
        "expires": (NOW + timedelta(minutes=30)).isoformat(),
        "status": "exercise",
        "msg_type": "alert",
        "references": [],
        "severity": "severe",
        "headline": "Lũ quét",
        "text": "Diễn tập: lũ quét ở thôn Tà Lang, người dân di chuyển lên vùng cao.",
        "tone": True,
        "repeat": 3,
        "target": f"{DISTRICT}/{COMMUNE}",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not DELETE}


DELETE = object()


def payload_bytes(doc: dict) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


SIGN = object()


def envelope(payload: bytes, key: SigningKey, /, *, sig=SIGN, drop: tuple[str, ...] = (), **over) -> bytes:
    """An envelope around `payload`. `sig`: SIGN (sign with `key`), bytes (encoded as given) or any JSON value
    (put as is). `over` replaces envelope fields by JSON values; `drop` removes fields."""
    if sig is SIGN:
        sig_value = b64url_encode(key.sign(payload))
    elif isinstance(sig, bytes):
        sig_value = b64url_encode(sig)
    else:
        sig_value = sig
    env = {"v": 1, "kid": key.kid, "payload": b64url_encode(payload), "sig": sig_value}
    env.update(over)
    for name in drop:
        env.pop(name)
    return json.dumps(env, separators=(",", ":")).encode()


def signed(key: SigningKey, **overrides) -> bytes:
    return envelope(payload_bytes(payload_doc(**overrides)), key)
