"""The alert payload: CAP 1.2 vocabulary as strict JSON, and its conversion to the core's `Alert`.

The payload is the UTF-8 JSON object that the envelope signs. Unknown fields, wrong types, naive times and
out-of-range values are refused; nothing is coerced (a "3" is not a repeat count).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from firmware.core.alerts import Alert
from firmware.protocol.envelope import parse_json_object
from firmware.protocol.errors import Rejected
from firmware.protocol.topics import Scope, TopicError

# Alert ids: CAP identifiers restricted to characters safe in logs, acks and file names.
ALERT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
AlertId = Annotated[str, StringConstraints(pattern=ALERT_ID_PATTERN)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

MAX_LIFETIME = timedelta(days=7)
MAX_REFERENCES = 16


class AudioRef(BaseModel):
    """Audio to play: fetched from `url` (http, https) and refused unless its sha256 matches."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2048)]
    sha256: Sha256Hex


class AlertPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: AlertId
    # Not strict: the (string-only, see below) ISO 8601 text is parsed into an aware datetime.
    issued: Annotated[AwareDatetime, Field(strict=False)]
    expires: Annotated[AwareDatetime, Field(strict=False)]
    status: Literal["actual", "exercise", "test"]
    msg_type: Literal["alert", "update", "cancel"]
    references: Annotated[list[AlertId], Field(max_length=MAX_REFERENCES)] = []
    severity: Literal["extreme", "severe", "moderate", "minor", "unknown"] = "unknown"
    headline: Annotated[str, StringConstraints(max_length=200)] = ""
    text: Annotated[str, StringConstraints(max_length=8000)] = ""
    audio: AudioRef | None = None
    tone: bool = True
    repeat: Annotated[int, Field(ge=1, le=10)] = 3
    target: str

    @field_validator("issued", "expires", mode="before")
    @classmethod
    def _iso_string(cls, v):
        # Times travel as ISO 8601 strings with an offset; numbers (epoch seconds) are refused.
        if not isinstance(v, str) or "T" not in v:
            raise ValueError(
                "must be an ISO 8601 date-time string with an offset, e.g. 2026-11-26T11:00:00+07:00"
            )
        return v

    @field_validator("target")
    @classmethod
    def _scope(cls, v: str) -> str:
        try:
            return str(Scope.parse(v))
        except TopicError as e:
            raise ValueError(str(e)) from None

    @model_validator(mode="after")
    def _consistent(self) -> AlertPayload:
        if self.expires <= self.issued:
            raise ValueError(
                f"expires {self.expires.isoformat()} is not after issued {self.issued.isoformat()}"
            )
        if self.expires - self.issued > MAX_LIFETIME:
            raise ValueError(f"lifetime {self.expires - self.issued} is longer than {MAX_LIFETIME}")
        if self.msg_type in ("update", "cancel") and not self.references:
            verb = {
                "update": "an update must reference the id of the alert it updates",
                "cancel": "a cancel must reference the id of the alert it cancels",
            }[self.msg_type]
            raise ValueError(verb)
        if self.msg_type == "alert" and self.references:
            raise ValueError("a new alert (msg_type alert) has no references; use update or cancel")
        if self.msg_type != "cancel" and not (self.text.strip() or self.audio):
            raise ValueError("an alert needs text or audio to play")
        if self.id in self.references:
            raise ValueError("an alert cannot reference itself")
        return self

    @property
    def scope(self) -> Scope:
        return Scope.parse(self.target)

    def to_bytes(self) -> bytes:
        """The payload bytes to sign: compact UTF-8 JSON (any valid JSON would do; the signature covers bytes)."""
        doc = self.model_dump(mode="json", exclude_none=True)
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def to_alert(self) -> Alert:
        return Alert(
            id=self.id,
            issued=self.issued,
            expires=self.expires,
            status=self.status,
            msg_type=self.msg_type,
            severity=self.severity,
            headline=self.headline,
            text=self.text,
            references=tuple(self.references),
            audio_url=self.audio.url if self.audio else None,
            audio_sha256=self.audio.sha256 if self.audio else None,
            tone=self.tone,
            repeat=self.repeat,
        )


def _best_effort_id(doc) -> str | None:
    if isinstance(doc, dict):
        ident = doc.get("id")
        if isinstance(ident, str) and len(ident) <= 128:
            return ident
    return None


def describe_errors(e: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in e.errors()[:limit]:
        loc = ".".join(str(x) for x in err["loc"]) or "payload"
        parts.append(f"{loc}: {err['msg']}")
    more = e.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def parse_alert_payload(payload: bytes, *, signed: bool = True) -> AlertPayload:
    """Parse the signed payload bytes into an AlertPayload. Raises Rejected("bad-payload")."""
    try:
        doc = parse_json_object(payload, "payload")
    except (ValueError, RecursionError) as e:
        raise Rejected("bad-payload", f"payload is not UTF-8 JSON: {str(e)[:120]}", signed=signed) from None
    ref = _best_effort_id(doc)
    if not isinstance(doc, dict):
        raise Rejected("bad-payload", f"payload is a JSON {type(doc).__name__}, not an object", signed=signed)
    try:
        return AlertPayload.model_validate(doc)
    except ValidationError as e:
        raise Rejected("bad-payload", describe_errors(e), ref=ref, signed=signed) from None


def new_alert_payload(
    *,
    id: str,
    issued: datetime,
    expires: datetime,
    status: str,
    msg_type: str = "alert",
    target: str,
    **fields,
) -> AlertPayload:
    """Build a payload in Python (district side); same validation as on the station."""
    return AlertPayload.model_validate(
        dict(
            id=id,
            issued=issued.isoformat(),
            expires=expires.isoformat(),
            status=status,
            msg_type=msg_type,
            target=target,
            **fields,
        ),
    )
