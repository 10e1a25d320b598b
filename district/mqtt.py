"""A small MQTT 5 client for the district tools (alert, cancel, watch, the status collector).

Blocking and simple on purpose: a command connects, publishes and waits for the broker's PUBACK, or subscribes
and hands every message to a callback. paho runs its network thread (`loop_start`); our callbacks only record
results and wake the waiting caller, and never raise (an exception would kill paho's thread).

    with DistrictClient.from_url("mqtts://broker.example:8883", cafile="ca.pem") as c:
        c.publish("loa/v1/hoa-vang/alert", data, retain=True, expiry_s=1800)
        c.subscribe(["loa/v1/hoa-vang/+/+/ack"], on_message)

URLs: `mqtt://[user[:password]@]host[:port]` (plain, default port 1883) and `mqtts://...` (TLS, default port
8883). TLS uses `--cafile` when given (else the system CAs) and a client certificate when `--cert`/`--cert-key`
are given.
"""

from __future__ import annotations

import argparse
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from firmware.protocol.broker import BrokerAddress, parse_url

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0


class MqttError(RuntimeError):
    """Could not connect, publish or subscribe; the message says which broker and why."""


# One URL parser for the whole project (the station's): same fields, same errors.
BrokerUrl = BrokerAddress
parse_broker_url = parse_url


@dataclass(frozen=True, slots=True)
class Message:
    """One message received on a subscription. `expiry_s` is the remaining MQTT 5 message expiry, if any."""

    topic: str
    payload: bytes
    retained: bool
    expiry_s: int | None = None


def add_broker_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Add `--broker URL --cafile PEM --cert PEM --cert-key PEM` to a sub-parser.

    The client key is `--cert-key`, not `--key`: `--key` is the district's *signing* key in alert commands."""
    parser.add_argument(
        "--broker", required=required, metavar="URL", help="mqtt://host:port or mqtts://host:port"
    )
    parser.add_argument("--cafile", help="CA certificate (PEM) to verify the broker (mqtts)")
    parser.add_argument("--cert", help="client certificate (PEM) for mqtts")
    parser.add_argument(
        "--cert-key", dest="cert_key", metavar="PEM", help="client certificate key (PEM) for mqtts"
    )


def client_from_args(args: argparse.Namespace, *, client_id: str | None = None) -> DistrictClient:
    """Build (not connect) a client from the arguments of `add_broker_arguments`."""
    return DistrictClient.from_url(
        args.broker,
        cafile=getattr(args, "cafile", None),
        cert=getattr(args, "cert", None),
        key=getattr(args, "cert_key", None),
        client_id=client_id,
    )


