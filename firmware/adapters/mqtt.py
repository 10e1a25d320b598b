"""The station's MQTT link to the district (`firmware.ports.Link`), paho-mqtt 2.x, MQTT 5.

What the broker sees of a station:
- a persistent session (`clean_start=False`, `session_expiry_s`, default one day) so QoS 1 subscriptions and
  the messages queued for them survive the short outages of a 3G link;
- a Will: retained `.../status` `{"state": "offline", ...}`, published by the broker when the station vanishes;
- a birth message on every connect: retained `.../status` `{"state": "online", fw, boot_id, config_hash, since}`;
- keepalive `DEFAULT_KEEPALIVE_S` = 50 s. The arithmetic: MQTT 5 §3.1.2.10 lets the broker close a client it has
  heard nothing from for 1.5 x keepalive, and mosquitto then publishes the Will at once (Will delay 0). So a
  station whose power or 3G link dies is declared dead 1.5 x 50 = 75 s after its last packet. mosquitto 2.0.11
  (Debian's) only sweeps keepalives every ~6 s and counts in whole seconds, which adds up to 7 s (measured:
  the Will came 1.5 x keepalive + 3..5 s late in `tests/adapters/test_mqtt_link.py`): at most 82 s, inside
  the 90 s promise. 60 s would give 90 + 7 s and miss it; 55 s would leave 0.5 s of margin. The price of 50 s
  is one PINGREQ/PINGRESP pair (2 + 2 bytes of MQTT) per idle keepalive: about 7 KB a day.

Loops. A station uses its own paho network thread (`loop_start`). The fleet simulator runs hundreds of links
on one thread: pass `loop=SharedLoop()` and every link registers its socket with one selector; the shared
thread calls `loop_read/loop_write/loop_misc` and does the reconnect backoff itself. All paho loop handling
lives in `_OwnThread` and `SharedLoop`; `MqttLink` itself never touches the network loop.

Callbacks never raise: each paho callback is wrapped in try/except and logs. `on_message`, `on_link` and the
`on_done` given to `publish()` are called from the network thread and must only enqueue.
"""

from __future__ import annotations

import collections
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from firmware.protocol.broker import parse_url
from firmware.protocol.reports import StationIds, Status, encode

log = logging.getLogger(__name__)

DEFAULT_KEEPALIVE_S = 50
BROKER_SWEEP_S = 7.0  # mosquitto 2.0.x checks keepalives every ~6 s, in whole seconds
DEFAULT_SESSION_EXPIRY_S = 86400
DEFAULT_RECONNECT_MIN_S = 1.0
DEFAULT_RECONNECT_MAX_S = 120.0


