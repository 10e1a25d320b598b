"""district.mqtt: URLs, and what the officer sees when the broker says no."""

from __future__ import annotations

import threading

import pytest

from district.mqtt import BrokerUrl, DistrictClient, MqttError, parse_broker_url
from simulator.broker import Mosquitto


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", BrokerUrl("127.0.0.1", 1883, False)),
        ("mqtts://broker.example", BrokerUrl("broker.example", 8883, True)),
        ("mqtt://broker:2883/", BrokerUrl("broker", 2883, False)),
        ("mqtts://sender:p%40ss@broker:8884", BrokerUrl("broker", 8884, True, "sender", "p@ss")),
    ],
)
def test_broker_urls(url, expected):
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    "url", ["http://broker", "broker:1883", "mqtt://", "mqtt://b:99999", "mqtt://b/topic"]
)
def test_bad_broker_urls_are_refused(url):
    with pytest.raises(ValueError):
        parse_broker_url(url)


def test_tls_files_need_an_mqtts_url():
    with pytest.raises(MqttError, match="mqtts"):
        DistrictClient.from_url("mqtt://127.0.0.1:1883", cafile="ca.pem")


def test_a_publish_the_broker_refuses_raises_with_the_reason(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic read loa/#\n")
    broker = Mosquitto(workdir=tmp_path / "m", extra_conf=f"acl_file {acl}")
    conf = broker.conf_path.read_text()
    if "\nuser " not in conf:
        # mosquitto would drop to its own user, which cannot read pytest's 0700 temp dir.
        broker.conf_path.write_text(conf + "user root\n")
    with (
        broker,
        DistrictClient.from_url(broker.url) as c,
        pytest.raises(MqttError, match="refused publish to loa/v1/hoa-vang/alert"),
    ):
        c.publish("loa/v1/hoa-vang/alert", b"x", retain=True, expiry_s=60, timeout_s=5)


def test_publish_and_subscribe_round_trip_with_expiry(broker):
    got = []
    with DistrictClient.from_url(broker.url) as c:
        c.publish("loa/v1/d/alert", b"payload", retain=True, expiry_s=120)
    arrived = threading.Event()
    with DistrictClient.from_url(broker.url) as c:
        c.subscribe(["loa/v1/+/alert"], lambda m: (got.append(m), arrived.set()))
        assert arrived.wait(5)
    [m] = got
    assert (m.topic, m.payload, m.retained) == ("loa/v1/d/alert", b"payload", True)
    assert 0 < m.expiry_s <= 120
