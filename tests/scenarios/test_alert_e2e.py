"""Issue 4's promise end to end: `loa-district alert` -> real mosquitto -> a simulated station that plays it,
acknowledges it, and resumes its programme after `loa-district cancel`; forged alerts play nothing."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from district.cli import main as district_main
from firmware.core import commands as C
from tests.scenarios.harness import TZ, config, peak_db, schedule, start_station


def keygen(tmp: Path) -> tuple[str, list[str]]:
    out = tmp / "keys"
    assert district_main(["keygen", "--district", "hv", "--out", str(out)]) == 0
    key = next(out.glob("*.key"))
    return str(key), [str(p) for p in out.glob("*.pub")]


class AckWatcher:
    """A district-side subscriber to the station's acks (what `loa-district watch` reads)."""

    def __init__(self, url_port: int):
        self.acks: list[dict] = []
        self.cond = threading.Condition()
        self.c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.c.on_message = self._msg
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.on_connect = lambda c, *a: c.subscribe("loa/v1/+/+/+/ack", qos=1)
        self.c.connect("127.0.0.1", url_port)
        self.c.loop_start()
        assert subscribed.wait(10)

    def _msg(self, client, userdata, msg) -> None:
        with self.cond:
            self.acks.append(json.loads(msg.payload))
            self.cond.notify_all()

    def wait(self, pred, timeout=20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self.acks), timeout)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def now_and_window():
    """The district CLI signs with real time, so these stations run on real time too: a window around now."""
    now = datetime.now(TZ)
    a = (now - timedelta(minutes=30)).strftime("%H:%M")
    b = (now + timedelta(minutes=30)).strftime("%H:%M")
    return now, (a, b, -6.0)


def programme(pid="tin-sang", start="06:00", seconds=600, gain=0.0):
    return {"id": pid, "title": pid, "start": start, "gain_db": gain, "recurrence": {"days": "daily"},
            "source": {"type": "tone", "kind": "chime", "duration_s": seconds}}


def test_alert_plays_is_acked_and_cancel_resumes_the_programme(tmp_path, broker, capsys):
    key, anchors = keygen(tmp_path)
    now, window = now_and_window()
    cfg = config(tmp_path, broker_url=broker.url, key_files=anchors, windows=(window,))
    start = (now - timedelta(minutes=1)).strftime("%H:%M")  # under way: the station joins it
    app, sink, rec = start_station(cfg, at=now, doc=schedule(programme(start=start, seconds=600)))
    watcher = AckWatcher(broker.port)
    try:
        assert rec.wait_for(lambda r: any(p.ref == "tin-sang" for p in r.of(C.Play)), 10)
        assert app.parts.link is not None
        assert rec.wait_for(lambda r: app.parts.link.connected or False, 10) or app.parts.link.connected
        capsys.readouterr()
        rc = district_main(["alert", "--scope", "hv/hb", "--status", "exercise", "--severity", "severe",
                            "--headline", "Lũ quét", "--text", "Nước lên nhanh, sơ tán ngay.", "--repeat", "5",
                            "--key", key, "--broker", broker.url])
        assert rc == 0
        alert_id = capsys.readouterr().out.strip().splitlines()[-1]
        # the officer follows it live with `loa-district watch` (acks are not retained: it must be watching)
        watch_rc: list[int] = []
        watch = threading.Thread(target=lambda: watch_rc.append(district_main(
            ["watch", alert_id, "--scope", "hv/hb", "--broker", broker.url, "--timeout", "30"])))
        watch.start()
        assert rec.wait_for(lambda r: any(p.kind == "alert" and p.ref == alert_id for p in r.of(C.Play)), 10)
        assert watcher.wait(lambda a: [x["state"] for x in a if x["ref"] == alert_id][:2] == ["received", "playing"])
        # the interrupted programme is accounted for
        assert rec.wait_for(lambda r: any(e.ref == "tin-sang" and "interrupted by alert" in e.reason
                                          for e in r.reports()), 5)

        assert district_main(["cancel", alert_id, "--scope", "hv/hb", "--status", "exercise", "--key", key,
                              "--broker", broker.url]) == 0
        assert watcher.wait(lambda a: any(x["ref"] == alert_id and x["state"] == "done" and "cancelled" in x["reason"]
                                          for x in a))
        # cancellation notice, then the programme resumes inside its slot
        assert rec.wait_for(lambda r: any(p.kind == "notice" for p in r.of(C.Play)), 10)
        assert rec.wait_for(lambda r: [p.ref for p in r.of(C.Play)][-1:] == ["tin-sang"], 30)
        resumed = [p for p in rec.of(C.Play) if p.ref == "tin-sang"][-1]
        assert resumed.offset_s > 20
        watch.join(35)
        assert watch_rc == [0]  # `loa-district watch` saw every station in scope answer "done"
    finally:
        watcher.close()
        app.stop()


