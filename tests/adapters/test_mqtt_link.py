"""The station's MQTT link against a real mosquitto, with its own paho thread and on a shared loop."""

from __future__ import annotations

import json
import threading
import time

import pytest

from benchmarks.telemetry_bytes import CountingProxy
from firmware.adapters.mqtt import DEFAULT_KEEPALIVE_S, MqttLink, SharedLoop, offline_within_s, station_link
from firmware.protocol.reports import StationIds
from tests.reporting.helpers import Listener, RealClock, wait_for

IDS = StationIds("hoa-vang", "hoa-bac", "hb-01")
STATUS = IDS.topic("status")


@pytest.fixture(params=["own-thread", "shared-loop"])
def loop(request):
    if request.param == "own-thread":
        yield None
        return
    shared = SharedLoop()
    yield shared
    shared.close()


@pytest.fixture
def listener(broker):
    lst = Listener(broker.port)
    yield lst
    lst.close()


def make_link(url, loop, **kwargs) -> MqttLink:
    kwargs.setdefault("keepalive_s", 5)
    return station_link(
        url, IDS, fw="1.2.3", boot_id="boot-1", config_hash="cfg-1", wall=RealClock().wall, loop=loop,
        reconnect_min_s=0.2, reconnect_max_s=1, **kwargs,
    )


def states(listener) -> list[str]:
    return [json.loads(p)["state"] for p in listener.on(STATUS)]


def test_birth_is_retained_online_with_firmware_boot_and_config(broker, loop):
    link = make_link(broker.url, loop)
    link.start()
    try:
        wait_for(lambda: link.connected, 5, "link up")
        late = Listener(broker.port, [STATUS])  # subscribes after the birth: gets the retained copy
        try:
            msg = wait_for(lambda: late.messages, 5, "retained status")[0]
        finally:
            late.close()
        body = json.loads(msg[1])
        assert msg[2] is True
        assert body["state"] == "online"
        assert (body["fw"], body["boot_id"], body["config_hash"], body["station"]) == ("1.2.3", "boot-1", "cfg-1", "hb-01")
        assert body["since"]
    finally:
        link.stop()


def test_publish_calls_on_done_after_the_broker_acknowledged(broker, loop, listener):
    link = make_link(broker.url, loop)
    link.start()
    done = []
    try:
        wait_for(lambda: link.connected, 5, "link up")
        for i in range(30):
            link.publish(IDS.topic("report"), f"m{i}".encode(), on_done=done.append)
        wait_for(lambda: len(done) == 30, 5, "30 PUBACKs")
        assert all(done)
        assert listener.on(IDS.topic("report")) == [f"m{i}".encode() for i in range(30)]
    finally:
        link.stop()


def test_messages_published_while_the_broker_is_down_are_delivered_after_it_returns(broker, loop):
    link = make_link(broker.url, loop)
    link.start()
    done = []
    try:
        wait_for(lambda: link.connected, 5, "link up")
        broker.stop()
        wait_for(lambda: not link.connected, 5, "link down")
        for i in range(5):
            link.publish(IDS.topic("report"), f"m{i}".encode(), on_done=done.append)
        assert done == []
        broker.start()
        wait_for(lambda: len(done) == 5, 15, "5 PUBACKs after the broker came back")
        assert all(done)
    finally:
        link.stop()


def test_subscriptions_deliver_and_a_raising_callback_does_not_kill_the_link(broker, loop, listener):
    got = []

    def on_message(topic, payload, retained):
        got.append(payload)
        if payload == b"boom":
            raise RuntimeError("a bug in the runtime's handler")

    link = make_link(broker.url, loop, subscriptions=[IDS.topic("cmd")], on_message=on_message)
    link.start()
    district = MqttLink(broker.url, client_id="district-test", status_topic="loa/v1/x/y/z/status",
                        will_payload=b"{}", birth=lambda: b"{}")
    try:
        # The birth is published after SUBSCRIBE on the same connection: once it is out, the broker has the
        # subscription (it handles one connection's packets in order).
        wait_for(lambda: "online" in states(listener), 5, "birth")
        district.start()
        wait_for(lambda: district.connected, 5, "district client up")
        district.publish(IDS.topic("cmd"), b"boom")
        district.publish(IDS.topic("cmd"), b"after")
        wait_for(lambda: got == [b"boom", b"after"], 5, "both commands delivered")
    finally:
        district.stop()
        link.stop()