def offline_within_s(keepalive_s: float, broker_sweep_s: float = BROKER_SWEEP_S) -> float:
    """The longest a dead station stays `online` at the district: 1.5 x keepalive (MQTT 5 §3.1.2.10) plus
    the broker's keepalive sweep granularity."""
    return 1.5 * keepalive_s + broker_sweep_s


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """CA to verify the broker (None: system CAs) and the station's client certificate and key."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None


class MqttLink:
    """One station's link. Build it, `start()`, `publish()`, `stop()`.

    `subscriptions`: topic filters subscribed at QoS 1 on every connect (retain handling 1: retained messages
    only for a subscription the session did not have, so a reconnect does not re-download every alert).
    `birth()` is called on every connect and returns the retained `online` payload; `will_payload` is the
    retained `offline` payload the broker publishes when the station dies.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        status_topic: str,
        will_payload: bytes,
        birth: Callable[[], bytes],
        subscriptions: Sequence[str] = (),
        on_message: Callable[[str, bytes, bool], None] | None = None,
        on_link: Callable[[bool], None] | None = None,
        keepalive_s: int = DEFAULT_KEEPALIVE_S,
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        tls: TlsFiles | None = None,
        reconnect_min_s: float = DEFAULT_RECONNECT_MIN_S,
        reconnect_max_s: float = DEFAULT_RECONNECT_MAX_S,
        loop: SharedLoop | None = None,
    ):
        self.address = parse_url(url)
        self.client_id = client_id
        self.status_topic = status_topic
        self.keepalive_s = int(keepalive_s)
        self.session_expiry_s = int(session_expiry_s)
        self.reconnect_min_s = float(reconnect_min_s)
        self.reconnect_max_s = float(reconnect_max_s)
        self._birth = birth
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._on_link = on_link
        self._connected = False
        self._lock = threading.Lock()
        self._pending: dict[int, Callable[[bool], None] | None] = {}  # mid -> on_done, waiting for PUBACK
        self._early: dict[int, bool] = {}  # PUBACKs that arrived before publish() recorded the mid
        self._driver: _OwnThread | SharedLoop = loop if loop is not None else _OwnThread()

        c = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
        )
        c.max_queued_messages_set(0)
        c.max_inflight_messages_set(20)
        if self.address.username:
            c.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            tls = tls or TlsFiles()
            c.tls_set(ca_certs=tls.ca, certfile=tls.cert, keyfile=tls.key)
        elif tls and (tls.ca or tls.cert or tls.key):
            raise ValueError(f"{url}: TLS files given but the URL is not mqtts://")
        c.will_set(status_topic, will_payload, qos=1, retain=True)
        c.reconnect_delay_set(min_delay=max(1, int(self.reconnect_min_s)), max_delay=int(self.reconnect_max_s))
        c.on_connect = self._cb_connect
        c.on_disconnect = self._cb_disconnect
        c.on_publish = self._cb_publish
        c.on_message = self._cb_message
        c.on_subscribe = self._cb_subscribe
        self.client = c

    # -- Link ------------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def alive(self) -> bool:
        """The thread that drives this link is running (the watchdog is fed only while it is; connected or
        not: a link that keeps retrying is alive)."""
        return self._driver.alive(self)

    def connect_args(self) -> dict:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        return {
            "host": self.address.host,
            "port": self.address.port,
            "keepalive": self.keepalive_s,
            "clean_start": False,
            "properties": props,
        }

    def start(self) -> None:
        self.client.connect_async(**self.connect_args())
        self._driver.attach(self)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Leave cleanly: DISCONNECT with reason 0x04 makes the broker publish our Will (retained offline),
        so the district sees the station offline at once. Pending publishes are reported failed."""
        try:
            if self._connected:
                rc = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
                self.client.disconnect(reasoncode=rc)
        except Exception:
            log.exception("%s: disconnect failed", self.client_id)
        self._driver.detach(self, timeout_s)
        self._connected = False
        with self._lock:
            pending, self._pending = self._pending, {}
        for cb in pending.values():
            _call_done(cb, False)

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: int | None = None,
        on_done: Callable[[bool], None] | None = None,
    ) -> None:
        """Queue a message; never blocks on the network. paho keeps QoS 1 messages across reconnects and
        resends them (DUP) until the broker's PUBACK, which calls `on_done(True)`."""
        props = None
        if expiry_s is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = int(expiry_s)
        try:
            info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        except (ValueError, TypeError):
            log.exception("%s: cannot publish to %s", self.client_id, topic)
            _call_done(on_done, False)
            return
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            log.warning("%s: publish to %s failed: %s", self.client_id, topic, paho.error_string(info.rc))
            _call_done(on_done, False)
            return
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._pending[info.mid] = on_done
        if early is not None:
            _call_done(on_done, early)

    def inflight(self) -> int:
        with self._lock:
            return len(self._pending)

    # -- paho callbacks (network thread; never raise) --------------------------------------------------------

    def _cb_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            if reason_code.is_failure:
                log.warning("%s: broker %s refused the connection: %s", self.client_id, self.address.host, reason_code)
                return
            if self._subscriptions:
                opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
                client.subscribe([(t, opts) for t in self._subscriptions])
            info = client.publish(self.status_topic, self._birth(), qos=1, retain=True)
            with self._lock:
                # Registered (nobody waits for it) so its PUBACK is not parked in `_early`, where a later
                # publish() reusing that mid (paho wraps at 65535) would take it for its own.
                self._pending[info.mid] = None
            self._connected = True
            log.info(
                "%s: link up to %s:%d (session present: %s)",
                self.client_id,
                self.address.host,
                self.address.port,
                flags.session_present,
            )
            self._driver.connected(self)
            if self._on_link:
                self._on_link(True)
        except Exception:
            log.exception("%s: on_connect failed", self.client_id)

    def _cb_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            was = self._connected
            self._connected = False
            log.info("%s: link down (%s)", self.client_id, reason_code)
            if was and self._on_link:
                self._on_link(False)
        except Exception:
            log.exception("%s: on_disconnect failed", self.client_id)

    def _cb_publish(self, client, userdata, mid, reason_code, properties) -> None:
        try:
            ok = not reason_code.is_failure
            if not ok:
                log.warning("%s: broker refused message %d: %s", self.client_id, mid, reason_code)
            with self._lock:
                if mid in self._pending:
                    cb = self._pending.pop(mid)
                else:
                    # publish() has not recorded this mid yet (the PUBACK beat it): it will find it here.
                    self._early[mid] = ok
                    return
            _call_done(cb, ok)
        except Exception:
            log.exception("%s: on_publish failed", self.client_id)

    def _cb_subscribe(self, client, userdata, mid, reason_code_list, properties) -> None:
        try:
            refused = [str(rc) for rc in reason_code_list if rc.is_failure]
            if refused:
                log.error("%s: subscription refused: %s", self.client_id, ", ".join(refused))
        except Exception:
            log.exception("%s: on_subscribe failed", self.client_id)

    def _cb_message(self, client, userdata, msg) -> None:
        try:
            if self._on_message:
                self._on_message(msg.topic, bytes(msg.payload), bool(msg.retain))
        except Exception:
            log.exception("%s: on_message failed for %s", self.client_id, getattr(msg, "topic", "?"))


