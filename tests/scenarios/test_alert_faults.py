"""Issue 4 with a real station (the in-process App on a real mosquitto) where things go wrong: the whole
bad-input corpus is refused with reasons and plays nothing, an alert whose playback fails is acked `failed`,
and an alert sent while a station is cut off plays once it is back, and only once."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import datetime, timedelta

import pytest

from district.alerts import build_alert, publish_alert
from district.content import ContentServer
from district.mqtt import DistrictClient, Message
from firmware.adapters.statefile import StateStore
from firmware.core import commands as C
from firmware.protocol.alert import AudioRef
from firmware.protocol.b64 import b64url_decode
from firmware.protocol.envelope import seal
from firmware.protocol.keys import trust_anchor_json
from firmware.protocol.topics import Scope, station_subscriptions
from simulator.proxy import FaultProxy
from simulator.sinks import PacedSink
from simulator.station import sim_app
from tests.protocol import corpus
from tests.protocol.factory import COMMUNE, COMMUNE_TOPIC, DISTRICT, STATION, Keys, signed
from tests.scenarios.harness import TZ, Recorder, clock_at, config, schedule, start_station, write_key
from tests.waiting import wait_until

KEYS = Keys()
CASES = corpus.build(KEYS)
GOOD = signed(KEYS.district)  # the valid alert every corpus case is a corruption of
GOOD_ID = json.loads(b64url_decode(json.loads(GOOD)["payload"]))["id"]
# Refused before the signature is known good or before the payload is read: nothing unverified is echoed.
UNATTRIBUTED = {"not-json", "oversize", "bad-envelope", "bad-version", "unknown-key", "bad-base64",
                "bad-signature", "key-not-for-scope"}


class Listener:
    """A district-side subscriber (what `loa-district watch` reads): every message on `topics`, in order.

    QoS 1 is at least once: a station whose link drops before the broker's PUBACK sends the same ack again
    after reconnecting. Such a copy is byte for byte the same (its `at` too) and is counted once; an ack the
    station sent twice would differ in `at`. (Statuses are all kept: every Will is the same bytes.)"""

    def __init__(self, url: str, topics: list[str]):
        self.messages: list[Message] = []
        self._seen: set[tuple[str, bytes]] = set()
        self.cond = threading.Condition()
        self.client = DistrictClient.from_url(url).connect()
        self.client.subscribe(topics, self._on)

    def _on(self, msg: Message) -> None:
        with self.cond:
            if msg.topic.endswith("/ack"):
                if (msg.topic, msg.payload) in self._seen:
                    return
                self._seen.add((msg.topic, msg.payload))
            self.messages.append(msg)
            self.cond.notify_all()

    def wait(self, pred, timeout: float = 20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self), timeout)

    def acks(self, ref: str | None = None, since: int = 0) -> list[dict]:
        """Acks in arrival order (from the `since`-th ack on), of `ref` only if given."""
        with self.cond:
            acks = [json.loads(m.payload) for m in self.messages if m.topic.endswith("/ack")]
        return [a for a in acks[since:] if ref is None or a["ref"] == ref]

    def states(self, ref: str, since: int = 0) -> list[str]:
        return [a["state"] for a in self.acks(ref, since)]

    def statuses(self) -> list[str]:
        """The `state` of every status message seen (online / offline), ignoring anything unreadable."""
        with self.cond:
            raw = [m.payload for m in self.messages if m.topic.endswith("/status")]
        out = []
        for payload in raw:
            try:
                out.append(json.loads(payload)["state"])
            except (ValueError, KeyError, TypeError):
                pass
        return out

    def close(self) -> None:
        self.client.close()


def alert_plays(rec: Recorder) -> list[str]:
    return [p.ref for p in rec.of(C.Play) if p.kind == "alert"]


# -- 1. the bad-input corpus, through a real station ------------------------------------------------------


def readable_id(case: corpus.Case) -> str:
    """What the ack's `ref` must be for a case refused after its signature verified: the payload's id when
    the payload is a UTF-8 JSON object without duplicate keys and the id a string of at most 128 chars."""
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key")
        return dict(pairs)

    try:
        doc = json.loads(b64url_decode(json.loads(case.raw)["payload"]).decode("utf-8"),
                         object_pairs_hook=no_duplicates)
    except ValueError:
        return ""
    ident = doc.get("id") if isinstance(doc, dict) else None
    return ident if isinstance(ident, str) and len(ident) <= 128 else ""


def expected_at_station(case: corpus.Case, subscribed: list[str]) -> tuple[str, str, str] | str:
    """(ack ref, reason prefix, text of the firmware.inbound log line) for a case, or why the station stays
    silent about it. `verify_alert`'s `bad-topic` is for alert topics: a station is only handed what arrives
    on its alert topics, and an envelope on its schedule topic is refused as the schedule it is not."""
    if case.topic not in subscribed:
        return "a topic the station does not subscribe to: it never receives it"
    if not case.raw:
        # How MQTT clears a retained message; the broker forwards the empty message to subscribers, and a
        # district clearing an alert topic must not have every station ack `rejected`.
        return "an empty message: a cleared retained message, ignored"
    if case.topic.endswith("/schedule"):
        return "schedule", "invalid: ", f"refused schedule on {case.topic}"
    ref = "" if case.code in UNATTRIBUTED else readable_id(case)
    return ref, f"{case.code}: ", f"{case.code}: "


def corpus_station(tmp_path, broker, start: datetime, last_trusted: datetime):
    """tram-01 of hoa-vang/hoa-bac (the corpus's station), trusting the corpus's two district keys, booting
    with a wall clock not synchronised yet and, on disk, the last time its clock was known good."""
    anchors = [KEYS.district.anchor(), KEYS.other_district.anchor()]
    (tmp_path / "trust.json").write_bytes(trust_anchor_json(anchors))
    cfg = config(tmp_path, broker_url=broker.url, key_files=("trust.json",))
    cfg = cfg.model_copy(update={"station": cfg.station.model_copy(
        update={"district": DISTRICT, "commune": COMMUNE, "id": STATION})})
    StateStore(cfg.paths.state_dir).save_times(last_alive=last_trusted, last_trusted=last_trusted)
    clock = clock_at(start)
    clock.set_synced(False)
    rec = Recorder()
    app = sim_app(cfg, sink=PacedSink(cfg.audio.rate_hz, latency_s=0.02), clock=clock, schedule=schedule(),
                  on_command=rec)
    app.start()
    return app, clock, rec


def test_every_corpus_message_sent_to_a_real_station_is_refused_with_its_reason_and_plays_nothing(
        tmp_path, broker, caplog):
    """Each case is verified by the station in the context the corpus gives it: a clock not synchronised
    (with the last trusted time on disk), a clock stepped to the case's `now`, the case's id already accepted.
    The two `clock-untrusted` cases are the same bytes; one station run can hold only one last trusted time,
    so both are refused against the one on disk. Three cases get no ack by design (`expected_at_station`):
    the empty message (a cleared retained message) and two topics the station does not subscribe to."""
    caplog.set_level(logging.INFO)
    station = Scope(DISTRICT, COMMUNE, STATION)
    subscribed = station_subscriptions(station)
    untrusted = [c for c in CASES if not c.clock_trusted]
    replays = [c for c in CASES if c.seen]
    trusted = sorted((c for c in CASES if c.clock_trusted and not c.seen), key=lambda c: c.now)  # stable
    assert untrusted and replays and len(untrusted) + len(replays) + len(trusted) == len(CASES)
    assert all(c.seen == {GOOD_ID} and c.raw == GOOD for c in replays), "replays of the valid alert only"
    last_trusted = max(c.last_trusted for c in untrusted if c.last_trusted)
    app, clock, rec = corpus_station(tmp_path, broker, min(c.now for c in CASES), last_trusted)
    listener = Listener(broker.url, [station.topic("ack"), station.topic("status")])
    sender = DistrictClient.from_url(broker.url).connect()
    refused: list[tuple[corpus.Case, dict]] = []
    silent: list[corpus.Case] = []

    def send(case: corpus.Case) -> None:
        expect = expected_at_station(case, subscribed)
        logged = len(caplog.records)
        before = len(listener.acks())
        sender.publish(case.topic, case.raw, qos=1)
        if isinstance(expect, str):
            silent.append(case)  # checked at the end: never acked
            return
        ref, reason, log_text = expect
        assert listener.wait(lambda w: len(w.acks()) > before, 10), f"{case.name}: no ack"
        ack = listener.acks()[before]
        assert ack["state"] == "rejected", (case.name, ack)
        assert ack["reason"].startswith(reason) and len(ack["reason"]) > len(reason), (case.name, ack)
        assert ack["ref"] == ref, (case.name, ack)
        assert ack["station"] == str(station)
        lines = [r.getMessage() for r in caplog.records[logged:] if r.name == "firmware.inbound"]
        assert any(log_text in line for line in lines), (case.name, lines)
        refused.append((case, ack))

    try:
        assert listener.wait(lambda w: "online" in w.statuses(), 15), "station never came online"
        for case in untrusted:  # booted without NTP, RTC behind the last trusted time
            send(case)
        clock.set_synced(True)  # NTP answers
        assert wait_until(lambda: any("trusted again" in r.getMessage() for r in caplog.records), 15)
        for case in trusted:
            if abs((clock.wall() - case.now).total_seconds()) > 60:
                clock.step((case.now - clock.wall()).total_seconds())
            send(case)
        assert alert_plays(rec) == [], "a corpus message was played"

        # The valid alert the corpus corrupts: accepted and played; its replays are then refused
        clock.step((min(c.now for c in replays) - clock.wall()).total_seconds())
        corpus_acks = len(listener.acks())
        sender.publish(COMMUNE_TOPIC, GOOD, qos=1)
        assert listener.wait(lambda w: w.states(GOOD_ID, corpus_acks)[:2] == ["received", "playing"]), \
            listener.acks(GOOD_ID, corpus_acks)
        for case in replays:
            send(case)
        wall = clock.wall()
        life = {"issued": wall.isoformat(), "expires": (wall + timedelta(minutes=30)).isoformat()}
        cancel = signed(KEYS.district, id="hv-2026-0001-huy", msg_type="cancel", references=[GOOD_ID],
                        text="", **life)
        sender.publish(COMMUNE_TOPIC, cancel, qos=1)
        assert listener.wait(lambda w: "done" in w.states(GOOD_ID, corpus_acks))
        good_acks = listener.acks(GOOD_ID, corpus_acks)
        assert [a["state"] for a in good_acks] == ["received", "playing", "rejected", "done"], good_acks
        assert good_acks[-1]["reason"] == "cancelled by hv-2026-0001-huy"

        # ... and the station is alive and not wedged: a fresh alert plays to the end and is acked done
        final = signed(KEYS.district, id="hv-2026-0002", status="actual", tone=False, repeat=1, headline="",
                       text="Thử loa.", **life)
        sender.publish(COMMUNE_TOPIC, final, qos=1)
        assert listener.wait(lambda w: w.states("hv-2026-0002") == ["received", "playing", "done"], 30), \
            listener.acks("hv-2026-0002")
        assert app.parts.runtime.alive and app.parts.player.alive
    finally:
        sender.close()
        listener.close()
        app.stop()

    assert alert_plays(rec) == [GOOD_ID, "hv-2026-0002"], "a replay was played, or a refused message"
    assert [c.name for c, _ in refused] == [c.name for c in untrusted + trusted + replays if c not in silent]
    assert len(refused) >= 50
    rejected = [a for a in listener.acks() if a["state"] == "rejected"]
    assert len(rejected) == len(refused), "a message the station had to ignore was acked, or a case twice"
    for case in silent:
        if case.topic not in subscribed:
            firmware_lines = [r.getMessage() for r in caplog.records if r.name.startswith("firmware")]
            assert not any(case.topic in line for line in firmware_lines), case.name
    assert app.parts.runtime.error is None


# -- 2. an alert whose playback fails --------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["audio-missing-on-server", "audio-device-error"])
def test_an_alert_whose_playback_fails_is_acked_failed_with_the_reason_and_logged_failed(
        tmp_path, broker, caplog, fault):
    """The core acks `failed` when the player reports a failure (not `done`, which would tell the district the
    village heard it): an audio file the district's content server does not have (404 at play time, nothing
    ever plays), or the audio device failing mid-alert (after `playing`)."""
    key = write_key(tmp_path)
    cfg = config(tmp_path, broker_url=broker.url)
    app, sink, rec = start_station(cfg, at=datetime.now(TZ), doc=schedule())
    listener = Listener(broker.url, ["loa/v1/hv/hb/s1/ack", "loa/v1/hv/hb/s1/status"])
    (tmp_path / "served").mkdir()
    server = ContentServer(tmp_path / "served", port=0).start()
    try:
        assert listener.wait(lambda w: "online" in w.statuses(), 15)
        if fault == "audio-missing-on-server":
            sha = hashlib.sha256(b"lu-quet.ogg").hexdigest()
            audio = AudioRef(url=f"{server.url}/{sha}.ogg", sha256=sha)  # never copied into the served dir
            payload = build_alert(scope=Scope("hv", "hb"), status="actual", now=datetime.now(TZ),
                                  expires_in=timedelta(minutes=10), audio=audio, tone=False, repeat=1)
            expected_states, reason_has = ["received", "failed"], f"content not available: {audio.url}"
        else:
            sink.fail_after(25)  # half a second into the attention tone
            payload = build_alert(scope=Scope("hv", "hb"), status="actual", now=datetime.now(TZ),
                                  expires_in=timedelta(minutes=10), text="Cháy rừng.", repeat=1)
            expected_states, reason_has = ["received", "playing", "failed"], "audio device error"
        with DistrictClient.from_url(broker.url) as district:
            publish_alert(district, payload, key, datetime.now(TZ))
        assert listener.wait(lambda w: "failed" in w.states(payload.id), 20), listener.acks(payload.id)
        assert listener.states(payload.id) == expected_states
        failed = listener.acks(payload.id)[-1]
        assert reason_has in failed["reason"], failed
        assert rec.wait_for(lambda r: any(e.ref == payload.id for e in r.reports()), 10)
        entry = next(e for e in rec.reports() if e.ref == payload.id)
        assert entry.kind == "alert" and entry.result == "failed" and reason_has in entry.reason, entry
        if fault == "audio-missing-on-server":  # the operator's log says why it was not available
            assert any(r.levelno >= logging.ERROR and audio.url in r.getMessage() and "404" in r.getMessage()
                       for r in caplog.records), [r.getMessage() for r in caplog.records]
        assert app.parts.runtime.alive and app.parts.player.alive
    finally:
        server.stop()
        listener.close()
        app.stop()


# -- 3. a station cut off while an alert is sent ----------------------------------------------------------


def probe(district: DistrictClient, key, listener: Listener) -> None:
    """A barrier: a test alert sent once the station is back is handled after anything its reconnect brought
    (retained and queued messages come first), so by its `done` ack all of that has been handled too."""
    alert = build_alert(scope=Scope("hv", "hb", "s1"), status="test", now=datetime.now(TZ),
                        expires_in=timedelta(minutes=10), text="Thử.")
    district.publish(alert.scope.topic("alert"), seal(alert.to_bytes(), key), qos=1)
    assert listener.wait(lambda w: w.states(alert.id) == ["received", "done"], 20), listener.acks(alert.id)


def test_a_real_station_cut_off_when_an_alert_is_sent_plays_it_once_back_and_not_again_after_another_cut(
        tmp_path, broker, caplog):
    """The station is behind the fault proxy; the district and its ack watcher talk to the broker directly.
    Three reconnects: with the alert waiting in the station's session (it plays, once); with nothing new
    (the broker kept the session, so it re-sends nothing); and on a fresh session, where the retained copy is
    delivered again and the replay cache turns it into a quiet `replayed` (no play, no ack)."""
    caplog.set_level(logging.INFO)
    key = write_key(tmp_path)
    with FaultProxy(upstream_port=broker.port) as proxy:
        cfg = config(tmp_path, broker_url=proxy.url)
        app, sink, rec = start_station(cfg, at=datetime.now(TZ), doc=schedule())
        listener = Listener(broker.url, ["loa/v1/hv/hb/s1/ack", "loa/v1/hv/hb/s1/status"])
        district = DistrictClient.from_url(broker.url).connect()
        try:
            assert listener.wait(lambda w: w.statuses()[-1:] == ["online"], 15)
            proxy.cut()
            # the broker saw it go (its Will): what is published now cannot reach it
            assert listener.wait(lambda w: w.statuses()[-1:] == ["offline"], 15)
            payload = build_alert(scope=Scope("hv", "hb"), status="actual", now=datetime.now(TZ),
                                  expires_in=timedelta(minutes=10), text="Lũ.", tone=False, repeat=1)
            publish_alert(district, payload, key, datetime.now(TZ))  # retained, with expiry, while it is away
            assert alert_plays(rec) == [] and listener.states(payload.id) == []

            proxy.restore()
            assert listener.wait(lambda w: w.statuses().count("online") >= 2, 30), listener.statuses()
            assert listener.wait(lambda w: w.states(payload.id) == ["received", "playing", "done"], 30), \
                listener.acks(payload.id)
            assert alert_plays(rec) == [payload.id]

            # Cut again: the broker kept the station's session (QoS 1 subscriptions, retain handling 1), so
            # the reconnect re-sends nothing; nothing plays or is acked again.
            proxy.cut()
            assert listener.wait(lambda w: w.statuses()[-1:] == ["offline"], 15)
            proxy.restore()
            assert listener.wait(lambda w: w.statuses().count("online") >= 3, 30), listener.statuses()
            probe(district, key, listener)
            assert alert_plays(rec) == [payload.id], "played again after a reconnect"
            assert listener.states(payload.id) == ["received", "playing", "done"]

            # A reconnect to a broker that no longer has the station's session (restarted without its store,
            # a failover): the retained copy is delivered again, and the replay cache refuses it quietly.
            logged = len(caplog.records)
            DistrictClient.from_url(broker.url, client_id="s1").connect().close()  # clean start: session gone
            # online again (its birth follows its SUBSCRIBE on one connection), on a fresh session
            assert listener.wait(lambda w: w.statuses().count("online") >= 4, 30), listener.statuses()
            assert any("session present: False" in r.getMessage() for r in caplog.records[logged:])
            probe(district, key, listener)
            lines = [r.getMessage() for r in caplog.records[logged:] if r.name == "firmware.inbound"]
            assert any(f"retained alert {payload.id}" in line and "replayed" in line for line in lines), lines
            assert alert_plays(rec) == [payload.id], "the retained copy played again"
            assert listener.states(payload.id) == ["received", "playing", "done"], "a replay is not acked"
        finally:
            district.close()
            listener.close()
            app.stop()
