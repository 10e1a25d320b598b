"""The broker, configured by `broker-config`, enforces the security model on a real mosquitto over TLS."""

from __future__ import annotations

import pytest

from tests.provisioning.conftest import cli

QUIET_S = 1.0  # how long "never arrives" is watched for, after a positive control proved delivery works

NOT_AUTHORIZED = 0x87


@pytest.fixture
def fleet(district_dir, tls_broker):
    for commune, station in (("c1", "s1"), ("c1", "s2"), ("c2", "s3")):
        assert cli("station", "--district-dir", district_dir, "--commune", commune, "--station", station) == 0
    return tls_broker.start()


def _granted(reason_codes) -> bool:
    return all(not rc.is_failure for rc in reason_codes)


def test_station_connects_with_its_certificate_and_writes_its_own_topics(fleet):
    collector = fleet.account("collector")
    assert collector.connect()
    assert _granted(collector.subscribe("loa/v1/lx/#"))
    s1 = fleet.station("s1")
    assert s1.connect()
    for kind in ("status", "telemetry", "report", "ack"):
        topic = f"loa/v1/lx/c1/s1/{kind}"
        assert not s1.publish(topic, b"ok").is_failure
        assert collector.wait_for(lambda t=topic: collector.received(t) == [b"ok"]), topic


FORGED = [
    "loa/v1/lx/c1/s2/status",  # another station, same commune
    "loa/v1/lx/c2/s3/ack",  # another station, another commune
    "loa/v1/lx/c2/s1/status",  # its own id under another commune
    "loa/v1/lx/alert",
    "loa/v1/lx/schedule",
    "loa/v1/lx/c1/alert",
    "loa/v1/lx/c1/s1/alert",  # even its own alert/schedule/cmd topics are district -> station only
    "loa/v1/lx/c1/s1/schedule",
    "loa/v1/lx/c1/s1/cmd",
    "loa/v1/lx/c1/s2/cmd",
    "loa/v1/other/c1/s1/status",
]


def test_station_cannot_publish_outside_its_own_topics(fleet):
    collector = fleet.account("collector")
    assert collector.connect()
    assert _granted(collector.subscribe("loa/v1/#"))
    s1 = fleet.station("s1")
    assert s1.connect()
    for topic in FORGED:
        rc = s1.publish(topic, b"forged")
        assert rc.value == NOT_AUTHORIZED, f"PUBACK {rc} for {topic}"
    # positive control: a permitted message published after the forged ones arrives; they never do
    assert not s1.publish("loa/v1/lx/c1/s1/status", b"control").is_failure
    assert collector.wait_for(lambda: collector.received("loa/v1/lx/c1/s1/status") == [b"control"])
    assert not collector.wait_for(lambda: any(collector.received(t) for t in FORGED), timeout_s=QUIET_S)


def test_station_receives_its_district_commune_and_own_topics_only(fleet):
    sender = fleet.account("sender")
    assert sender.connect()
    s1 = fleet.station("s1")
    assert s1.connect()
    allowed = [
        "loa/v1/lx/alert", "loa/v1/lx/schedule", "loa/v1/lx/c1/alert", "loa/v1/lx/c1/schedule",
        "loa/v1/lx/c1/s1/alert", "loa/v1/lx/c1/s1/schedule", "loa/v1/lx/c1/s1/cmd",
        "loa/v1/lx/policy", "loa/v1/lx/c1/policy", "loa/v1/lx/c1/s1/policy",
    ]
    others = ["loa/v1/lx/c1/s2/cmd", "loa/v1/lx/c1/s2/alert", "loa/v1/lx/c2/alert", "loa/v1/lx/c2/s3/schedule",
              "loa/v1/lx/c2/policy"]
    for t in allowed:
        assert _granted(s1.subscribe(t)), t
    # mosquitto 2.0's acl_file does not check subscriptions: its SUBACK grants them and the ACL is enforced on
    # delivery instead (a broker that checks them answers 0x87). Either way the station never receives them.
    for t in others:
        codes = [rc.value for rc in s1.subscribe(t)]
        assert codes == ([NOT_AUTHORIZED] if fleet.acl == "dynsec" else [1]), t
    s1.subscribe("loa/v1/lx/#")  # a wildcard must not widen what it receives either
    s2 = fleet.station("s2")
    assert s2.connect()
    assert _granted(s2.subscribe("loa/v1/lx/c1/s2/cmd"))
    for t in others + allowed:
        assert not sender.publish(t, t.encode()).is_failure, t
    for t in allowed:
        assert s1.wait_for(lambda t=t: t.encode() in s1.received(t)), t
    assert s2.wait_for(lambda: s2.received("loa/v1/lx/c1/s2/cmd"))  # control: the others' messages did flow
    assert not s1.wait_for(lambda: any(s1.received(t) for t in others), timeout_s=QUIET_S)


