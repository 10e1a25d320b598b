"""District side of alerts: build, sign and publish alerts and cancels; count the stations in a scope; follow acks.

Shared by `loa-district alert`, `cancel` and `watch`. Alerts go to the scope's alert topic, QoS 1, retained,
with MQTT 5 message expiry = seconds until the alert expires: a station that connects while the alert is live
gets it, one that connects after expiry does not. A cancel is published retained on the same topic, so it
replaces the retained alert.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from district.mqtt import DistrictClient, Message
from firmware.protocol.ack import AckPayload, parse_ack
from firmware.protocol.alert import AlertPayload, AudioRef, new_alert_payload
from firmware.protocol.b64 import b64url_decode
from firmware.protocol.envelope import seal
from firmware.protocol.errors import Rejected
from firmware.protocol.keys import SigningKey
from firmware.protocol.topics import Scope, TopicError, parse_topic

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d` or plain seconds. Raises ValueError."""
    m = _DURATION.match(text.strip())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"duration {text!r}: expected a positive number with s, m, h or d (e.g. 30m)")
    return timedelta(seconds=int(m.group(1)) * _UNIT_S[m.group(2)])


def new_alert_id(scope: Scope, now: datetime) -> str:
    """`{district}-{yyyymmddThhmmss}-{6 hex}`: sortable, readable over the phone, unique."""
    return f"{scope.district}-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def expiry_seconds(payload: AlertPayload, now: datetime) -> int:
    """MQTT 5 MessageExpiryInterval for the retained alert: whole seconds until it expires (at least 1)."""
    return max(1, math.ceil((payload.expires - now).total_seconds()))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def audio_ref(
    audio: str | Path,
    *,
    audio_url: str | None = None,
    content_dir: str | Path | None = None,
    content_base_url: str | None = None,
) -> AudioRef:
    """Where the station fetches `audio` from, with its sha256.

    Either the file is already served at `audio_url` (we only hash the local copy), or it is copied into the
    served directory `content_dir` as `<sha256>.<ext>` and fetched from `content_base_url/<sha256>.<ext>`.
    """
    from district.content import add_file  # the content helper's atomic, content-addressed copy

    path = Path(audio)
    if not path.is_file():
        raise ValueError(f"audio file {str(path)!r} does not exist")
    if audio_url and content_dir:
        raise ValueError("give either --audio-url or --content-dir/--content-base-url, not both")
    if audio_url:
        return AudioRef(url=audio_url, sha256=sha256_file(path))
    if content_dir and content_base_url:
        dest, sha, _ = add_file(path, content_dir)
        return AudioRef(url=f"{content_base_url.rstrip('/')}/{dest.name}", sha256=sha)
    raise ValueError("--audio needs --audio-url URL, or --content-dir DIR with --content-base-url URL")


def build_alert(
    *,
    scope: Scope,
    status: str,
    now: datetime,
    expires_in: timedelta,
    text: str = "",
    audio: AudioRef | None = None,
    severity: str = "unknown",
    headline: str = "",
    repeat: int = 3,
    tone: bool = True,
    alert_id: str | None = None,
    updates: str | None = None,
) -> AlertPayload:
    """A new alert; with `updates`, an update that replaces that alert (stations stop it and play this one)."""
    fields: dict = dict(severity=severity, headline=headline, text=text, repeat=repeat, tone=tone)
    if audio is not None:
        fields["audio"] = audio.model_dump()
    if updates is not None:
        fields["references"] = [updates]
    return new_alert_payload(
        id=alert_id or new_alert_id(scope, now),
        issued=now,
        expires=now + expires_in,
        status=status,
        msg_type="update" if updates is not None else "alert",
        target=str(scope),
        **fields,
    )


def build_cancel(
    ref: str, *, scope: Scope, status: str, now: datetime, expires_in: timedelta, text: str = ""
) -> AlertPayload:
    return new_alert_payload(
        id=new_alert_id(scope, now),
        issued=now,
        expires=now + expires_in,
        status=status,
        msg_type="cancel",
        references=[ref],
        target=str(scope),
        text=text,
    )


def publish_alert(client: DistrictClient, payload: AlertPayload, key: SigningKey, now: datetime) -> str:
    """Sign and publish retained with message expiry; wait for the PUBACK. Returns the topic."""
    topic = payload.scope.topic("alert")
    client.publish(
        topic, seal(payload.to_bytes(), key), qos=1, retain=True, expiry_s=expiry_seconds(payload, now)
    )
    log.info("published %s %s %s to %s", payload.status, payload.msg_type, payload.id, topic)
    return topic


