"""District CLI -> real mosquitto -> station-side verification -> acks -> `loa-district watch`.

The "station" here is the protocol layer only (subscriptions, verify_alert, replay cache, ack bytes) on a plain
MQTT client: the whole-station scenarios with audio live in tests/scenarios/.
"""

from __future__ import annotations

import queue
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from district.cli import main
from district.mqtt import DistrictClient, Message
from firmware.core.alerts import Alert
from firmware.core.commands import Ack
from firmware.protocol.ack import ack_message
from firmware.protocol.errors import Rejection
from firmware.protocol.keys import load_trust_anchors
from firmware.protocol.replay import ReplayCache
from firmware.protocol.topics import Scope, station_subscriptions
from firmware.protocol.verify import verify_alert

REPO = Path(__file__).resolve().parents[2]


class ProtocolStation:
    """Subscribes like a station, verifies every alert, remembers accepted ids, acks like a station."""

    def __init__(self, url: str, scope: Scope, anchors, state_dir: Path):
        self.scope = scope
        self.anchors = anchors
        self.replay = ReplayCache(state_dir / "replay.json")
        self.results: queue.Queue = queue.Queue()
        self.client = DistrictClient.from_url(url, client_id=f"station-{scope.station}").connect()
        self.client.publish(scope.topic("status"), b'{"state":"online"}', retain=True)
        self.client.subscribe([t for t in station_subscriptions(scope) if t.endswith("/alert")], self._on)

    def _on(self, msg: Message) -> None:
        self.results.put((msg, self.verify(msg)))

    def verify(self, msg: Message):
        now = datetime.now().astimezone()
        result = verify_alert(
            msg.payload, msg.topic, trusted_keys=self.anchors, seen=self.replay, now=now, clock_trusted=True
        )
        if isinstance(result, Alert):
            self.replay.remember(result.id, result.expires, now)
        return result

    def ack(self, ref: str, state: str, reason: str = "") -> None:
        topic, payload = ack_message(
            Ack(ref, state, reason), station=self.scope, at=datetime.now().astimezone()
        )
        self.client.publish(topic, payload)

    def next(self, timeout: float = 5.0):
        return self.results.get(timeout=timeout)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def setup(broker, tmp_path):
    assert main(["keygen", "--district", "hoa-vang", "--out", str(tmp_path / "keys")]) == 0
    key = next((tmp_path / "keys").glob("*.key"))
    anchors = load_trust_anchors(key.with_suffix(".json"))
    stations = []

    def station(name: str, commune: str = "hoa-bac") -> ProtocolStation:
        s = ProtocolStation(broker.url, Scope("hoa-vang", commune, name), anchors, tmp_path / name)
        stations.append(s)
        return s

    yield key, station
    for s in stations:
        s.close()


def test_alert_reaches_stations_in_scope_is_acked_and_watch_sees_everyone_done(broker, setup, capsys):
    key, station = setup
    a, b = station("tram-01"), station("tram-02")
    other = station("tram-09", commune="hoa-ninh")
    args = [
        "alert",
        "--scope",
        "hoa-vang/hoa-bac",
        "--status",
        "exercise",
        "--text",
        "Diễn tập",
        "--key",
        str(key),
    ]
    assert main([*args, "--broker", broker.url]) == 0
    alert_id = capsys.readouterr().out.strip()
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "district.cli",
            "watch",
            alert_id,
            "--scope",
            "hoa-vang/hoa-bac",
            "--broker",
            broker.url,
            "--timeout",
            "20",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stderr.readline().startswith("watching")
    for s in (a, b):
        msg, result = s.next()
        assert isinstance(result, Alert) and result.id == alert_id, result
        for state in ("received", "playing", "done"):
            s.ack(alert_id, state)
    assert other.results.empty()  # another commune never hears it
    out, _ = watch.communicate(timeout=30)
    assert watch.returncode == 0, out
    assert "2/2 stations done" in out


def test_a_station_reconnecting_mid_alert_gets_it_and_a_reconnect_is_not_a_second_alert(
    broker, setup, capsys
):
    key, station = setup
    args = ["alert", "--scope", "hoa-vang", "--status", "test", "--text", "Thử", "--key", str(key)]
    assert main([*args, "--broker", broker.url]) == 0
    alert_id = capsys.readouterr().out.strip()
    late = station("tram-05")  # connects after the alert was sent: gets the retained copy
    msg, result = late.next()
    assert msg.retained and isinstance(result, Alert) and result.id == alert_id
    again = late.verify(msg)  # the retained copy delivered again after a reconnect
    assert isinstance(again, Rejection) and again.code == "replayed"


def test_a_station_connecting_after_a_cancel_gets_the_cancel_not_the_alert(broker, setup, capsys):
    key, station = setup
    common = ["--scope", "hoa-vang/hoa-bac", "--key", str(key), "--broker", broker.url]
    assert main(["alert", "--status", "exercise", "--text", "Diễn tập", *common]) == 0
    alert_id = capsys.readouterr().out.strip()
    assert main(["cancel", alert_id, "--status", "exercise", *common]) == 0
    late = station("tram-07")
    msg, result = late.next()
    assert isinstance(result, Alert) and result.msg_type == "cancel" and result.references == (alert_id,)
