"""Messages from the district, checked before the core sees them: alerts, schedules, policies and commands.

Everything here is untrusted until the envelope's Ed25519 signature verifies with a district key and the
payload's target equals the topic it arrived on. A refusal is acknowledged with its reason (so the district
sees *why*) and logged; nothing refused ever becomes an event. Runs on the runtime thread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import ValidationError

from firmware.core import events as E
from firmware.core.policy import Policy
from firmware.core.policydoc import (
    MAX_POLICY_ENVELOPE_BYTES,
    PolicyBounds,
    PolicyDoc,
    PolicyError,
    bounds_problems,
    parse_policy_doc,
)
from firmware.core.policydoc import ack_ref as policy_ref
from firmware.core.schedule import ScheduleDoc, ScheduleError, check_against_policy, parse_schedule
from firmware.protocol.ack import ack_message
from firmware.protocol.command import COMMAND_MAX_AGE, MAX_COMMAND_BYTES, Command
from firmware.protocol.envelope import open_envelope
from firmware.protocol.errors import Rejected, Rejection
from firmware.protocol.schedule import MAX_SCHEDULE_ENVELOPE_BYTES
from firmware.protocol.topics import Scope, TopicError, parse_topic
from firmware.protocol.verify import verify_alert

log = logging.getLogger(__name__)

class InboundHandler:
    def __init__(
        self,
        station: Scope,
        *,
        trusted_keys,
        replay,
        publish: Callable[[str, bytes], None],
        policy: Policy,
        timezone: str,
        state=None,
        schedule_version: int | None = None,
        skew_s: float = 300.0,
        actions: dict[str, Callable[[], str]] | None = None,
        on_schedule: Callable[[ScheduleDoc], None] | None = None,
        bounds: PolicyBounds | None = None,
        policy_doc: PolicyDoc | None = None,
        schedule: ScheduleDoc | None = None,
    ):
        self.station = station
        self.trusted_keys = trusted_keys
        self.replay = replay
        self.publish = publish
        self.policy = policy
        self.timezone = timezone
        self.state = state
        self.schedule_version = schedule_version
        self.skew_s = skew_s
        self.actions = actions or {}  # "selftest" | "fetch" | "telemetry" -> returns an outcome text
        self._unsaved = False
        self.on_schedule = on_schedule  # told of every accepted schedule (the prefetcher needs its files)
        self.bounds = bounds or PolicyBounds()  # the district's, from provisioning
        self.policy_doc = policy_doc  # the pushed policy in force (None: station.toml's)
        self.schedule = schedule  # the active schedule, re-checked when a policy arrives

    def flush(self) -> None:
        """Persist the replay cache if an accepted alert is not on disk yet (called after its commands ran)."""
        if self._unsaved:
            self._unsaved = False
            try:
                self.replay.save()
            except OSError as e:
                log.error("cannot persist the replay cache: %s", e)

    def send_ack(self, ref: str | None, state: str, reason: str, now: datetime) -> None:
        from firmware.core.commands import Ack

        topic, payload = ack_message(Ack(ref or "", state, reason), station=self.station, at=now)
        self.publish(topic, payload)

    def handle(self, topic: str, payload: bytes, retained: bool, now: datetime, *, clock_trusted: bool,
               last_trusted: datetime | None) -> list:
        if not payload:
            # How MQTT clears a retained message (`schedule clear`, a broker admin): not an error to ack.
            log.info("empty message on %s: a cleared retained message, ignored", topic[:200])
            return []
        try:
            kind = parse_topic(topic).kind
        except TopicError as e:
            log.warning("message on unexpected topic %s: %s", topic, e)
            return []
        if kind == "alert":
            return self._alert(topic, payload, retained, now, clock_trusted, last_trusted)
        if kind == "schedule":
            return self._schedule(topic, payload, retained, now)
        if kind == "policy":
            return self._policy(topic, payload, retained, now, clock_trusted)
        if kind == "cmd":
            return self._command(topic, payload, now, clock_trusted)
        log.warning("ignoring a %s message on %s: stations do not take those", kind, topic)
        return []

    # -- alerts ------------------------------------------------------------------------------------

    def _alert(self, topic, payload, retained, now, clock_trusted, last_trusted) -> list:
        res = verify_alert(payload, topic, trusted_keys=self.trusted_keys, seen=self.replay, now=now,
                           clock_trusted=clock_trusted, last_trusted=last_trusted, skew_s=self.skew_s)
        if isinstance(res, Rejection):
            if retained and res.code in ("replayed", "expired"):
                log.info("retained alert %s on %s: %s (already handled)", res.ref, topic, res.code)
                return []
            self._refuse(topic, res, now)
            return []
        # In memory now (a duplicate arriving next is refused); on disk in `flush()`, after the alert's
        # Play has gone to the player: an fsync on an SD card must not stand between an alert and the horn.
        self.replay.remember(res.id, res.expires, now, save=False)
        self._unsaved = True
        log.warning("ALERT %s (%s %s, %s) accepted from %s", res.id, res.status, res.msg_type, res.severity, topic)
        return [E.AlertReceived(res, topic)]

    def _refuse(self, topic: str, rej: Rejection, now: datetime) -> None:
        log.warning("refused message on %s: %s: %s", topic, rej.code, rej.reason)
        self.send_ack(rej.ref, "rejected", f"{rej.code}: {rej.reason}", now)

    # -- schedules ---------------------------------------------------------------------------------

    def _schedule(self, topic: str, raw: bytes, retained: bool, now: datetime) -> list:
        scope = parse_topic(topic).scope
        try:
            payload = open_envelope(raw, self.trusted_keys, scope=scope, max_bytes=MAX_SCHEDULE_ENVELOPE_BYTES)
        except Rejected as e:
            self._refuse(topic, e.rejection, now)
            return []
        try:
            doc = parse_schedule(payload, f"schedule on {topic}")
        except ScheduleError as e:
            ref = _version_ref(payload)
            log.warning("refused schedule on %s: %s", topic, "; ".join(e.problems))
            self.send_ack(ref, "rejected", "invalid: " + "; ".join(e.problems), now)
            return []
        ref = f"schedule-v{doc.version}"
        problems = []
        if doc.target != str(scope):
            problems.append(f'target "{doc.target}" differs from the topic\'s scope "{scope}"')
        if self.schedule_version is not None and doc.version <= self.schedule_version:
            if retained and doc.version == self.schedule_version:
                return []  # the retained copy of what we already run
            problems.append(f"version {doc.version} is not newer than the active version {self.schedule_version}")
        problems.extend(check_against_policy(doc, self.policy, self.timezone))
        if problems:
            log.warning("refused schedule v%s on %s: %s", doc.version, topic, "; ".join(problems))
            self.send_ack(ref, "rejected", "; ".join(problems), now)
            return []
        if self.state is not None:
            try:
                self.state.save_schedule_bytes(payload)
            except OSError as e:
                self.send_ack(ref, "rejected", f"cannot store it: {e}", now)
                return []
        self.schedule_version = doc.version
        self.schedule = doc
        log.info("schedule v%s accepted from %s (%d programmes)", doc.version, topic, len(doc.programmes))
        self.send_ack(ref, "accepted", f"{len(doc.programmes)} programmes", now)
        if self.on_schedule is not None:
            self.on_schedule(doc)
        return [E.ScheduleReceived(doc)]

    # -- policies ----------------------------------------------------------------------------------

    def _policy(self, topic: str, raw: bytes, retained: bool, now: datetime, clock_trusted: bool) -> list:
        """Verified like a schedule (key, target, newer version), then held to the district's bounds."""
        scope = parse_topic(topic).scope
        try:
            payload = open_envelope(raw, self.trusted_keys, scope=scope, max_bytes=MAX_POLICY_ENVELOPE_BYTES)
        except Rejected as e:
            self._refuse(topic, e.rejection, now)
            return []
        try:
            doc = parse_policy_doc(payload, f"policy on {topic}")
        except PolicyError as e:
            log.warning("refused policy on %s: %s", topic, "; ".join(e.problems))
            self.send_ack(policy_ref(_int_field(payload, "version")), "rejected",
                          "invalid: " + "; ".join(e.problems), now)
            return []
        ref = policy_ref(doc.version)
        active = self.policy_doc
        problem = None
        if doc.target != str(scope):
            problem = f'wrong-target: target "{doc.target}" differs from the topic\'s scope "{scope}"'
        elif active is not None and doc.version <= active.version:
            if retained and doc.version == active.version:
                return []  # the retained copy of what we already apply
            problem = f"stale: version {doc.version} is not newer than the active version {active.version}"
        elif active is not None and doc.issued < active.issued:
            problem = (f"stale: issued {doc.issued.isoformat()}, before the active version {active.version} "
                       f"({active.issued.isoformat()})")
        elif clock_trusted and doc.issued > now + timedelta(seconds=self.skew_s):
            problem = f"future: issued {doc.issued.isoformat()} is ahead of the station's clock"
        if problem is None:
            outside = bounds_problems(doc.policy, self.bounds)
            if outside:
                problem = "; ".join(outside)
        if problem:
            log.warning("refused policy v%s (%s) on %s: %s", doc.version, doc.id, topic, problem)
            self.send_ack(ref, "rejected", problem, now)
            return []
        if self.state is not None:
            try:
                self.state.save_policy_bytes(payload)
            except OSError as e:
                self.send_ack(ref, "rejected", f"cannot store it: {e}", now)
                return []
        self.policy_doc = doc
        self.policy = doc.policy
        windows = ", ".join(f"{w.label()} {w.cap_db:g} dB" for w in doc.policy.windows)
        reason = f"{len(doc.policy.windows)} windows ({windows})"
        if self.schedule is not None:
            # The schedule stays; what the new rules no longer allow is not played (the planner refuses it).
            conflicts = check_against_policy(self.schedule, doc.policy, self.timezone)
            if conflicts:
                reason += f"; active schedule v{self.schedule.version} no longer fits: " + "; ".join(conflicts)
        log.info("policy v%s (%s) accepted from %s: %s", doc.version, doc.id, topic, reason)
        self.send_ack(ref, "accepted", reason, now)
        return [E.PolicyReceived(doc.policy)]

    # -- remote commands -----------------------------------------------------------------------------

    def _command(self, topic: str, raw: bytes, now: datetime, clock_trusted: bool) -> list:
        scope = parse_topic(topic).scope
        try:
            payload = open_envelope(raw, self.trusted_keys, scope=scope, max_bytes=MAX_COMMAND_BYTES)
        except Rejected as e:
            self._refuse(topic, e.rejection, now)
            return []
        try:
            cmd = Command.model_validate(json.loads(payload))
        except (ValueError, ValidationError) as e:
            self.send_ack(_field(payload, "id"), "rejected", f"bad-payload: {_short(e)}", now)
            return []
        problem = None
        if cmd.target != str(scope):
            problem = f'wrong-target: target "{cmd.target}" differs from the topic\'s scope "{scope}"'
        elif cmd.id in self.replay:
            problem = f"replayed: command {cmd.id} was already carried out"
        elif cmd.issued.tzinfo is None:
            problem = "bad-payload: issued needs a UTC offset"
        elif clock_trusted and cmd.issued > now + timedelta(seconds=self.skew_s):
            problem = f"future: issued {cmd.issued.isoformat()} is ahead of the station's clock"
        elif clock_trusted and now - cmd.issued > COMMAND_MAX_AGE:
            problem = f"expired: issued {cmd.issued.isoformat()}, older than {COMMAND_MAX_AGE}"
        elif cmd.cmd == "gain" and cmd.offset_db is None:
            problem = "bad-payload: a gain command needs offset_db"
        if problem:
            log.warning("refused command %s on %s: %s", cmd.id, topic, problem)
            self.send_ack(cmd.id, "rejected", problem, now)
            return []
        self.replay.remember(cmd.id, cmd.issued + COMMAND_MAX_AGE, now)
        log.info("command %s: %s %s", cmd.id, cmd.cmd, cmd.offset_db if cmd.offset_db is not None else "")
        if cmd.cmd == "gain":
            self.send_ack(cmd.id, "done", f"gain offset {cmd.offset_db:+.1f} dB (still under the policy caps)", now)
            return [E.GainOffsetChanged(cmd.offset_db)]
        if cmd.cmd in ("mute", "unmute"):
            self.send_ack(cmd.id, "done", f"scheduled audio {cmd.cmd}d (alerts always play)", now)
            return [E.MuteChanged(cmd.cmd == "mute")]
        action = self.actions.get(cmd.cmd)
        if action is None:
            self.send_ack(cmd.id, "failed", f"{cmd.cmd} is not available on this station", now)
            return []
        try:
            outcome = action()
        except Exception as e:  # an action failing is an outcome to report, not a crash
            log.exception("command %s (%s) failed", cmd.id, cmd.cmd)
            self.send_ack(cmd.id, "failed", f"{type(e).__name__}: {e}", now)
            return []
        self.send_ack(cmd.id, "done", outcome, now)
        return []