def test_actual_alert_at_night_plays_at_alert_gain_outside_every_window(tmp_path, broker, capsys):
    key, anchors = keygen(tmp_path)
    now = datetime.now(TZ)
    night = ((now + timedelta(hours=2)).strftime("%H:%M"), (now + timedelta(hours=3)).strftime("%H:%M"), -20.0)
    cfg = config(tmp_path, broker_url=broker.url, key_files=anchors, windows=(night,))
    app, sink, rec = start_station(cfg, at=now, doc=schedule())
    try:
        assert rec.wait_for(lambda r: app.parts.link.connected, 10) or app.parts.link.connected
        capsys.readouterr()
        assert district_main(["alert", "--scope", "hv/hb/s1", "--status", "actual", "--yes-actual", "--no-tone",
                              "--text", "Cháy rừng.", "--repeat", "1", "--key", key, "--broker", broker.url]) == 0
        assert rec.wait_for(lambda r: any(e.kind == "alert" for e in r.reports()), 30)
        entry = next(e for e in rec.reports() if e.kind == "alert")
        assert entry.result == "played" and entry.gain_db == -2.0
        assert peak_db(sink.samples()) <= -2.0 + 0.1  # the limiter holds the alert gain as a cap
        assert peak_db(sink.samples()) > -20  # and it was actually loud
    finally:
        app.stop()


def test_forged_and_replayed_alerts_play_nothing_and_are_rejected_with_reasons(tmp_path, broker, capsys):
    key, anchors = keygen(tmp_path)
    other_key, _ = keygen(tmp_path / "other")  # another district's key: not trusted by this station
    now, window = now_and_window()
    cfg = config(tmp_path, broker_url=broker.url, key_files=anchors, windows=(window,))
    app, sink, rec = start_station(cfg, at=now, doc=schedule())
    watcher = AckWatcher(broker.port)
    try:
        assert rec.wait_for(lambda r: app.parts.link.connected, 10) or app.parts.link.connected
        assert district_main(["alert", "--scope", "hv", "--status", "actual", "--yes-actual", "--text", "Giả mạo",
                              "--key", other_key, "--broker", broker.url]) == 0
        assert watcher.wait(lambda a: any(x["state"] == "rejected" for x in a))
        rejected = [x for x in watcher.acks if x["state"] == "rejected"]
        assert "unknown-key" in rejected[0]["reason"]
        # a raw replay of a captured, validly signed alert: the first copy plays, the second is refused
        capsys.readouterr()
        assert district_main(["alert", "--scope", "hv", "--status", "test", "--text", "Kiểm tra", "--key", key,
                              "--broker", broker.url]) == 0
        alert_id = capsys.readouterr().out.strip().splitlines()[-1]
        assert watcher.wait(lambda a: any(x["ref"] == alert_id and x["state"] == "done" for x in a))
        captured: list[bytes] = []
        got = threading.Event()
        spy = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        spy.on_message = lambda c, u, m: (captured.append(m.payload), got.set())
        spy.connect("127.0.0.1", broker.port)
        spy.subscribe("loa/v1/hv/alert", qos=1)
        spy.loop_start()
        assert got.wait(10)
        spy.publish("loa/v1/hv/alert", captured[0], qos=1).wait_for_publish(10)
        spy.loop_stop()
        spy.disconnect()
        assert watcher.wait(lambda a: any(x["state"] == "rejected" and "replayed" in x["reason"] for x in a))
        assert not any(p.kind == "alert" for p in rec.of(C.Play))
    finally:
        watcher.close()
        app.stop()
