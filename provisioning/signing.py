"""District Ed25519 signing keys and the trust-anchor files stations hold.

This is the one place provisioning touches the key format. It uses `firmware.protocol.keys` when that module
exists (the protocol's own definition of key ids and trust-anchor files); until then a minimal local version
with the same shape: private key as PKCS#8 PEM (0600), trust anchor as SubjectPublicKeyInfo PEM, key id derived
from the public key bytes so it is stable and needs no registry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provisioning.fsutil import write_file, write_private

try:  # pragma: no cover - depends on whether the protocol helper has landed
    from firmware.protocol import keys as _protocol_keys
except ImportError:  # pragma: no cover - fall back to the local version below
    _protocol_keys = None


def backend() -> str:
    """Which implementation is in use: 'firmware.protocol.keys' or 'provisioning.signing (local)'."""
    return "firmware.protocol.keys" if _protocol_keys is not None else "provisioning.signing (local)"


def generate() -> Ed25519PrivateKey:
    if _protocol_keys is not None:
        return _protocol_keys.generate().private_key
    return Ed25519PrivateKey.generate()


def key_id(public_key: Ed25519PublicKey) -> str:
    if _protocol_keys is not None:
        return _protocol_keys.make_kid(public_key)
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519-" + hashlib.sha256(raw).hexdigest()[:16]


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_signing_key(key: Ed25519PrivateKey, directory: Path) -> str:
    """Write `<kid>.key` (0600) and its trust anchor `<kid>.pub`; return the key id."""
    kid = key_id(key.public_key())
    write_private(Path(directory) / f"{kid}.key", private_pem(key))
    write_file(Path(directory) / f"{kid}.pub", public_pem(key.public_key()))
    return kid


def load_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    return key