def _field(payload: bytes, name: str) -> str | None:
    try:
        v = json.loads(payload).get(name)
        return v if isinstance(v, str) else None
    except (ValueError, AttributeError):
        return None


def _int_field(payload: bytes, name: str) -> int | None:
    try:
        v = json.loads(payload).get(name)
        return v if type(v) is int else None
    except (ValueError, AttributeError):
        return None


def _version_ref(payload: bytes) -> str:
    try:
        v = json.loads(payload).get("version")
        return f"schedule-v{v}" if isinstance(v, int) else "schedule"
    except (ValueError, AttributeError):
        return "schedule"


def _short(e: Exception) -> str:
    text = str(e).replace("\n", " ")
    return text[:300]


def load_active_schedule(state, fallback_path: str | None) -> tuple[ScheduleDoc | None, str]:
    """The schedule to start with: the last accepted one (state dir), else the configured file."""
    if state is not None:
        raw = state.load_schedule_bytes()
        if raw is not None:
            try:
                return parse_schedule(raw, str(state.schedule_path)), str(state.schedule_path)
            except ScheduleError as e:
                log.error("stored schedule unusable, ignoring it: %s", e)
    if fallback_path:
        with open(fallback_path, "rb") as f:
            return parse_schedule(f.read(), fallback_path), fallback_path
    return None, "none"


def load_active_policy(state, scope: Scope, bounds: PolicyBounds | None) -> PolicyDoc | None:
    """The last accepted pushed policy (state dir), if it is still usable: for this station and inside the
    bounds (which re-provisioning may have narrowed). None: the station applies station.toml's [policy]."""
    raw = state.load_policy_bytes() if state is not None else None
    if raw is None:
        return None
    try:
        doc = parse_policy_doc(raw, str(state.policy_path))
    except PolicyError as e:
        log.error("stored policy unusable, applying station.toml's: %s", e)
        return None
    target = Scope.parse(doc.target) if doc.target else None
    if target is None or not target.contains(scope):
        log.error("stored policy v%s targets %s, not this station: applying station.toml's", doc.version, doc.target)
        return None
    outside = bounds_problems(doc.policy, bounds or PolicyBounds())
    if outside:
        log.error("stored policy v%s is outside the bounds now provisioned (%s): applying station.toml's",
                  doc.version, "; ".join(outside))
        return None
    return doc