class DistrictClient:
    """A connected MQTT 5 session. Use as a context manager, or `connect()` / `close()`."""

    def __init__(
        self,
        url: BrokerUrl,
        *,
        cafile: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        client_id: str | None = None,
    ):
        self.url = url
        self._client_id = client_id or f"loa-district-{uuid.uuid4().hex[:12]}"
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=paho.MQTTv5,
        )
        if url.username:
            self._client.username_pw_set(url.username, url.password)
        if url.tls:
            self._client.tls_set(ca_certs=cafile, certfile=cert, keyfile=key)
        elif cafile or cert or key:
            raise MqttError(f"{url}: --cafile/--cert/--cert-key need an mqtts:// broker URL")
        self._cond = threading.Condition()
        self._connected = False
        self._connect_error: str | None = None
        self._acks: dict[int, tuple[bool, str]] = {}  # mid -> (ok, reason), for PUBACK and SUBACK
        self._renewals: set[int] = set()  # SUBACK mids of subscriptions renewed after a reconnect
        self._subscriptions: list[tuple[str, int, Callable[[Message], None]]] = []
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    @classmethod
    def from_url(cls, url: str, **kwargs) -> DistrictClient:
        try:
            parsed = parse_broker_url(url)
        except ValueError as e:
            raise MqttError(str(e)) from None
        return cls(parsed, **kwargs)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def connect(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> DistrictClient:
        try:
            self._client.connect_async(self.url.host, self.url.port, keepalive=30)
        except (OSError, ValueError) as e:
            raise MqttError(f"{self.url}: {e}") from None
        self._client.loop_start()
        with self._cond:
            ok = self._cond.wait_for(lambda: self._connected or self._connect_error, timeout_s)
            error = self._connect_error
        if error or not ok:
            self.close()
            raise MqttError(f"{self.url}: {error or f'no connection within {timeout_s:g} s'}")
        log.debug("connected to %s as %s", self.url, self._client_id)
        return self

    def close(self) -> None:
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self) -> DistrictClient:
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._connected

    # -- publish / subscribe ---------------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: int | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Publish and wait until the broker acknowledged it (QoS 1 PUBACK). Raises MqttError."""
        props = None
        if expiry_s is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = int(expiry_s)
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != paho.MQTT_ERR_SUCCESS and info.rc != paho.MQTT_ERR_NO_CONN:
            raise MqttError(f"{self.url}: publish to {topic} failed: {paho.error_string(info.rc)}")
        if qos == 0:
            return
        ok, reason = self._wait_ack(info.mid, timeout_s, f"PUBACK for {topic}")
        if not ok:
            raise MqttError(f"{self.url}: broker refused publish to {topic}: {reason}")

    def subscribe(
        self,
        topics: Iterable[str],
        callback: Callable[[Message], None],
        *,
        qos: int = 1,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Subscribe and wait for the SUBACK; `callback(Message)` is called from paho's thread (keep it short,
        it must not block). Subscriptions are renewed after a reconnect."""
        topics = list(topics)
        for t in topics:
            self._subscriptions.append((t, qos, callback))
            self._client.message_callback_add(t, self._wrap(callback))
        result, mid = self._client.subscribe([(t, SubscribeOptions(qos=qos)) for t in topics])
        if result != paho.MQTT_ERR_SUCCESS:
            raise MqttError(f"{self.url}: subscribe to {topics} failed: {paho.error_string(result)}")
        ok, reason = self._wait_ack(mid, timeout_s, f"SUBACK for {topics}")
        if not ok:
            raise MqttError(f"{self.url}: broker refused subscription to {topics}: {reason}")

    def _wait_ack(self, mid: int, timeout_s: float, what: str) -> tuple[bool, str]:
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._acks, timeout_s):
                raise MqttError(f"{self.url}: no {what} within {timeout_s:g} s")
            return self._acks.pop(mid)

    # -- paho callbacks (network thread; never raise) ------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            with self._cond:
                if reason_code.is_failure:
                    self._connect_error = f"connection refused: {reason_code}"
                    self._cond.notify_all()
                    return
                self._connected = True
                self._connect_error = None
                self._cond.notify_all()
            if self._subscriptions:
                # A reconnect: renew the subscriptions (the session started clean).
                _, mid = client.subscribe([(t, SubscribeOptions(qos=q)) for t, q, _ in self._subscriptions])
                with self._cond:
                    self._renewals.add(mid)
        except Exception:
            log.exception("on_connect failed")

    def _on_connect_fail(self, client, userdata) -> None:
        try:
            with self._cond:
                if not self._connected:
                    self._connect_error = "could not open a connection (is the broker running and reachable?)"
                self._cond.notify_all()
        except Exception:
            log.exception("on_connect_fail failed")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            with self._cond:
                self._connected = False
                self._cond.notify_all()
            if reason_code.is_failure:
                log.warning("disconnected from %s: %s", self.url, reason_code)
        except Exception:
            log.exception("on_disconnect failed")

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        try:
            with self._cond:
                self._acks[mid] = (not reason_code.is_failure, str(reason_code))
                self._cond.notify_all()
        except Exception:
            log.exception("on_publish failed")

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties) -> None:
        try:
            failures = [str(rc) for rc in reason_code_list if rc.is_failure]
            with self._cond:
                if mid in self._renewals:  # nobody waits for it: log, do not keep
                    self._renewals.discard(mid)
                    if failures:
                        log.error("%s refused renewed subscriptions: %s", self.url, ", ".join(failures))
                    return
                self._acks[mid] = (not failures, ", ".join(failures) or "granted")
                self._cond.notify_all()
        except Exception:
            log.exception("on_subscribe failed")

    def _on_message(self, client, userdata, msg) -> None:
        # Messages that match no callback filter (should not happen) are ignored.
        pass

    @staticmethod
    def _wrap(callback: Callable[[Message], None]):
        def on_message(client, userdata, msg) -> None:
            try:
                expiry = getattr(msg.properties, "MessageExpiryInterval", None) if msg.properties else None
                callback(
                    Message(
                        topic=msg.topic,
                        payload=bytes(msg.payload),
                        retained=bool(msg.retain),
                        expiry_s=expiry,
                    )
                )
            except Exception:
                log.exception("message callback failed for %s", getattr(msg, "topic", "?"))

        return on_message
