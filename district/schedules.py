"""District side of schedules: prepare a schedule file for a scope, read what is retained, sign and publish.

Shared by `loa-district schedule push` and `schedule show`. The document is validated with the station's own
models (`firmware.core.schedule.parse_schedule`), so a file the district can send is a file the station can
parse; only the station's policy (its allowed windows) is checked on the station, which acks the outcome.
A schedule is published retained (QoS 1) on `Scope.topic("schedule")`: a station that connects later gets it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from district.alerts import AckTracker, _quiet_collect
from district.mqtt import DistrictClient, Message
from firmware.core.policy import fmt_hhmm
from firmware.core.schedule import (
    MAX_SCHEDULE_BYTES,
    ScheduleDoc,
    ScheduleError,
    check_against_policy,
    parse_schedule,
)
from firmware.protocol.envelope import open_envelope, parse_json_object, seal
from firmware.protocol.errors import Rejected
from firmware.protocol.keys import SigningKey, TrustedKeys
from firmware.protocol.schedule import MAX_SCHEDULE_ENVELOPE_BYTES
from firmware.protocol.topics import Scope


class ScheduleFileError(Exception):
    """The file cannot be sent as it is; `problems` says every reason, each naming what is wrong."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A schedule ready to sign: the exact payload bytes and the document they validate to."""

    doc: ScheduleDoc
    payload: bytes


def ack_ref(version: int) -> str:
    """The `ref` a station puts in its ack of schedule version `version`."""
    return f"schedule-v{version}"


def prepare(raw: bytes, scope: Scope, source: str = "<schedule>") -> Prepared:
    """Set the document's target to `scope` and validate the exact bytes that will be signed.

    Refuses (ScheduleFileError) a file that is not a JSON object, one whose `target` names another scope,
    and one the station's models refuse (every problem listed).
    """
    if len(raw) > MAX_SCHEDULE_BYTES:
        raise ScheduleFileError(source, [f"too large: {len(raw)} bytes (a station accepts {MAX_SCHEDULE_BYTES})"])
    try:
        data = parse_json_object(raw, source)
    except (ValueError, RecursionError) as e:
        raise ScheduleFileError(source, [f"not valid JSON: {str(e)[:200]}"]) from None
    if not isinstance(data, dict):
        raise ScheduleFileError(source, [f"a schedule is a JSON object, this is a JSON {type(data).__name__}"])
    target = data.get("target")
    if target is not None and target != str(scope):
        raise ScheduleFileError(
            source, [f'target "{target}" differs from --scope {scope}: fix the file or the scope (refusing to guess)']
        )
    data["target"] = str(scope)
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    try:
        doc = parse_schedule(payload, source)
    except ScheduleError as e:
        raise ScheduleFileError(source, e.problems) from None
    return Prepared(doc, payload)


def policy_problems(doc: ScheduleDoc, cfg) -> list[str]:
    """What a station with config `cfg` (a `firmware.config.StationConfig`) would refuse in `doc`, in full
    (its ack cuts the list at 500 characters)."""
    return check_against_policy(doc, cfg.policy, cfg.station.timezone)


def seal_checked(prepared: Prepared, key: SigningKey) -> bytes:
    """The envelope to publish; refuses one larger than a station accepts."""
    envelope = seal(prepared.payload, key)
    if len(envelope) > MAX_SCHEDULE_ENVELOPE_BYTES:
        raise ScheduleFileError(
            "schedule",
            [f"signed message is {len(envelope)} bytes, a station accepts at most {MAX_SCHEDULE_ENVELOPE_BYTES}"],
        )
    return envelope


@dataclass(frozen=True, slots=True)
class Retained:
    """What is retained on a schedule topic. `doc` is None when the payload does not parse (`problem` says
    why); `verified` is None when no trust anchors were given, else whether the signature verified."""

    topic: str
    raw: bytes
    payload: bytes | None
    doc: ScheduleDoc | None
    version: int | None
    problem: str = ""
    verified: bool | None = None
    kid: str | None = None


