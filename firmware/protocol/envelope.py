"""The signed envelope: `{"v": 1, "kid": "<key id>", "payload": "<b64url payload bytes>", "sig": "<b64url
Ed25519 signature over exactly those payload bytes>"}` (padding-less base64url).

The signature covers the payload *bytes*, never a re-serialisation: no canonical-JSON rules to agree on.
`open_envelope` is shared by alerts, schedules and commands; it checks, in order: size, JSON, shape, version,
key id, base64url, signature, and (when a scope is given) that the key may sign for that scope.
"""

from __future__ import annotations

import json

from cryptography.exceptions import InvalidSignature

from firmware.protocol.b64 import b64url_decode, b64url_encode
from firmware.protocol.errors import Rejected
from firmware.protocol.keys import SigningKey, TrustAnchor, TrustedKeys
from firmware.protocol.topics import Scope

VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
ENVELOPE_FIELDS = frozenset({"v", "kid", "payload", "sig"})


def seal(payload: bytes, key: SigningKey) -> bytes:
    """Sign `payload` and wrap it: the bytes to publish."""
    envelope = {
        "v": VERSION,
        "kid": key.kid,
        "payload": b64url_encode(payload),
        "sig": b64url_encode(key.sign(payload)),
    }
    return json.dumps(envelope, separators=(",", ":")).encode("ascii")


def _reject_duplicate_keys(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k!r}")
        seen[k] = v
    return seen


def parse_json_object(raw: bytes, what: str):
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity. Raises ValueError."""
    text = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError

    def no_constants(name):
        raise ValueError(f"{what}: {name} is not JSON")

    return json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=no_constants)


def open_verified(
    raw: bytes, trusted_keys: TrustedKeys, *, scope: Scope | None = None, max_bytes: int = MAX_MESSAGE_BYTES
) -> tuple[bytes, TrustAnchor]:
    """Like `open_envelope`, also returning the trust anchor that verified it."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise Rejected("bad-envelope", f"message is {type(raw).__name__}, not bytes")
    raw = bytes(raw)
    if len(raw) > max_bytes:
        raise Rejected("oversize", f"message is {len(raw)} bytes, limit {max_bytes}")
    try:
        env = parse_json_object(raw, "envelope")
    except (ValueError, RecursionError) as e:
        raise Rejected("not-json", f"envelope is not UTF-8 JSON: {str(e)[:120]}") from None
    if not isinstance(env, dict):
        raise Rejected("bad-envelope", f"envelope is a JSON {type(env).__name__}, not an object")
    if set(env) != ENVELOPE_FIELDS:
        missing = sorted(ENVELOPE_FIELDS - set(env))
        extra = sorted(set(env) - ENVELOPE_FIELDS)
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(e[:40] for e in extra[:5])}"] if extra else []
        )
        raise Rejected("bad-envelope", f"envelope fields: {'; '.join(parts)}")
    v = env["v"]
    if type(v) is not int:
        raise Rejected("bad-envelope", f"envelope v is {type(v).__name__}, not an integer")
    if v != VERSION:
        raise Rejected(
            "bad-version", f"envelope version {v} is not supported (this station speaks v{VERSION})"
        )
    for field in ("kid", "payload", "sig"):
        if not isinstance(env[field], str):
            raise Rejected("bad-envelope", f"envelope {field} is {type(env[field]).__name__}, not a string")
    kid = env["kid"]
    anchor = trusted_keys.get(kid)
    if anchor is None:
        raise Rejected("unknown-key", f"key {kid[:80]!r} is not a trusted key of this station")
    try:
        payload = b64url_decode(env["payload"])
    except ValueError as e:
        raise Rejected("bad-base64", f"payload: {e}") from None
    try:
        sig = b64url_decode(env["sig"])
    except ValueError as e:
        raise Rejected("bad-base64", f"sig: {e}") from None
    if len(sig) != 64:
        raise Rejected("bad-signature", f"signature is {len(sig)} bytes, an Ed25519 signature is 64")
    try:
        anchor.public_key.verify(sig, payload)
    except InvalidSignature:
        raise Rejected("bad-signature", f"signature does not verify with key {kid}") from None
    if scope is not None and anchor.district is not None and anchor.district != scope.district:
        raise Rejected(
            "key-not-for-scope",
            f"key {kid} signs for district {anchor.district}, not {scope.district}",
            signed=True,
        )
    return payload, anchor


def open_envelope(
    raw: bytes, trusted_keys: TrustedKeys, *, scope: Scope | None = None, max_bytes: int = MAX_MESSAGE_BYTES
) -> bytes:
    """Verify a signed envelope and return the exact payload bytes that were signed. Raises `Rejected`.

    `scope`: the scope of the topic it arrived on; when given, a key restricted to another district is refused.
    """
    payload, _ = open_verified(raw, trusted_keys, scope=scope, max_bytes=max_bytes)
    return payload
