"""District signing keys (Ed25519) and the stations' trust anchors.

Key id (`kid`): `ed25519-` + the first 16 hex digits of sha256(raw 32-byte public key), e.g.
`ed25519-3f9a1c2e0b7d4a65`. Derived from the key alone, so no registry or metadata can disagree with it; the
same scheme as `loa-provision`.

Signing key file `<kid>.key`: PKCS#8 PEM, unencrypted, mode 0600 (header lines before `-----BEGIN` are ignored).

Trust anchors, two accepted forms:
- `<kid>.pub`: SubjectPublicKeyInfo PEM (what `loa-provision` installs); trusted for every scope.
- `<kid>.json` (or any JSON file): `{"v": 1, "keys": [{"kid": "...", "alg": "Ed25519", "district": "hoa-vang",
  "public_key": "<padding-less base64url of the raw 32 bytes>"}]}`. `district` (optional, null = any) restricts
  what the key may sign: an envelope under `loa/v1/{other district}/...` is refused (`key-not-for-scope`).
In both forms the kid must equal the one derived from the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware.protocol.b64 import b64url_decode, b64url_encode
from firmware.protocol.topics import check_id

KID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


class KeyFileError(ValueError):
    """A key or trust-anchor file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    kid: str
    public_key: Ed25519PublicKey
    district: str | None = None

    def raw(self) -> bytes:
        return raw_public(self.public_key)

    def to_json(self) -> dict:
        return {
            "kid": self.kid,
            "alg": "Ed25519",
            "district": self.district,
            "public_key": b64url_encode(self.raw()),
        }


TrustedKeys = Mapping[str, TrustAnchor]


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey
    district: str | None = None

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    def anchor(self) -> TrustAnchor:
        return TrustAnchor(self.kid, self.private_key.public_key(), self.district)


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def make_kid(public_key: Ed25519PublicKey) -> str:
    return "ed25519-" + hashlib.sha256(raw_public(public_key)).hexdigest()[:16]


def generate(district: str | None = None) -> SigningKey:
    if district is not None:
        check_id(district, "district")
    private = Ed25519PrivateKey.generate()
    return SigningKey(make_kid(private.public_key()), private, district)


def signing_key_pem(key: SigningKey) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(anchor: TrustAnchor) -> bytes:
    return anchor.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` (never overwrite), write, fsync. Raises FileExistsError."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_signing_key(path: str | os.PathLike) -> SigningKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"signing key {path}: {e.strerror}") from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"signing key {path}: not an unencrypted PEM private key ({e})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"signing key {path}: not an Ed25519 key")
    return SigningKey(make_kid(private.public_key()), private)


def trust_anchor_json(anchors: Iterable[TrustAnchor]) -> bytes:
    doc = {"v": 1, "keys": [a.to_json() for a in anchors]}
    return (json.dumps(doc, indent=2) + "\n").encode()


def parse_trust_anchors(data: bytes, source: str = "trust anchors") -> dict[str, TrustAnchor]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise KeyFileError(f"{source}: not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("v") != 1 or not isinstance(doc.get("keys"), list):
        raise KeyFileError(f'{source}: expected {{"v": 1, "keys": [...]}}')
    anchors: dict[str, TrustAnchor] = {}
    for n, entry in enumerate(doc["keys"]):
        where = f"{source}: keys[{n}]"
        if not isinstance(entry, dict):
            raise KeyFileError(f"{where}: not an object")
        kid, alg, district, pub = (entry.get(k) for k in ("kid", "alg", "district", "public_key"))
        if not isinstance(kid, str) or not KID_RE.match(kid):
            raise KeyFileError(f"{where}: invalid kid {kid!r}")
        if alg != "Ed25519":
            raise KeyFileError(f"{where} ({kid}): alg must be Ed25519, not {alg!r}")
        if district is not None:
            try:
                check_id(district, "district")
            except ValueError as e:
                raise KeyFileError(f"{where} ({kid}): {e}") from None
        try:
            raw = b64url_decode(pub)
            if len(raw) != 32:
                raise ValueError(f"{len(raw)} bytes, expected 32")
            public = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as e:
            raise KeyFileError(f"{where} ({kid}): public_key: {e}") from None
        if kid != make_kid(public):
            raise KeyFileError(f"{where}: kid {kid} does not match its key (expected {make_kid(public)})")
        if kid in anchors:
            raise KeyFileError(f"{where}: duplicate kid {kid}")
        anchors[kid] = TrustAnchor(kid, public, district)
    return anchors


def _parse_pem_anchor(data: bytes, source: str) -> dict[str, TrustAnchor]:
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{source}: not a PEM public key ({e})") from None
    if not isinstance(public, Ed25519PublicKey):
        raise KeyFileError(f"{source}: not an Ed25519 public key")
    kid = make_kid(public)
    return {kid: TrustAnchor(kid, public, None)}


def load_trust_anchors(*paths: str | os.PathLike) -> dict[str, TrustAnchor]:
    """Merge trust-anchor files (JSON or SPKI PEM). Raises KeyFileError naming the file on any problem."""
    merged: dict[str, TrustAnchor] = {}
    for p in paths:
        try:
            data = Path(p).read_bytes()
        except OSError as e:
            raise KeyFileError(f"trust anchors {p}: {e.strerror}") from None
        if data.lstrip().startswith(b"-----BEGIN"):
            found = _parse_pem_anchor(data, f"trust anchor {p}")
        else:
            found = parse_trust_anchors(data, f"trust anchors {p}")
        for kid, anchor in found.items():
            if kid in merged and merged[kid].raw() != anchor.raw():
                raise KeyFileError(f"trust anchors {p}: kid {kid} already defined with another key")
            if kid in merged and anchor.district is None:
                continue  # the same key again without a restriction: the restricted form stays (stricter)
            if kid in merged and merged[kid].district not in (None, anchor.district):
                raise KeyFileError(f"trust anchors {p}: kid {kid} restricted to two districts")
            merged[kid] = anchor
    return merged
