"""A small MQTT 5 test client over TLS: every wait is on a condition with a timeout, never a bare sleep."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TIMEOUT_S = 5.0


class Probe:
    def __init__(
        self, port: int, ca: Path, cert: Path, key: Path, client_id: str, cond: threading.Condition | None = None
    ):
        self.port = port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key))
        # probes of one test may share a condition, so a wait can watch several clients at once
        self._cond = cond or threading.Condition()
        self.connack = None
        self.disconnected = False
        self.subacks: dict[int, list] = {}
        self.pubacks: dict[int, object] = {}
        self.messages: list[tuple[str, bytes]] = []
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        c.on_message = self._on_message

    # callbacks only record and notify (an exception would kill paho's network thread)
    def _notify(self, fn) -> None:
        with self._cond:
            fn()
            self._cond.notify_all()

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        self._notify(lambda: setattr(self, "connack", rc))

    def _on_disconnect(self, client, userdata, flags, rc, props) -> None:
        self._notify(lambda: setattr(self, "disconnected", True))

    def _on_subscribe(self, client, userdata, mid, rcs, props) -> None:
        self._notify(lambda: self.subacks.__setitem__(mid, list(rcs)))

    def _on_publish(self, client, userdata, mid, rc, props) -> None:
        self._notify(lambda: self.pubacks.__setitem__(mid, rc))

    def _on_message(self, client, userdata, msg) -> None:
        self._notify(lambda: self.messages.append((msg.topic, msg.payload)))

    def wait_for(self, predicate, timeout_s: float = TIMEOUT_S) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout_s)

    # verbs
    def connect(self) -> bool:
        """True when the broker accepted the connection (CONNACK success); False when refused or dropped."""
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=30)
        except (ssl.SSLError, OSError):
            return False
        self.client.loop_start()
        self.wait_for(lambda: self.connack is not None or self.disconnected)
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, topic: str) -> list:
        _, mid = self.client.subscribe(topic, qos=1)
        assert self.wait_for(lambda: mid in self.subacks), f"no SUBACK for {topic}"
        return self.subacks[mid]

    def publish(self, topic: str, payload: bytes = b"x", retain: bool = False):
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        assert self.wait_for(lambda: info.mid in self.pubacks), f"no PUBACK for {topic}"
        return self.pubacks[info.mid]

    def received(self, topic: str) -> list[bytes]:
        with self._cond:
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
