"""Acks, station -> district on `loa/v1/{d}/{c}/{s}/ack` (QoS 1, not retained):

    {"ref": "<alert/schedule/command id>", "state": "received", "reason": "", "at": "<ISO 8601>",
     "station": "d/c/s"}

`state`: received | rejected | playing | done | failed | accepted (schedules, commands). `ref` is "" when a
rejected message had no readable id. Acks are not signed: the broker's ACL (a station writes only its own
topics) authenticates them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from firmware.core.commands import Ack
from firmware.protocol.errors import Rejected
from firmware.protocol.topics import Scope, TopicError

ACK_STATES = ("received", "rejected", "playing", "done", "failed", "accepted")
MAX_REASON = 500


class AckPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    ref: Annotated[str, StringConstraints(max_length=128)]
    state: Literal["received", "rejected", "playing", "done", "failed", "accepted"]
    reason: Annotated[str, StringConstraints(max_length=MAX_REASON)] = ""
    at: Annotated[AwareDatetime, Field(strict=False)]
    station: str

    @field_validator("station")
    @classmethod
    def _station_scope(cls, v: str) -> str:
        try:
            scope = Scope.parse(v)
        except TopicError as e:
            raise ValueError(str(e)) from None
        if scope.station is None:
            raise ValueError(f"{v} is not a station (district/commune/station)")
        return v

    @property
    def scope(self) -> Scope:
        return Scope.parse(self.station)


def ack_topic(station: Scope) -> str:
    return station.topic("ack")


def ack_bytes(ref: str | None, state: str, *, station: Scope, at: datetime, reason: str = "") -> bytes:
    """The ack payload bytes (UTF-8 JSON). The reason is cut to 500 characters, the ref to 128."""
    ack = AckPayload(
        ref=(ref or "")[:128],
        state=state,
        reason=reason[:MAX_REASON],
        at=at.isoformat(),
        station=str(station),
    )
    return json.dumps(ack.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def ack_message(cmd: Ack, *, station: Scope, at: datetime) -> tuple[str, bytes]:
    """(topic, payload) for a core `Ack` command: publish with QoS 1, not retained."""
    return ack_topic(station), ack_bytes(cmd.ref, cmd.state, station=station, at=at, reason=cmd.reason)


def parse_ack(raw: bytes) -> AckPayload:
    """District side. Raises Rejected("bad-payload")."""
    try:
        return AckPayload.model_validate_json(raw)
    except ValidationError as e:
        raise Rejected("bad-payload", f"ack: {e.errors()[0]['msg'] if e.errors() else e}") from None