def test_link_changes_are_reported_up_and_down(broker, loop):
    changes = []
    link = make_link(broker.url, loop, on_link=changes.append)
    link.start()
    try:
        wait_for(lambda: changes == [True], 5, "link up")
        broker.stop()
        wait_for(lambda: changes == [True, False], 5, "link down")
        broker.start()
        wait_for(lambda: changes == [True, False, True], 15, "link up again")
    finally:
        link.stop()


def test_a_dead_link_is_shown_offline_by_the_will_within_one_and_a_half_keepalives(broker, loop, listener):
    with CountingProxy(broker.port) as proxy:
        link = make_link(proxy.url, loop, keepalive_s=1)
        link.start()
        try:
            wait_for(lambda: "online" in states(listener), 5, "birth")
            proxy.freeze()  # power cut / 3G gone: the broker hears nothing more
            t0 = time.monotonic()
            wait_for(lambda: states(listener)[-1:] == ["offline"], 10, "the Will")
            elapsed = time.monotonic() - t0
            # The promise is the broker's (1.5 keepalives + its sweep); the benchmark telemetry_bytes measures
            # it at real keepalives. Here the margin only absorbs this test's own scheduling on a loaded machine.
            assert elapsed <= offline_within_s(1) + 1.5, elapsed
        finally:
            proxy.thaw()
            link.stop()


def test_a_clean_stop_publishes_offline_at_once(broker, loop, listener):
    link = make_link(broker.url, loop)
    link.start()
    wait_for(lambda: "online" in states(listener), 5, "birth")
    link.stop()
    wait_for(lambda: states(listener)[-1:] == ["offline"], 3, "offline status after stop")


def test_stop_fails_what_was_never_acknowledged(broker, loop):
    link = make_link(broker.url, loop)
    link.start()
    wait_for(lambda: link.connected, 5, "link up")
    broker.stop()
    wait_for(lambda: not link.connected, 5, "link down")
    done = []
    link.publish(IDS.topic("report"), b"never acked", on_done=done.append)
    link.stop()
    assert done == [False]


def test_default_keepalive_shows_a_dead_station_offline_within_90_s():
    assert offline_within_s(DEFAULT_KEEPALIVE_S) <= 90


def test_shared_loop_drives_many_links_on_one_thread(broker):
    shared = SharedLoop()
    threads_before = threading.active_count()
    links = [
        MqttLink(broker.url, client_id=f"st-{i}", status_topic=f"loa/v1/d/c/st-{i}/status",
                 will_payload=b'{"state":"offline"}', birth=lambda: b'{"state":"online"}', keepalive_s=5, loop=shared)
        for i in range(50)
    ]
    try:
        for link in links:
            link.start()
        wait_for(lambda: all(link.connected for link in links), 15, "50 links up")
        assert threading.active_count() <= threads_before + 1
        done = []
        for link in links:
            link.publish("loa/v1/d/c/x/report", b"hello", on_done=done.append)
        wait_for(lambda: len(done) == 50, 10, "50 PUBACKs")
        assert all(done)
    finally:
        for link in links:
            link.stop()
        shared.close()


def test_a_broker_that_refuses_the_connection_is_logged_and_retried_without_crashing(tmp_path, loop, caplog):
    """A station whose certificate or credentials the broker does not accept (a revoked station, a typo in
    the config): the link says so in the log, never reports itself up, keeps its thread alive and retrying
    (the district may fix the broker side), and stops cleanly."""
    import logging

    from simulator.broker import Mosquitto, free_port

    caplog.set_level(logging.WARNING, logger="firmware.adapters.mqtt")
    port = free_port()
    conf = f"listener {port} 127.0.0.1\nallow_anonymous false\npersistence false\nlog_type error\n"
    changes: list[bool] = []
    with Mosquitto(port, conf_text=conf, workdir=tmp_path / "mosq") as strict:
        link = make_link(strict.url, loop, on_link=changes.append)
        link.start()
        try:
            refused = wait_for(lambda: [r for r in caplog.records if "refused the connection" in r.getMessage()],
                               10, "the refusal in the log")
            assert refused[0].getMessage() == "hb-01: broker 127.0.0.1 refused the connection: Not authorized"
            wait_for(lambda: len([r for r in caplog.records if "refused the connection" in r.getMessage()]) >= 2,
                     10, "a second attempt")  # it keeps trying, with its backoff
            assert not link.connected and True not in changes
            assert link.alive  # the watchdog keeps being fed: a refused link is not a dead thread
        finally:
            link.stop()
