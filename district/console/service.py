"""What the console does, without HTTP: read the fleet, send and cancel alerts, follow acks.

The HTTP layer (`server.py`) only parses forms and renders; every decision and every side effect is here, so
tests can drive it directly. Sending goes through `district.alerts` (the same payloads, signatures and retained
publication as `loa-district alert`/`cancel`). Acks arrive on the console's own MQTT subscription and are stored
in the collector's `acks` table (deduplicated by station, alert and state), and so are the stations'
status messages, through the collector's own `handle`.

Alerts and cancels sent by anyone else (`loa-district alert`/`cancel` on another machine, another console on
the same database) are heard on the retained alert topics, verified with the console's own key, and listed
like the console's own (sender shown as "outside the console"), so every active alert of the district has its
cancel button here, and an alert cancelled elsewhere stops showing one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from pydantic import ValidationError

from district import alerts
from district.collector import Collector
from district.console.store import ConsoleStore, SentAlert
from district.db import DistrictDb, StationRow
from district.mqtt import DistrictClient, Message, MqttError
from firmware.protocol.alert import AlertPayload, AudioRef, describe_errors, parse_alert_payload
from firmware.protocol.envelope import open_verified
from firmware.protocol.errors import Rejected
from firmware.protocol.keys import SigningKey
from firmware.protocol.topics import Scope, TopicError, parse_topic

log = logging.getLogger(__name__)

STATUSES = ("test", "exercise", "actual")
SEVERITIES = ("extreme", "severe", "moderate", "minor", "unknown")
EXPIRIES = {"15m": 900, "30m": 1800, "1h": 3600, "2h": 7200, "6h": 21600}
ACK_STATES = ("received", "playing", "done", "failed", "rejected")
ACK_RANK = {"received": 1, "accepted": 1, "playing": 2, "done": 3, "failed": 3, "rejected": 3}
MAX_TEXT = 2000
MAX_HEADLINE = 200
DAY = 86400.0
OUTSIDE = ""  # `sent_by` / `cancelled_by` / audit user of what was heard on the broker, not done here
ALERT_TOPICS = ("loa/v1/+/alert", "loa/v1/+/+/alert", "loa/v1/+/+/+/alert")


class FormError(ValueError):
    """Bad input from a form: `key` is an i18n catalogue key, `params` fill its placeholders."""

    def __init__(self, key: str, **params):
        super().__init__(key)
        self.key = key
        self.params = params


class Unconfirmed(MqttError):
    """Published, but the broker did not acknowledge it: it may or may not reach the stations."""

    def __init__(self, alert_id: str, detail: str):
        super().__init__(detail)
        self.alert_id = alert_id


@dataclass(frozen=True, slots=True)
class ScopeChoice:
    scope: str
    level: str  # district | commune | station
    stations: int
    online: int


@dataclass
class Draft:
    """A validated alert not yet sent (an actual alert waits for its typed confirmation)."""

    status: str
    scope: Scope
    text: str
    headline: str
    severity: str
    expires: str
    audio: AudioRef | None = None
    audio_name: str = ""
    stations: list[StationRow] = field(default_factory=list)
    updates: str | None = None  # the id of the active alert this one replaces (msg_type update)


@dataclass(frozen=True, slots=True)
class StationAck:
    sid: str
    state: str | None  # the latest state, None: nothing yet
    states: tuple[str, ...]
    reason: str


class Console:
    def __init__(
        self,
        db: DistrictDb,
        store: ConsoleStore,
        key: SigningKey,
        client: DistrictClient | None,
        *,
        content_dir: str | Path | None = None,
        content_base_url: str | None = None,
        now: Callable[[], float] = time.time,
    ):
        self.db = db
        self.store = store
        self.key = key
        self.client = client
        self.content_dir = Path(content_dir) if content_dir else None
        self.content_base_url = content_base_url
        self._now = now
        self._store = Collector(db, now=now)  # parsing and storage only: no network of its own
        self._sending: set[str] = set()  # ids this console is publishing: heard back, they are not "outside"
        self._sending_lock = threading.Lock()

    # -- MQTT ------------------------------------------------------------------------------------------------

    def follow_stations(self) -> None:
        """Subscribe to every station's status and acks (called once the client is connected).

        Stored with the collector's own parsing and storage (`Collector.handle`: strict, deduplicated, never
        raises), so the console knows which stations exist and are online, and can offer them as scopes,
        even while the collector is down. Telemetry and play logs still come from the collector."""
        if self.client is not None:
            self.client.subscribe(["loa/v1/+/+/+/status", "loa/v1/+/+/+/ack"], self.on_message)
            self.client.subscribe(ALERT_TOPICS, self.on_alert_message)

    def on_message(self, msg: Message) -> None:
        self._store.handle(msg.topic, msg.payload)

    def on_alert_message(self, msg: Message) -> None:
        """An alert, update or cancel on a scope's alert topic (retained ones arrive on subscribing). Never raises."""
        try:
            self.heard(msg.topic, msg.payload)
        except Exception:
            log.exception("console: failed to record the alert message on %s", msg.topic[:200])

    def heard(self, topic: str, raw: bytes) -> str | None:
        """Record an alert message sent by someone else; returns what was done ("alert", "cancel") or None.

        Only messages signed by the console's own key are listed: anything else is what the stations reject
        too (they ack it "rejected", which the console shows), and listing it would offer a cancel button for
        an alert nobody here can stand behind."""
        if not raw:
            return None  # a cleared retained message
        try:
            scope = parse_topic(topic).scope
            payload_bytes, _ = open_verified(raw, {self.key.kid: self.key.anchor()}, scope=scope)
            p = parse_alert_payload(payload_bytes, signed=True)
        except (Rejected, TopicError) as e:
            log.info("console: not listing the message on %s: %s", topic[:200], e)
            return None
        with self._sending_lock:
            if p.id in self._sending:
                return None
        if p.msg_type == "cancel":
            return "cancel" if self._heard_cancel(p, p.id) else None
        if self.store.alert(p.id) is not None:
            return None  # ours, or heard before (a retained copy again after a reconnect)
        self.store.record_alert(
            id=p.id, status=p.status, scope=p.target, headline=p.headline, text=p.text,
            audio_url=p.audio.url if p.audio else "", issued=p.issued.timestamp(), expires=p.expires.timestamp(),
            sent_by=OUTSIDE, expected=[s.sid for s in self.stations_in(p.scope)],
            replaces=p.references[0] if p.msg_type == "update" and p.references else None,
        )
        if p.msg_type == "update":
            self._heard_cancel(p, p.id)  # the alert it replaces no longer plays
        # audited last: once the entry is there, everything this message changed is recorded
        self.store.audit(OUTSIDE, "alert-heard", status=p.status, scope=p.target, alert_id=p.id,
                         detail=(p.headline or p.text)[:200] or (p.audio.url if p.audio else ""))
        log.info("console: heard %s %s %s to %s, sent outside the console", p.status, p.msg_type, p.id, p.target)
        return "alert"

    def _heard_cancel(self, p: AlertPayload, by: str) -> bool:
        done = False
        for ref in p.references:
            a = self.store.alert(ref)
            if a is None or a.cancelled_at is not None:
                continue
            if p.msg_type == "update":
                self.store.record_replaced(ref, by, OUTSIDE)
            else:
                self.store.record_cancel(ref, by, OUTSIDE)
            self.store.audit(OUTSIDE, "cancel-heard", status=a.status, scope=a.scope, alert_id=ref,
                             detail=f"{p.msg_type} {p.id}")
            log.info("console: alert %s was ended outside the console by %s %s", ref, p.msg_type, p.id)
            done = True
        return done

    # -- the fleet -------------------------------------------------------------------------------------------

    def stations(self) -> list[StationRow]:
        return self.db.stations()

    def station(self, sid: str) -> StationRow | None:
        return next((s for s in self.db.stations() if s.sid == sid), None)

    def fleet(self) -> list[dict]:
        now = self._now()
        out = []
        for s in self.db.stations():
            tele = self.db.last_telemetry(s.sid)
            last = self.db.last_played(s.sid)
            faults = []
            if tele and tele[1] == "fault":
                faults.append(tele[2] or "fault")
            failed = self.db.failures_since(s.sid, now - 7 * DAY)
            content = self.db.content_status(s.sid)
            out.append({
                "row": s,
                "uptime_s": self.running_for(s, tele, now),
                "up_24h": self.db.uptime(s.sid, now - DAY, now),
                "up_7d": self.db.uptime(s.sid, now - 7 * DAY, now),
                "last": last,
                "faults": faults,
                "failed_7d": failed,
                "content_missing": content[0] if content else 0,
                "content_failed": content[1] if content else 0,
                "tele_state": tele[1] if tele else None,
            })
        return out

    @staticmethod
    def running_for(s: StationRow, tele: tuple | None, now: float) -> float | None:
        """Seconds the station has been running: its last telemetry's uptime carried forward, or (before any
        telemetry of this boot: telemetry comes every few minutes) the time since its birth message."""
        if s.state != "online" or s.state_since is None:
            return None
        if tele is None or tele[0] < s.state_since or tele[3].get("uptime_s") is None:
            return max(0.0, now - s.state_since)
        return tele[3]["uptime_s"] + max(0.0, now - tele[0])

    def playlog(self, sid: str, limit: int = 100) -> list[tuple]:
        return self.db.query(
            "SELECT COALESCE(actual_start, requested_start), item_kind, title, ref, level, played_s, requested_s,"
            " result, reason FROM playlog WHERE sid = ? ORDER BY COALESCE(actual_start, requested_start) DESC"
            " LIMIT ?",
            (sid, limit),
        )

    def daily_uptime(self, sid: str, tz: tzinfo, days: int = 14) -> list[tuple[float, float | None]]:
        """(start of day, share online) for the last `days` days in `tz`, oldest first; today up to now."""
        now = self._now()
        today = datetime.fromtimestamp(now, tz).date()
        out = []
        for i in range(days - 1, -1, -1):
            day = today - timedelta(days=i)
            lo = datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
            nxt = day + timedelta(days=1)
            hi = min(now, datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp())
            out.append((lo, self.db.uptime(sid, lo, hi) if hi > lo else None))
        return out

    def scope_choices(self) -> list[ScopeChoice]:
        stations = self.db.stations()
        groups: dict[tuple[str, str], list[StationRow]] = {}
        for s in stations:
            groups.setdefault(("district", s.district), []).append(s)
            groups.setdefault(("commune", f"{s.district}/{s.commune}"), []).append(s)
            groups.setdefault(("station", s.sid), []).append(s)
        order = {"district": 0, "commune": 1, "station": 2}
        return [
            ScopeChoice(scope, level, len(rows), sum(r.state == "online" for r in rows))
            for (level, scope), rows in sorted(groups.items(), key=lambda kv: (kv[0][1], order[kv[0][0]]))
        ]

    def stations_in(self, scope: Scope) -> list[StationRow]:
        return [s for s in self.db.stations() if scope.contains(Scope(s.district, s.commune, s.station))]

    # -- alerts ----------------------------------------------------------------------------------------------

    def draft(self, *, status: str, scope: str, text: str, headline: str = "", severity: str = "unknown",
              expires: str = "30m", audio_file: Path | None = None, audio_name: str = "") -> Draft:
        """Validate a form; raises FormError with a catalogue key."""
        if status not in STATUSES:
            raise FormError("err_status")
        try:
            sc = Scope.parse(scope.strip())
        except TopicError:
            raise FormError("err_scope_unknown", scope=scope) from None
        stations = self.stations_in(sc)
        if not stations or str(sc) not in {c.scope for c in self.scope_choices()}:
            raise FormError("err_scope_unknown", scope=scope)
        text = text.strip()
        headline = headline.strip()
        if severity not in SEVERITIES:
            raise FormError("err_severity")
        if expires not in EXPIRIES:
            raise FormError("err_expires")
        if len(text) > MAX_TEXT:
            raise FormError("err_text_long", max=MAX_TEXT)
        if len(headline) > MAX_HEADLINE:
            raise FormError("err_headline_long", max=MAX_HEADLINE)
        audio = None
        if audio_file is not None:
            if self.content_dir is None or not self.content_base_url:
                raise FormError("err_no_content_dir")
            try:
                audio = alerts.audio_ref(audio_file, content_dir=self.content_dir,
                                         content_base_url=self.content_base_url)
            except (ValueError, OSError) as e:
                log.warning("console: audio upload %r not stored: %s", audio_name, e)
                raise FormError("err_audio_store") from None
        if not text and audio is None:
            raise FormError("err_text_empty")
        d = Draft(status, sc, text, headline, severity, expires, audio, audio_name, stations)
        self._build(d, datetime.now().astimezone(), None)  # the payload model's own checks, now
        return d

    def draft_update(self, alert_id: str, *, text: str, headline: str = "", severity: str = "unknown",
                     expires: str = "30m", audio_file: Path | None = None, audio_name: str = "") -> Draft:
        """An update of an active alert: same status and scope, new content and validity. Raises FormError."""
        a = self.store.alert(alert_id)
        if a is None:
            raise FormError("err_alert_unknown", id=alert_id)
        if not a.active(self._now()):
            raise FormError("err_alert_not_active", id=alert_id)
        d = self.draft(status=a.status, scope=a.scope, text=text, headline=headline, severity=severity,
                       expires=expires, audio_file=audio_file, audio_name=audio_name)
        d.updates = a.id
        return d

    @staticmethod
    def _build(d: Draft, now: datetime, alert_id: str | None):
        try:
            return alerts.build_alert(
                scope=d.scope, status=d.status, now=now, expires_in=timedelta(seconds=EXPIRIES[d.expires]),
                text=d.text, audio=d.audio, severity=d.severity, headline=d.headline, alert_id=alert_id,
                updates=d.updates,
            )
        except ValidationError as e:
            raise FormError("err_payload", detail=describe_errors(e)) from None

    def send(self, d: Draft, *, user: str, ip: str) -> str:
        """Sign, publish (waits for the broker's PUBACK), record and audit. Raises MqttError, FormError."""
        if d.updates is not None:
            # Checked again at sending: an alert cancelled (or updated) since the draft was made must not come
            # back as an update: a station that no longer has it would play the update as a new alert.
            a = self.store.alert(d.updates)
            if a is None or not a.active(self._now()):
                raise FormError("err_alert_not_active", id=d.updates)
        now = datetime.now().astimezone()
        payload = self._build(d, now, None)
        with self._sending_lock:
            self._sending.add(payload.id)
        try:
            return self._send(d, payload, now, user=user, ip=ip)
        finally:
            with self._sending_lock:
                self._sending.discard(payload.id)

    def _send(self, d: Draft, payload: AlertPayload, now: datetime, *, user: str, ip: str) -> str:
        if self.client is None or not self.client.connected:
            # Refuse rather than let paho queue it: "not sent" must stay true, not turn into "sent later".
            self.store.audit(user, "alert-failed", status=d.status, scope=str(d.scope), alert_id=payload.id,
                             detail="not connected to the broker; nothing sent", ip=ip)
            raise MqttError("not connected to the broker")
        unconfirmed: MqttError | None = None
        try:
            alerts.publish_alert(self.client, payload, self.key, now)
        except MqttError as e:
            # The broker did not confirm: the alert may still go out (paho resends on reconnect), so it is
            # recorded like a sent one, with its cancel button, and the officer is told.
            unconfirmed = e
            self.store.audit(user, "alert-failed", status=d.status, scope=str(d.scope), alert_id=payload.id,
                             detail=f"not confirmed by the broker: {e}", ip=ip)
        self.store.record_alert(
            id=payload.id, status=d.status, scope=str(d.scope), headline=d.headline, text=d.text,
            audio_url=d.audio.url if d.audio else "", issued=now.timestamp(), expires=payload.expires.timestamp(),
            sent_by=user, expected=[s.sid for s in d.stations], replaces=d.updates,
        )
        if d.updates is not None:
            self.store.record_replaced(d.updates, payload.id, user)
        if unconfirmed is not None:
            raise Unconfirmed(payload.id, str(unconfirmed))
        what = d.text[:200] if d.text else f"audio {d.audio_name} sha256 {d.audio.sha256}" if d.audio else ""
        if d.updates is not None:
            what = f"replaces {d.updates}; {what}"
        self.store.audit(user, "update" if d.updates else "alert", status=d.status, scope=str(d.scope),
                         alert_id=payload.id, detail=f"{len(d.stations)} stations; {what}", ip=ip)
        log.info("console: %s sent %s %s %s to %s", user, d.status, payload.msg_type, payload.id, d.scope)
        return payload.id

    def cancel(self, alert_id: str, *, user: str, ip: str) -> str:
        """Publish the cancel at once (no confirmation: stopping an alert must never wait). Returns its id."""
        a = self.store.alert(alert_id)
        if a is None:
            raise FormError("err_alert_unknown", id=alert_id)
        if self.client is None:
            raise MqttError("no broker connection")
        started = time.monotonic()
        now = datetime.now().astimezone()
        payload = alerts.build_cancel(alert_id, scope=Scope.parse(a.scope), status=a.status, now=now,
                                      expires_in=timedelta(hours=1))
        with self._sending_lock:
            self._sending.add(payload.id)
        try:
            try:
                alerts.publish_alert(self.client, payload, self.key, now)
            except MqttError as e:
                self.store.audit(user, "cancel-failed", status=a.status, scope=a.scope, alert_id=alert_id,
                                 detail=str(e), ip=ip)
                raise
            self.store.record_cancel(alert_id, payload.id, user)
        finally:
            with self._sending_lock:  # only now: heard back before this, it would be taken for someone else's
                self._sending.discard(payload.id)
        elapsed = time.monotonic() - started
        self.store.audit(user, "cancel", status=a.status, scope=a.scope, alert_id=alert_id,
                         detail=f"cancel {payload.id} acknowledged by the broker in {elapsed:.3f} s", ip=ip)
        log.info("console: %s cancelled alert %s (%s) with %s", user, alert_id, a.scope, payload.id)
        return payload.id

    def alerts(self) -> list[SentAlert]:
        return self.store.alerts()

    def alert(self, alert_id: str) -> SentAlert | None:
        return self.store.alert(alert_id)

    def acks(self, a: SentAlert) -> list[StationAck]:
        """Per station in scope (expected at send time, plus any that acked): its ack states in order."""
        rows = self.db.query("SELECT sid, state, reason, at FROM acks WHERE ref = ? ORDER BY at, received", (a.id,))
        by: dict[str, list[tuple[str, str]]] = {sid: [] for sid in a.expected}
        for sid, state, reason, _ in rows:
            by.setdefault(sid, []).append((state, reason))
        out = []
        for sid in sorted(by):
            seq = by[sid]
            reason = next((r for _, r in reversed(seq) if r), "")
            # Acks may arrive out of order (QoS 1 redelivery): the furthest state is the current one.
            state = max((s for s, _ in seq), key=lambda s: ACK_RANK.get(s, 0)) if seq else None
            out.append(StationAck(sid, state, tuple(s for s, _ in seq), reason))
        return out

    def active(self, a: SentAlert) -> bool:
        return a.active(self._now())