def read_retained(raw: bytes, topic: str, scope: Scope, trusted_keys: TrustedKeys | None = None) -> Retained:
    """Decode a retained schedule envelope (without trusting it unless `trusted_keys` are given)."""
    kid = None
    payload = None
    try:
        env = parse_json_object(raw, "envelope")
        kid = env.get("kid") if isinstance(env, dict) else None
    except (ValueError, RecursionError):
        env = None
    verified = None
    problem = ""
    if trusted_keys is not None:
        try:
            payload = open_envelope(raw, trusted_keys, scope=scope, max_bytes=MAX_SCHEDULE_ENVELOPE_BYTES)
            verified = True
        except Rejected as e:
            verified = False
            problem = f"{e.rejection.code}: {e.rejection.reason}"
    if payload is None and isinstance(env, dict) and isinstance(env.get("payload"), str):
        from firmware.protocol.b64 import b64url_decode

        try:
            payload = b64url_decode(env["payload"])
        except ValueError as e:
            problem = problem or f"payload is not base64url: {e}"
    if payload is None:
        return Retained(topic, raw, None, None, None, problem or "not a signed envelope", verified,
                        kid if isinstance(kid, str) else None)
    version = _version(payload)
    try:
        doc = parse_schedule(payload, f"retained schedule on {topic}")
    except ScheduleError as e:
        return Retained(topic, raw, payload, None, version, problem or "; ".join(e.problems), verified,
                        kid if isinstance(kid, str) else None)
    return Retained(topic, raw, payload, doc, doc.version, problem, verified, kid if isinstance(kid, str) else None)


def _version(payload: bytes) -> int | None:
    try:
        v = json.loads(payload).get("version")
    except (ValueError, AttributeError):
        return None
    return v if type(v) is int else None


def retained_schedule(
    client: DistrictClient,
    scope: Scope,
    *,
    trusted_keys: TrustedKeys | None = None,
    quiet_s: float = 0.3,
    max_s: float = 2.0,
) -> Retained | None:
    """The schedule retained on the scope's topic, if any (retained messages arrive right after the SUBACK)."""
    box: list[Retained] = []
    topic = scope.topic("schedule")

    def on(msg: Message) -> None:
        if msg.payload:  # an empty retained message clears the topic
            box.append(read_retained(msg.payload, msg.topic, scope, trusted_keys))

    _quiet_collect(client, [topic], on, quiet_s, max_s)
    return box[-1] if box else None


def publish(client: DistrictClient, scope: Scope, envelope: bytes) -> str:
    """Publish retained with QoS 1 and wait for the broker's PUBACK. Returns the topic."""
    topic = scope.topic("schedule")
    client.publish(topic, envelope, qos=1, retain=True)
    return topic


@dataclass
class ScheduleAckTracker(AckTracker):
    """Acks of one schedule version per station: the goal is `accepted` (a schedule is never `done`)."""

    goal: str = "accepted"
    expected: set[str] = field(default_factory=set)

    def reached_goal(self, station: str) -> bool:
        return "accepted" in self.states.get(station, [])


def describe(doc: ScheduleDoc) -> list[str]:
    """One line per programme: id, start, days, source, title."""
    lines = []
    for p in doc.programmes:
        r = p.recurrence
        days = "daily" if len(r.days) == 7 else ",".join(r.days)
        if r.dates:
            days = (days + " + " if days else "") + ",".join(d.isoformat() for d in r.dates)
        src = p.source
        what = src.type
        if src.type == "file":
            what = f"file {src.url or src.path}"
        elif src.type == "stream":
            what = f"stream {' | '.join(src.urls)}"
        elif src.type == "tone":
            what = f"tone {src.kind} {src.duration_s:g} s"
        lines.append(f"  {fmt_hhmm(p.start)}  {p.id:24s} {p.level:8s} {days:28s} {what}  "
                     f"({p.title})")
    return lines


def read_file(path: str | Path) -> bytes:
    """Read a schedule file; ScheduleFileError names the file and why it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ScheduleFileError(str(path), [f"cannot read it: {e.strerror}"]) from None


__all__ = [
    "Prepared", "Retained", "ScheduleAckTracker", "ScheduleFileError", "ack_ref", "describe", "prepare",
    "publish", "read_file", "read_retained", "retained_schedule", "seal_checked",
]