def test_sender_writes_alerts_and_cannot_forge_station_reports(fleet):
    sender = fleet.account("sender")
    assert sender.connect()
    for t in ("loa/v1/lx/alert", "loa/v1/lx/c2/schedule", "loa/v1/lx/c2/s3/cmd"):
        assert not sender.publish(t).is_failure, t
    for t in ("loa/v1/lx/c1/s1/status", "loa/v1/lx/c1/s1/report", "loa/v1/other/alert"):
        assert sender.publish(t).value == NOT_AUTHORIZED, t


def test_collector_reads_the_district_with_a_shared_subscription_and_cannot_publish(fleet):
    collector = fleet.account("collector")
    assert collector.connect()
    # the filter district/collector.py uses (any district: the ACL still limits delivery to this one)
    assert _granted(collector.subscribe("$share/collectors/loa/v1/+/+/+/status"))
    s3 = fleet.station("s3")
    assert s3.connect()
    assert not s3.publish("loa/v1/lx/c2/s3/status", b"online").is_failure
    assert collector.wait_for(lambda: collector.received("loa/v1/lx/c2/s3/status") == [b"online"])
    assert collector.publish("loa/v1/lx/alert").value == NOT_AUTHORIZED
    assert collector.publish("loa/v1/lx/c2/s3/status").value == NOT_AUTHORIZED


def test_client_without_a_district_certificate_is_refused(fleet, tmp_path):
    # a certificate from another district's CA
    other = tmp_path / "other"
    assert cli("init-district", "--district", "lx", "--out", other) == 0
    assert cli("station", "--district-dir", other, "--commune", "c1", "--station", "s1") == 0
    tls = other / "stations/s1/tls"
    impostor = fleet.client(tls / "station.crt", tls / "station.key", "s1")
    assert not impostor.connect()


def test_revoked_station_is_refused_and_loses_its_acl(fleet, district_dir):
    assert fleet.station("s2").connect()
    assert cli("revoke", "s2", "--district-dir", district_dir) == 0
    fleet.restart()  # the admin re-runs broker-config and restarts mosquitto
    conf = (fleet.workdir / "conf")
    assert "crlfile" in (conf / "mosquitto.conf").read_text()
    assert fleet.has_account("s1") and not fleet.has_account("s2")
    # the revoked station still has its key and certificate on its card; the broker refuses them
    revoked = next((district_dir / "revoked").glob("s2-*")) / "tls"
    assert not fleet.client(revoked / "station.crt", revoked / "station.key", "s2").connect()
    assert "certificate verify failed" in fleet.mosq.log()  # it connected before the revocation
    assert fleet.station("s1").connect()  # the others are unaffected


def test_local_listener_lets_loopback_tools_watch_but_not_publish(district_dir, tmp_path):
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from simulator.broker import Mosquitto, free_port

    tls_port, local_port = free_port(), free_port()
    conf = tmp_path / "conf"
    assert cli("broker-config", "--district-dir", district_dir, "--out", conf, "--port", tls_port,
               "--bind", "127.0.0.1", "--local-port", local_port, "--persistence-dir", f"{tmp_path}/",
               "--log-dest", "stderr") == 0
    text = (conf / "mosquitto.conf").read_text()
    assert f"listener {local_port} 127.0.0.1" in text
    # run it as root so it can read the pytest tmp dir; the listener rules are what is under test
    with Mosquitto(port=local_port, conf_text=text + "user root\n", workdir=tmp_path / "run"):
        done = threading.Event()
        acks = {}
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="local-tool", protocol=mqtt.MQTTv5)
        c.on_connect = lambda *a: done.set()
        c.on_publish = lambda client, u, mid, rc, p: (acks.__setitem__(mid, rc), done.set())
        c.connect("127.0.0.1", local_port)
        c.loop_start()
        try:
            assert done.wait(5)
            done.clear()
            info = c.publish("loa/v1/lx/alert", b"x", qos=1)
            assert done.wait(5)
            assert acks[info.mid].value == NOT_AUTHORIZED
        finally:
            c.disconnect()
            c.loop_stop()