def _call_done(cb: Callable[[bool], None] | None, ok: bool) -> None:
    if cb is None:
        return
    try:
        cb(ok)
    except Exception:
        log.exception("publish on_done callback failed")


# -- the station's status payloads ---------------------------------------------------------------------------


def station_link(
    url: str,
    ids: StationIds,
    *,
    fw: str,
    boot_id: str,
    config_hash: str,
    wall: Callable[[], datetime],
    subscriptions: Sequence[str] = (),
    on_message: Callable[[str, bytes, bool], None] | None = None,
    on_link: Callable[[bool], None] | None = None,
    **kwargs,
) -> MqttLink:
    """An `MqttLink` with the station's Will and birth message (Protocol v1 status), client id = station id."""
    will = Status(state="offline", station=ids.station, boot_id=boot_id, fw=fw, config_hash=config_hash)

    def birth() -> bytes:
        now = wall()
        return encode(Status(
            state="online",
            station=ids.station,
            boot_id=boot_id,
            fw=fw,
            config_hash=config_hash,
            since=now,
            ts=now,
        ))

    return MqttLink(
        url,
        client_id=ids.station,
        status_topic=ids.topic("status"),
        will_payload=encode(will),
        birth=birth,
        subscriptions=subscriptions,
        on_message=on_message,
        on_link=on_link,
        **kwargs,
    )


# -- network loops -------------------------------------------------------------------------------------------


class _OwnThread:
    """One paho network thread per link (`loop_start`): paho reconnects with `reconnect_delay_set` backoff."""

    def attach(self, link: MqttLink) -> None:
        link.client.loop_start()

    def connected(self, link: MqttLink) -> None:
        pass

    def alive(self, link: MqttLink) -> bool:
        thread = link.client._thread  # noqa: SLF001 - paho exposes no public handle on its loop_start thread
        return thread is not None and thread.is_alive()

    def detach(self, link: MqttLink, timeout_s: float) -> None:
        # loop_stop joins paho's thread; the DISCONNECT queued by stop() is written first by that thread.
        deadline = time.monotonic() + timeout_s
        while link.client.want_write() and time.monotonic() < deadline:
            time.sleep(0.01)  # the only way to see paho's outgoing buffer drain before joining
        link.client.loop_stop()


@dataclass
class _Entry:
    link: MqttLink
    next_attempt: float = 0.0
    delay_s: float = 0.0


