"""District side of remote commands: build a signed command for one station and wait for its outcome.

The payload is the station's own model (`firmware.protocol.command.Command`): an id unique per command, `issued` now
with its UTC offset (a station refuses one issued more than 30 minutes ago or more than its skew ahead), the
station's scope as `target`, the command, and `offset_db` for `gain`. It is published on the station's
`.../cmd` topic, QoS 1, not retained (a command is for now, not for whenever the station next connects).
The station acks the command id: `done` with what it did, `failed` with why, or `rejected` with the check that
refused it.
"""

from __future__ import annotations

import json
import secrets
import threading
from datetime import datetime

from district.alerts import parse_ack_message
from district.mqtt import DistrictClient, Message
from firmware.protocol.ack import AckPayload
from firmware.protocol.command import Command
from firmware.protocol.envelope import seal
from firmware.protocol.keys import SigningKey
from firmware.protocol.topics import Scope

FINAL_STATES = ("done", "failed", "rejected")


def new_command_id(scope: Scope, now: datetime) -> str:
    """`{station}-cmd-{yyyymmddThhmmss}-{8 hex}`: unique, readable in logs."""
    return f"{scope.station}-cmd-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def build_command(scope: Scope, cmd: str, now: datetime, *, offset_db: float | None = None,
                  command_id: str | None = None) -> Command:
    """Raises pydantic's ValidationError (a ValueError) when a field is out of range."""
    if scope.station is None:
        raise ValueError(f"a command goes to one station (district/commune/station), not to {scope}")
    if now.tzinfo is None:
        raise ValueError("issued needs a UTC offset")
    fields: dict = {"id": command_id or new_command_id(scope, now), "issued": now, "target": str(scope),
                    "cmd": cmd}
    if offset_db is not None:
        fields["offset_db"] = offset_db
    return Command.model_validate(fields)


def command_bytes(command: Command) -> bytes:
    """The exact payload bytes that are signed (unset fields left out)."""
    data = command.model_dump(mode="json", exclude_none=True)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class OutcomeWaiter:
    """Collects the station's acks of one command id (from paho's thread) until a final state arrives.

    A station never echoes an id it could not verify (unknown key, bad signature...): it acks `rejected` with
    an empty ref. Such an ack from the station while we wait is taken as the answer to our command (`anonymous`
    says so), since nothing else is being sent to that station's cmd topic by us.
    """

    def __init__(self, ref: str, station: Scope):
        self.ref = ref
        self.station = str(station)
        self.acks: list[AckPayload] = []
        self.cond = threading.Condition()

    def on_message(self, msg: Message) -> None:
        ack = parse_ack_message(msg)
        if ack is None or ack.station != self.station:
            return
        if ack.ref != self.ref and not (ack.ref == "" and ack.state == "rejected"):
            return
        with self.cond:
            self.acks.append(ack)
            self.cond.notify_all()

    def final(self) -> AckPayload | None:
        return next((a for a in self.acks if a.state in FINAL_STATES), None)

    @property
    def anonymous(self) -> bool:
        """The final ack carries no ref: the station could not verify the message it refused."""
        final = self.final()
        return final is not None and final.ref == ""

    def wait(self, timeout_s: float) -> AckPayload | None:
        with self.cond:
            self.cond.wait_for(lambda: self.final() is not None, timeout_s)
            return self.final()


def send(client: DistrictClient, command: Command, key: SigningKey) -> str:
    """Sign and publish (QoS 1, not retained), waiting for the PUBACK. Returns the topic."""
    scope = Scope.parse(command.target)
    topic = scope.topic("cmd")
    client.publish(topic, seal(command_bytes(command), key), qos=1, retain=False)
    return topic
