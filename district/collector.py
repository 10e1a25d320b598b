"""The district collector: subscribes to every station's status, telemetry, reports and acks, stores them.

Subscriptions are QoS 1 on a persistent session (`clean_start=False`, session expiry 7 days): a collector that
is restarted gets what was published while it was away. Two modes:

- default (no group): plain subscriptions `loa/v1/+/+/+/{status,telemetry,report,ack}`. mosquitto keeps them
  across a broker restart (persistence), so nothing is lost even when the broker restarts while the
  collector is away.
- `group="name"`: shared subscriptions `$share/name/loa/v1/+/+/+/{...}`, so several collectors of one group
  split the load. Caveat, measured on mosquitto 2.0.11: shared subscriptions of a persistent session are NOT
  restored from persistence after a broker restart (plain ones are), so messages published between the
  broker's restart and the collector's re-subscription (about 1 s: it reconnects with a 1 s backoff) are
  lost for that group. MQTT 5 also never sends retained messages to shared subscriptions (§4.8.2), so the
  retained `status` is subscribed plainly as well: a fresh collector learns which stations are online now,
  and status handling is idempotent, so receiving it twice costs nothing.

Each message is parsed strictly and stored *inside* paho's callback, before paho sends the PUBACK: a crash
between the two means a redelivery, which the (station, id) keys turn into a no-op. Anything malformed,
oversize, foreign (topic and payload disagree) or of an unknown schema is rejected with one log line and never
stored; nothing a station sends can stop the collector.

The client is written here rather than on `district.mqtt.DistrictClient`: that helper starts clean sessions
and matches callbacks by topic filter, which cannot see `$share/...` subscriptions. URL parsing and the
broker arguments are reused from it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from district.db import DistrictDb
from district.mqtt import BrokerUrl
from firmware.protocol.ack import parse_ack
from firmware.protocol.errors import Rejected
from firmware.protocol.reports import (
    MAX_REPORT_BYTES,
    DailyReport,
    PayloadError,
    parse_report,
    parse_station_topic,
    parse_status,
    parse_telemetry,
)

log = logging.getLogger(__name__)

DEFAULT_SESSION_EXPIRY_S = 7 * 86400
KINDS = ("status", "telemetry", "report", "ack")


def subscriptions(group: str | None) -> list[str]:
    if not group:
        return [f"loa/v1/+/+/+/{kind}" for kind in KINDS]
    return [f"$share/{group}/loa/v1/+/+/+/{kind}" for kind in KINDS] + ["loa/v1/+/+/+/status"]


class Collector:
    """`handle(topic, payload)` stores one message (no network: tests call it directly); `start()` connects."""

    def __init__(
        self,
        db: DistrictDb,
        *,
        url: BrokerUrl | None = None,
        group: str | None = None,
        client_id: str | None = None,
        cafile: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        keepalive_s: int = 30,
        now: Callable[[], float] = time.time,
    ):
        self.db = db
        self.url = url
        self.group = group
        self.client_id = client_id or f"loa-collector-{group or 'main'}-{socket.gethostname()}"[:64]
        self.session_expiry_s = session_expiry_s
        self.keepalive_s = keepalive_s
        self._now = now
        self.stored: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._client: paho.Client | None = None
        self._tls = (cafile, cert, key)

    # -- storing ---------------------------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> bool:
        """Parse and store one message; True when a new row was stored. Never raises."""
        try:
            return self._handle(topic, payload)
        except PayloadError as e:
            self._reject(topic, str(e))
        except Exception as e:
            log.exception("collector: failed to store message on %s", topic)
            self._reject(topic, f"internal error: {e}")
        return False

    def _reject(self, topic: str, reason: str) -> None:
        self.rejected[reason.split(":")[0][:40]] += 1
        log.warning("rejected message on %s: %s", topic[:200], reason[:300])

    def _handle(self, topic: str, payload: bytes) -> bool:
        parsed = parse_station_topic(topic)
        if parsed is None:
            raise PayloadError("not a Protocol v1 station topic")
        ids, kind = parsed
        if len(payload) > MAX_REPORT_BYTES:
            raise PayloadError(f"oversize: {len(payload)} bytes > {MAX_REPORT_BYTES}")
        now = self._now()
        if kind == "status":
            status = parse_status(payload)
            self._check_station(ids.station, status.station)
            new = self.db.add_status(ids, status, now)
            if new:
                log.info("%s/%s/%s is %s", ids.district, ids.commune, ids.station, status.state)
        elif kind == "telemetry":
            t = parse_telemetry(payload)
            self._check_station(ids.station, t.station)
            new = self.db.add_telemetry(ids, t, now)
        elif kind == "report":
            r = parse_report(payload)
            self._check_station(ids.station, r.station)
            new = self.db.add_daily(ids, r, now) if isinstance(r, DailyReport) else self.db.add_playlog(ids, r, now)
        else:
            try:
                ack = parse_ack(payload)
            except Rejected as e:
                raise PayloadError(f"ack: {e}") from None
            scope = ack.scope
            if (scope.district, scope.commune, scope.station) != (ids.district, ids.commune, ids.station):
                raise PayloadError(f"foreign: ack from {ack.station} on the topic of {ids.station}")
            new = self.db.add_ack(ids, ack.ref, ack.state, ack.reason, ack.at.timestamp(), now)
        (self.stored if new else self.duplicates)[kind] += 1
        return new

    @staticmethod
    def _check_station(topic_station: str, payload_station: str) -> None:
        if topic_station != payload_station:
            raise PayloadError(f"foreign: payload of station {payload_station!r} on the topic of {topic_station!r}")

    # -- network ---------------------------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (paho's own thread keeps reconnecting) and wait until subscribed. Raises ConnectionError."""
        if self.url is None:
            raise ValueError("no broker URL")
        c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5)
        if self.url.username:
            c.username_pw_set(self.url.username, self.url.password)
        cafile, cert, key = self._tls
        if self.url.tls:
            c.tls_set(ca_certs=cafile, certfile=cert, keyfile=key)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.reconnect_delay_set(1, 30)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        c.connect_async(self.url.host, self.url.port, keepalive=self.keepalive_s, clean_start=False, properties=props)
        self._client = c
        c.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise ConnectionError(
                f"no connection to {self.url} within {timeout_s:g} s (is the broker running and reachable?)"
            )

    def stop(self) -> None:
        c, self._client = self._client, None
        if c is None:
            return
        try:
            c.disconnect()
        finally:
            c.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            if reason_code.is_failure:
                log.error("collector: %s refused the connection: %s", self.url, reason_code)
                return
            self._connected.set()
            log.info("collector %s connected to %s (session present: %s)", self.client_id, self.url, flags.session_present)
            client.subscribe([(t, SubscribeOptions(qos=1)) for t in subscriptions(self.group)])
        except Exception:
            log.exception("collector: on_connect failed")

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties) -> None:
        try:
            refused = [str(rc) for rc in reason_code_list if rc.is_failure]
            if refused:
                log.error("collector: subscriptions refused: %s", ", ".join(refused))
            else:
                self._subscribed.set()
        except Exception:
            log.exception("collector: on_subscribe failed")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            self._connected.clear()
            log.info("collector disconnected from %s: %s", self.url, reason_code)
        except Exception:
            log.exception("collector: on_disconnect failed")

    def _on_message(self, client, userdata, msg) -> None:
        try:
            self.handle(msg.topic, bytes(msg.payload))
        except Exception:
            log.exception("collector: on_message failed")