class SharedLoop:
    """One thread driving many links through one selector (the fleet simulator: 1,000 stations on 2 cores).

    paho's external-loop hooks (`on_socket_open/close/register_write/unregister_write`) keep the selector in
    step; selector changes requested from other threads (a `publish()` that needs writing) are queued and the
    loop is woken through a socketpair, so only the loop thread ever touches the selector. Reconnects use the
    same exponential backoff as paho's own thread (`reconnect_min_s` doubling to `reconnect_max_s`).
    """

    def __init__(self, *, name: str = "loa-mqtt-shared", misc_interval_s: float = 0.5):
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._requests: collections.deque[Callable[[], None]] = collections.deque()
        self._entries: dict[paho.Client, _Entry] = {}
        self._stop = threading.Event()
        self._misc_interval_s = misc_interval_s
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._start_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    # -- called by MqttLink (any thread) ---------------------------------------------------------------------

    def attach(self, link: MqttLink) -> None:
        c = link.client
        c.on_socket_open = self._sock_open
        c.on_socket_close = self._sock_close
        c.on_socket_register_write = self._sock_want_write
        c.on_socket_unregister_write = self._sock_no_write
        self._call(lambda: self._entries.__setitem__(c, _Entry(link, 0.0, link.reconnect_min_s)))
        with self._start_lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def connected(self, link: MqttLink) -> None:
        entry = self._entries.get(link.client)
        if entry is not None:
            entry.delay_s = link.reconnect_min_s

    def alive(self, link: MqttLink) -> bool:
        return self._thread.is_alive()

    def detach(self, link: MqttLink, timeout_s: float) -> None:
        done = threading.Event()

        def remove() -> None:
            try:
                c = link.client
                if c.want_write():
                    c.loop_write()
                self._entries.pop(c, None)
                sock = c.socket()
                if sock is not None:
                    self._unregister(sock)
                    c._sock_close()  # noqa: SLF001 - paho has no public "drop the socket" for external loops
            finally:
                done.set()

        if self._started and self._thread.is_alive():
            self._call(remove)
            done.wait(timeout_s)
        else:
            remove()

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake()
        if self._started:
            self._thread.join(timeout_s)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- paho socket hooks -----------------------------------------------------------------------------------

    def _sock_open(self, client, userdata, sock) -> None:
        self._call(lambda: self._register(sock, client, selectors.EVENT_READ))

    def _sock_close(self, client, userdata, sock) -> None:
        self._call(lambda: self._unregister(sock))

    def _sock_want_write(self, client, userdata, sock) -> None:
        self._call(lambda: self._register(sock, client, selectors.EVENT_READ | selectors.EVENT_WRITE))

    def _sock_no_write(self, client, userdata, sock) -> None:
        self._call(lambda: self._register(sock, client, selectors.EVENT_READ))

    # -- loop thread -----------------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], None]) -> None:
        if threading.current_thread() is self._thread:
            fn()
        else:
            self._requests.append(fn)
            self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already woken (buffer full) or closed

    def _register(self, sock, client, events: int) -> None:
        try:
            if sock.fileno() < 0:
                return
            try:
                self._sel.modify(sock, events, client)
            except KeyError:
                self._sel.register(sock, events, client)
        except (ValueError, OSError):
            log.debug("socket closed before it could be registered")

    def _unregister(self, sock) -> None:
        try:
            self._sel.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass

    def _run(self) -> None:
        next_misc = 0.0
        while not self._stop.is_set():
            try:
                while self._requests:
                    self._requests.popleft()()
                now = time.monotonic()
                timeout = self._connect_due(now)
                for key, mask in self._sel.select(timeout=min(timeout, self._misc_interval_s)):
                    if key.data is None:
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                        continue
                    client: paho.Client = key.data
                    if mask & selectors.EVENT_READ:
                        client.loop_read()
                    if mask & selectors.EVENT_WRITE and client.socket() is not None:
                        client.loop_write()
                now = time.monotonic()
                if now >= next_misc:
                    next_misc = now + self._misc_interval_s
                    for client in list(self._entries):
                        if client.socket() is not None:
                            client.loop_misc()
            except Exception:
                log.exception("shared MQTT loop iteration failed")

    def _connect_due(self, now: float) -> float:
        """(Re)connect every link whose socket is gone and whose backoff expired; return the next wait."""
        wait = 1.0
        for client, entry in list(self._entries.items()):
            if client.socket() is not None:
                continue
            if entry.next_attempt == 0.0:
                entry.next_attempt = now  # first attempt at once
            if now < entry.next_attempt:
                wait = min(wait, entry.next_attempt - now)
                continue
            try:
                client.reconnect()
            except (OSError, ValueError) as e:
                log.debug("%s: connect failed: %s", entry.link.client_id, e)
            entry.next_attempt = now + entry.delay_s
            entry.delay_s = min(entry.delay_s * 2, entry.link.reconnect_max_s)
            wait = min(wait, entry.delay_s)
        return max(wait, 0.0)