def test_a_station_key_cannot_connect_as_another_station(fleet):
    s2 = fleet.station("s2")
    assert s2.connect()
    tls = fleet.district_dir / "stations/s1/tls"
    thief = fleet.client(tls / "station.crt", tls / "station.key", "s2")  # s1's key, s2's client id
    assert thief.connect()  # the broker replaces the client id with the CN, s1
    assert not s2.wait_for(lambda: s2.disconnected, timeout_s=QUIET_S)  # s2 is not kicked off
    assert not thief.publish("loa/v1/lx/c1/s1/status", b"still s1").is_failure
    assert thief.publish("loa/v1/lx/c1/s2/status", b"as s2").value == NOT_AUTHORIZED


def test_each_tool_instance_has_its_own_certificate_and_they_coexist(fleet, district_dir):
    assert cli("account", "--district-dir", district_dir, "--kind", "collector", "--instance", "2") == 0
    fleet.restart()  # broker-config picks up the new account
    first, second = fleet.account("collector"), fleet.account("collector-2")
    assert first.connect() and second.connect()
    for c in (first, second):
        assert _granted(c.subscribe("$share/collectors/loa/v1/+/+/+/status"))
    s1 = fleet.station("s1")
    assert s1.connect()
    for n in range(6):
        assert not s1.publish("loa/v1/lx/c1/s1/status", str(n).encode()).is_failure
    got = lambda: len(first.received("loa/v1/lx/c1/s1/status")) + len(second.received("loa/v1/lx/c1/s1/status"))  # noqa: E731
    assert first.wait_for(lambda: got() == 6)  # shared: each message to exactly one of the pool
    assert not first.disconnected and not second.disconnected


def test_broker_config_never_replaces_a_directory_it_did_not_write(district_dir, tmp_path, capsys):
    out = tmp_path / "etc-mosquitto"
    out.mkdir()
    (out / "mosquitto.conf").write_text("# the admin's own broker\nlistener 1883\n")
    assert cli("broker-config", "--district-dir", district_dir, "--out", out) == 1
    assert "refusing to replace it" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mosquitto.conf"]
    fresh = tmp_path / "fresh"
    assert cli("broker-config", "--district-dir", district_dir, "--out", fresh) == 0
    assert cli("broker-config", "--district-dir", district_dir, "--out", fresh) == 0  # its own output: replaced


def test_the_firmware_link_works_with_its_provisioned_config(fleet, district_dir):
    """The chain end to end: generated station.toml -> the firmware's own MQTT adapter -> TLS with the station
    certificate (server name checked against the broker certificate) -> ACL."""
    import json
    from datetime import UTC, datetime

    config = pytest.importorskip("firmware.config")
    adapter = pytest.importorskip("firmware.adapters.mqtt")
    reports = pytest.importorskip("firmware.protocol.reports")
    topics = pytest.importorskip("firmware.protocol.topics")

    files = district_dir / "stations/s1"
    text = (files / "station.toml").read_text()
    # on the Pi the files are under /etc/loa and the broker is at its real name; here: the district dir and the
    # test broker (the certificate's default names include localhost)
    text = text.replace("/etc/loa/tls/", f"{files}/tls/").replace(":8883", f":{fleet.port}")
    cfg = config.parse_config_text(text, "station.toml")
    b, st = cfg.broker, cfg.station
    assert b.url == f"mqtts://localhost:{fleet.port}"
    collector = fleet.account("collector")
    assert collector.connect()
    assert _granted(collector.subscribe("loa/v1/lx/c1/s1/status"))
    sender = fleet.account("sender")
    assert sender.connect()

    cond, got = fleet.cond, []

    def on_message(topic, payload, retained):
        with cond:
            got.append((topic, payload))
            cond.notify_all()

    link = adapter.station_link(
        b.url, reports.StationIds(st.district, st.commune, st.id), fw="test", boot_id="boot-1", config_hash="h",
        wall=lambda: datetime.now(UTC), subscriptions=topics.station_subscriptions(topics.Scope(st.district, st.commune, st.id)),
        on_message=on_message, keepalive_s=b.keepalive_s,
        tls=adapter.TlsFiles(ca=b.ca_file, cert=b.cert_file, key=b.key_file),
    )
    link.start()
    try:
        status = "loa/v1/lx/c1/s1/status"
        assert collector.wait_for(lambda: any(json.loads(p).get("state") == "online" for p in collector.received(status)))
        assert not sender.publish("loa/v1/lx/c1/s2/cmd", b"not for s1").is_failure
        assert not sender.publish("loa/v1/lx/c1/alert", b"for the commune", retain=True).is_failure
        assert collector.wait_for(lambda: ("loa/v1/lx/c1/alert", b"for the commune") in got)
        assert all(t != "loa/v1/lx/c1/s2/cmd" for t, _ in got)
    finally:
        link.stop()
    assert collector.wait_for(lambda: any(json.loads(p).get("state") == "offline" for p in collector.received(status)))
