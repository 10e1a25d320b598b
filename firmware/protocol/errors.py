"""Why an inbound message was refused: a machine code (stable, for acks, tests and dashboards) and a reason a
person can read (`"signature does not verify with key hoa-vang-20261126-3f9a1c2e"`)."""

from __future__ import annotations

from dataclasses import dataclass

# Every code `verify`/`open_envelope` can return, in the order the checks run (docs/protocol.md lists them).
CODES = (
    "bad-topic",  # the topic it arrived on is not an alert topic of Protocol v1
    "oversize",  # more than MAX_MESSAGE_BYTES
    "not-json",  # not UTF-8 JSON
    "bad-envelope",  # not {"v","kid","payload","sig"} with string values
    "bad-version",  # v is not 1
    "unknown-key",  # kid not among the trust anchors
    "bad-base64",  # payload or sig not padding-less base64url
    "bad-signature",  # Ed25519 signature does not verify over the payload bytes
    "key-not-for-scope",  # the key belongs to another district than the topic
    "bad-payload",  # payload bytes are not a valid alert document
    "wrong-target",  # payload target differs from the scope of the topic it arrived on
    "replayed",  # alert id already seen
    "clock-untrusted",  # clock not trusted and the alert is not newer than the last trusted time
    "expired",  # expires <= now
    "future",  # issued later than now + allowed skew
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused message. `ref` is the alert id when it could be read (untrusted unless the signature verified:
    `signed` says which), for the ack."""

    code: str
    reason: str
    ref: str | None = None
    signed: bool = False

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


class Rejected(Exception):
    """Raised by `open_envelope` and the payload parsers; carries the Rejection."""

    def __init__(self, code: str, reason: str, ref: str | None = None, signed: bool = False):
        super().__init__(f"{code}: {reason}")
        self.rejection = Rejection(code, reason, ref, signed)

    @property
    def code(self) -> str:
        return self.rejection.code
