"""District side of policies: prepare a policy document for a scope, check it, sign it and publish it retained.

The commune's allowed windows, caps, sessions per day and minutes per session travel as a signed document on
`loa/v1/<scope>/policy`, like a schedule: the console and `loa-district policy push` call the same functions.
The document is validated with the station's own models (`firmware.core.policydoc`), and, when bounds are
given (the district's `[policy_bounds]`), held to them here too, so the district sees a refusal before a
station has to ack it. Stations verify again and ack `policy-v<version>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from district.alerts import AckTracker, _quiet_collect
from district.mqtt import DistrictClient, Message
from firmware.core.policydoc import (
    MAX_POLICY_BYTES,
    MAX_POLICY_ENVELOPE_BYTES,
    PolicyBounds,
    PolicyDoc,
    PolicyError,
    ack_ref,
    bounds_problems,
    parse_policy_doc,
)
from firmware.protocol.b64 import b64url_decode
from firmware.protocol.envelope import open_envelope, parse_json_object, seal
from firmware.protocol.errors import Rejected
from firmware.protocol.keys import SigningKey, TrustedKeys
from firmware.protocol.topics import Scope


class PolicyFileError(Exception):
    """The document cannot be sent as it is; `problems` lists every reason, each naming its key path."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A policy ready to sign: the exact payload bytes and the document they validate to."""

    doc: PolicyDoc
    payload: bytes


def prepare(raw: bytes, scope: Scope, source: str = "<policy>", *, bounds: PolicyBounds | None = None,
            issued: datetime | None = None) -> Prepared:
    """Set the document's target to `scope` (and `issued` when the file has none) and validate the exact
    bytes that will be signed. Refuses a file that is not a JSON object, one naming another target, one the
    station's models refuse, and, with `bounds`, one outside them (every problem listed)."""
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyFileError(source, [f"too large: {len(raw)} bytes (a station accepts {MAX_POLICY_BYTES})"])
    try:
        data = parse_json_object(raw, source)
    except (ValueError, RecursionError) as e:
        raise PolicyFileError(source, [f"not valid JSON: {str(e)[:200]}"]) from None
    if not isinstance(data, dict):
        raise PolicyFileError(source, [f"a policy is a JSON object, this is a JSON {type(data).__name__}"])
    target = data.get("target")
    if target is not None and target != str(scope):
        raise PolicyFileError(
            source, [f'target "{target}" differs from --scope {scope}: fix the file or the scope (refusing to guess)'])
    data["target"] = str(scope)
    if "issued" not in data and issued is not None:
        data["issued"] = issued.isoformat(timespec="seconds")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    try:
        doc = parse_policy_doc(payload, source)
    except PolicyError as e:
        raise PolicyFileError(source, e.problems) from None
    if bounds is not None:
        outside = bounds_problems(doc.policy, bounds)
        if outside:
            raise PolicyFileError(source, outside)
    return Prepared(doc, payload)


def seal_checked(prepared: Prepared, key: SigningKey) -> bytes:
    """The envelope to publish; refuses one larger than a station accepts."""
    envelope = seal(prepared.payload, key)
    if len(envelope) > MAX_POLICY_ENVELOPE_BYTES:
        raise PolicyFileError(
            "policy", [f"signed message is {len(envelope)} bytes, a station accepts at most {MAX_POLICY_ENVELOPE_BYTES}"])
    return envelope


@dataclass(frozen=True, slots=True)
class Retained:
    """What is retained on a policy topic. `doc` is None when the payload does not parse (`problem` says why);
    `verified` is None when no trust anchors were given, else whether the signature verified."""

    topic: str
    doc: PolicyDoc | None
    version: int | None
    problem: str = ""
    verified: bool | None = None


def read_retained(raw: bytes, topic: str, scope: Scope, trusted_keys: TrustedKeys | None = None) -> Retained:
    payload = None
    verified = None
    problem = ""
    if trusted_keys is not None:
        try:
            payload = open_envelope(raw, trusted_keys, scope=scope, max_bytes=MAX_POLICY_ENVELOPE_BYTES)
            verified = True
        except Rejected as e:
            verified, problem = False, f"{e.rejection.code}: {e.rejection.reason}"
    if payload is None:
        try:
            env = parse_json_object(raw, "envelope")
            payload = b64url_decode(env["payload"]) if isinstance(env, dict) else None
        except (ValueError, RecursionError, KeyError, TypeError):
            payload = None
    if payload is None:
        return Retained(topic, None, None, problem or "not a signed envelope", verified)
    try:
        doc = parse_policy_doc(payload, f"retained policy on {topic}")
    except PolicyError as e:
        return Retained(topic, None, _version(payload), problem or "; ".join(e.problems), verified)
    return Retained(topic, doc, doc.version, problem, verified)


def _version(payload: bytes) -> int | None:
    try:
        v = json.loads(payload).get("version")
    except (ValueError, AttributeError):
        return None
    return v if type(v) is int else None


def retained_policy(client: DistrictClient, scope: Scope, *, trusted_keys: TrustedKeys | None = None,
                    quiet_s: float = 0.3, max_s: float = 2.0) -> Retained | None:
    """The policy retained on the scope's topic, if any."""
    box: list[Retained] = []

    def on(msg: Message) -> None:
        if msg.payload:  # an empty retained message clears the topic
            box.append(read_retained(msg.payload, msg.topic, scope, trusted_keys))

    _quiet_collect(client, [scope.topic("policy")], on, quiet_s, max_s)
    return box[-1] if box else None


def version_problem(retained: Retained | None, version: int) -> str:
    """Why `version` cannot replace what is retained ("" when it can)."""
    if retained is None or retained.version is None:
        return ""
    if version <= retained.version:
        return (f"version {version} is not greater than version {retained.version} retained on {retained.topic}: "
                f"stations accept only a strictly newer policy; set \"version\" to {retained.version + 1} or more")
    return ""


def publish(client: DistrictClient, scope: Scope, envelope: bytes) -> str:
    """Publish retained with QoS 1 and wait for the broker's PUBACK. Returns the topic."""
    topic = scope.topic("policy")
    client.publish(topic, envelope, qos=1, retain=True)
    return topic


@dataclass
class PolicyAckTracker(AckTracker):
    """Acks of one policy version per station: the goal is `accepted`."""

    goal: str = "accepted"
    expected: set[str] = field(default_factory=set)

    def reached_goal(self, station: str) -> bool:
        return "accepted" in self.states.get(station, [])


def describe(doc: PolicyDoc) -> list[str]:
    """One line per window, then the limits."""
    p = doc.policy
    lines = []
    for w in p.windows:
        days = "daily" if len(w.days) == 7 else ",".join(w.days)
        lines.append(f"  window {w.label()}  {days:28s} cap {w.cap_db:g} dB")
    lines.append(f"  at most {p.max_sessions_per_day} sessions a day, {p.max_session_minutes:g} min a session, "
                 f"{p.max_minutes_per_day:g} min a day; alerts at {p.alert_gain_db:g} dB")
    return lines


def read_file(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise PolicyFileError(str(path), [f"cannot read it: {e.strerror}"]) from None


__all__ = [
    "PolicyAckTracker", "PolicyFileError", "Prepared", "Retained", "ack_ref", "describe", "prepare", "publish",
    "read_file", "read_retained", "retained_policy", "seal_checked", "version_problem",
]
