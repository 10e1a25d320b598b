"""What the fault tests share: a district-side collector with a persistent session, and small waits."""

from __future__ import annotations

import json
import threading
import uuid

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from firmware.adapters.mqtt import parse_url


class Collector:
    """The district's view: acks and reports of every station, on a persistent QoS 1 session (so what a station
    sends while the collector is reconnecting after a broker restart is queued for it, not lost)."""

    def __init__(self, url: str, topics=("loa/v1/+/+/+/ack", "loa/v1/+/+/+/report")):
        addr = parse_url(url)
        self.topics = list(topics)
        self.messages: list[tuple[str, dict]] = []
        self.cond = threading.Condition()
        self.connects = 0
        c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                        client_id=f"fault-collector-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.reconnect_delay_set(0.2, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.connect_async(addr.host, addr.port, keepalive=10, clean_start=False, properties=props)
        self.client = c

    def start(self) -> Collector:
        self.client.loop_start()
        assert self.wait(lambda c: c.connects > 0, 10), "collector did not connect"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        if rc.is_failure:
            return
        if not flags.session_present:
            client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.topics])
        with self.cond:
            self.connects += 1
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            doc = {"raw": bytes(msg.payload)}
        with self.cond:
            self.messages.append((msg.topic, doc))
            self.cond.notify_all()

    def wait(self, predicate, timeout: float = 20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self), timeout)

    def acks(self, ref: str) -> list[str]:
        with self.cond:
            return [d["state"] for t, d in self.messages if t.endswith("/ack") and d.get("ref") == ref]

    def playlog(self) -> dict[str, dict]:
        """Play-log entries by id (deduplicated, as the district collector does)."""
        with self.cond:
            return {d["id"]: d for t, d in self.messages if t.endswith("/report") and d.get("kind") == "playlog"}
