"""Padding-less base64url (RFC 4648 section 5, no `=`), strict: anything else is refused."""

from __future__ import annotations

import base64
import binascii
import re

_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode padding-less base64url. Raises ValueError on padding, other alphabets, an impossible length, or
    non-zero trailing bits (so every byte string has exactly one accepted encoding)."""
    if not isinstance(text, str) or not _B64URL_RE.match(text):
        raise ValueError("not padding-less base64url (alphabet A-Z a-z 0-9 - _, no '=')")
    if len(text) % 4 == 1:
        raise ValueError(f"impossible base64url length {len(text)}")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as e:
        raise ValueError(f"not base64url: {e}") from None
    if b64url_encode(data) != text:
        raise ValueError("non-canonical base64url (trailing bits set)")
    return data