def _quiet_collect(
    client: DistrictClient, topics: list[str], on: Callable[[Message], None], quiet_s: float, max_s: float
) -> None:
    """Subscribe, then return once no message came for `quiet_s` (retained messages arrive right after the
    SUBACK), or after `max_s` at most."""
    arrived = threading.Event()

    def handler(msg: Message) -> None:
        on(msg)
        arrived.set()

    client.subscribe(topics, handler)
    deadline = time.monotonic() + max_s
    while (left := deadline - time.monotonic()) > 0:
        if not arrived.wait(min(quiet_s, left)):
            return
        arrived.clear()


def census(
    client: DistrictClient, scope: Scope, *, quiet_s: float = 0.4, max_s: float = 3.0
) -> dict[str, str]:
    """Stations known in `scope`, from their retained status topics: {"d/c/s": "online" | "offline" | ...}."""
    found: dict[str, str] = {}
    lock = threading.Lock()

    def on(msg: Message) -> None:
        try:
            station = parse_topic(msg.topic).scope
        except TopicError:
            return
        if not msg.payload:
            return  # a cleared retained status: the station was removed
        try:
            doc = json.loads(msg.payload)
            state = str(doc.get("state", "unknown")) if isinstance(doc, dict) else "unknown"
        except ValueError:
            state = "unknown"
        with lock:
            found[str(station)] = state

    _quiet_collect(client, [scope.station_filter("status")], on, quiet_s, max_s)
    with lock:
        return dict(sorted(found.items()))


def retained_alert(
    client: DistrictClient, scope: Scope, *, quiet_s: float = 0.3, max_s: float = 2.0
) -> dict | None:
    """The payload (unverified JSON) of the alert retained on the scope's alert topic, if any."""
    box: list[dict] = []

    def on(msg: Message) -> None:
        try:
            env = json.loads(msg.payload)
            doc = json.loads(b64url_decode(env["payload"]))
            if isinstance(doc, dict):
                box.append(doc)
        except (ValueError, KeyError, TypeError):
            return

    _quiet_collect(client, [scope.topic("alert")], on, quiet_s, max_s)
    return box[-1] if box else None


FINAL_BAD = ("failed", "rejected")


@dataclass
class AckTracker:
    """Acks for one alert id, per station; says when every expected station reached `goal`."""

    ref: str
    scope: Scope
    goal: str  # "done" (alerts that play) or "received" (test alerts play nothing)
    expected: set[str] = field(default_factory=set)
    states: dict[str, list[str]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def add(self, ack: AckPayload) -> bool:
        """Record an ack; True when it concerns this alert and a station inside the scope."""
        if ack.ref != self.ref or not self.scope.contains(ack.scope):
            return False
        self.states.setdefault(ack.station, []).append(ack.state)
        if ack.reason:
            self.reasons[ack.station] = ack.reason
        return True

    def last(self, station: str) -> str | None:
        seq = self.states.get(station)
        return seq[-1] if seq else None

    def reached_goal(self, station: str) -> bool:
        seq = self.states.get(station, [])
        if self.goal == "received":
            return any(s in ("received", "playing", "done") for s in seq)
        return "done" in seq

    def bad(self) -> list[str]:
        return sorted(s for s, seq in self.states.items() if any(x in FINAL_BAD for x in seq))

    def everyone(self) -> set[str]:
        return self.expected | set(self.states)

    def silent(self) -> list[str]:
        return sorted(s for s in self.everyone() if not self.reached_goal(s) and s not in self.bad())

    def finished(self) -> bool:
        """Every known station either reached the goal or answered failed/rejected."""
        stations = self.everyone()
        return bool(stations) and all(self.reached_goal(s) or s in self.bad() for s in stations)


def parse_ack_message(msg: Message) -> AckPayload | None:
    try:
        ack = parse_ack(msg.payload)
    except Rejected as e:
        log.warning("ignoring malformed ack on %s: %s", msg.topic, e)
        return None
    try:
        if str(parse_topic(msg.topic).scope) != ack.station:
            log.warning("ignoring ack on %s claiming to be from %s", msg.topic, ack.station)
            return None
    except TopicError:
        return None
    return ack
