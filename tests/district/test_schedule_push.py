"""`loa-district schedule push|show` against a real mosquitto, and a station's real InboundHandler acking it."""

from __future__ import annotations

import json
import queue
import threading
from datetime import datetime
from pathlib import Path

import pytest

from district.cli import main
from district.mqtt import DistrictClient, Message
from firmware.core.policy import Policy
from firmware.core.schedule import parse_schedule
from firmware.inbound import InboundHandler
from firmware.protocol.envelope import open_envelope, seal
from firmware.protocol.keys import generate, load_signing_key, load_trust_anchors, signing_key_pem
from firmware.protocol.replay import ReplayCache
from firmware.protocol.topics import Scope, station_subscriptions

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "schedule.example.json"
SCOPE = "hoa-vang/hoa-bac"


class InboundStation:
    """A station's inbound path on a plain MQTT client: subscriptions, the real InboundHandler, acks.

    Messages are handled on a worker thread, as the runtime does (a publish from paho's own thread would wait
    for a PUBACK that thread has to deliver)."""

    def __init__(self, url: str, scope: Scope, anchors, state_dir: Path, *, windows=None, actions=None):
        self.scope = scope
        self.client = DistrictClient.from_url(url, client_id=f"station-{scope.station}").connect()
        self.client.publish(scope.topic("status"), b'{"state":"online"}', retain=True)
        policy = Policy.model_validate({"windows": windows or [{"start": "05:00", "end": "21:00"}]})
        self.handler = InboundHandler(
            scope, trusted_keys=anchors, replay=ReplayCache(state_dir / "replay.json"), publish=self.client.publish,
            policy=policy, timezone="Asia/Ho_Chi_Minh", actions=actions)
        self.events: queue.Queue = queue.Queue()
        self._inbox: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._work, name=f"station-{scope.station}", daemon=True)
        self._worker.start()
        self.client.subscribe(station_subscriptions(scope), self._inbox.put)

    def _work(self) -> None:
        while (msg := self._inbox.get()) is not None:
            now = datetime.now().astimezone()
            for ev in self.handler.handle(msg.topic, msg.payload, msg.retained, now, clock_trusted=True,
                                          last_trusted=None):
                self.events.put(ev)

    def close(self) -> None:
        self._inbox.put(None)
        self._worker.join(5)
        self.client.close()


@pytest.fixture
def keys(tmp_path):
    assert main(["keygen", "--district", "hoa-vang", "--out", str(tmp_path / "keys")]) == 0
    key = next((tmp_path / "keys").glob("*.key"))
    return key, load_trust_anchors(key.with_suffix(".json"))


def write_doc(tmp_path: Path, name: str = "s.json", **changes) -> Path:
    doc = json.loads(EXAMPLE.read_text())
    doc.update(changes)
    path = tmp_path / name
    path.write_text(json.dumps(doc, ensure_ascii=False))
    return path


def retained(url: str, topic: str) -> list[Message]:
    got: list[Message] = []
    arrived = threading.Event()
    with DistrictClient.from_url(url) as c:
        c.subscribe([topic], lambda m: (got.append(m), arrived.set()))
        arrived.wait(1.0)
    return got


def push(path, broker, key, *extra, scope=SCOPE) -> int:
    return main(["schedule", "push", str(path), "--scope", scope, "--key", str(key), "--broker", broker.url,
                 *extra])


def test_push_publishes_the_signed_document_retained_on_the_scope_topic(broker, keys, capsys):
    key, anchors = keys
    assert push(EXAMPLE, broker, key) == 0
    out, err = capsys.readouterr()
    assert "schedule v1 for hoa-vang/hoa-bac: 6 programme(s)" in out
    assert "tin-sang" in out and "05:31" in out
    assert "published retained to loa/v1/hoa-vang/hoa-bac/schedule (broker acknowledged)" in err
    assert "schedule-v1" in err
    [msg] = retained(broker.url, "loa/v1/hoa-vang/hoa-bac/schedule")
    assert msg.retained
    payload = open_envelope(msg.payload, anchors, scope=Scope.parse(SCOPE))
    doc = parse_schedule(payload)
    assert doc.version == 1 and doc.target == SCOPE and len(doc.programmes) == 6
    # the Vietnamese titles travel as UTF-8, not \u escapes
    assert "Bản tin sáng của xã".encode() in payload


def test_a_file_without_target_gets_the_scope_and_a_station_scope_works(broker, keys, tmp_path):
    key, anchors = keys
    path = write_doc(tmp_path, target=None)
    doc = json.loads(path.read_text())
    del doc["target"]
    path.write_text(json.dumps(doc))
    station = "hoa-vang/hoa-bac/tram-01"
    assert push(path, broker, key, scope=station) == 0
    [msg] = retained(broker.url, f"loa/v1/{station}/schedule")
    assert parse_schedule(open_envelope(msg.payload, anchors)).target == station


def test_a_file_naming_another_target_is_refused_and_nothing_is_published(broker, keys, tmp_path, capsys):
    key, _ = keys
    path = write_doc(tmp_path, target="hoa-vang/hoa-ninh")
    assert push(path, broker, key) == 1
    err = capsys.readouterr().err
    assert 'target "hoa-vang/hoa-ninh" differs from --scope hoa-vang/hoa-bac' in err
    assert retained(broker.url, "loa/v1/hoa-vang/hoa-bac/schedule") == []


def test_invalid_programmes_are_refused_naming_each_one(broker, keys, tmp_path, capsys):
    key, _ = keys
    doc = json.loads(EXAMPLE.read_text())
    doc["programmes"][1]["start"] = "25:61"
    del doc["programmes"][3]["source"]["sha256"]
    doc["programmes"][0]["gain_db"] = 6
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    assert push(path, broker, key) == 1
    err = capsys.readouterr().err
    assert f"{path}: refused, 3 problem(s)" in err
    assert 'programmes[1] ("tin-sang").start' in err
    assert 'programmes[3] ("khuyen-nong")' in err and "sha256" in err
    assert 'programmes[0] ("nhac-hieu-sang").gain_db' in err
    assert retained(broker.url, "loa/v1/hoa-vang/hoa-bac/schedule") == []


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "a schedule is a JSON object, this is a JSON list"),
        (b'{"version": 1, "version": 2, "programmes": []}', "duplicate key 'version'"),
        (b'{"version": 0, "programmes": []}', "version"),
        (b'{"version": 1, "programmes": [], "extra": 1}', "extra"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_files_exit_1_saying_what_is_wrong(tmp_path, keys, content, expected, capsys):
    key, _ = keys
    path = tmp_path / "s.json"
    path.write_bytes(content)
    assert main(["schedule", "push", str(path), "--scope", SCOPE, "--key", str(key), "--dry-run"]) == 1
    assert expected in capsys.readouterr().err


def test_oversize_and_missing_files_and_bad_keys_exit_1(tmp_path, keys, capsys):
    key, _ = keys
    big = json.loads(EXAMPLE.read_text())
    big["programmes"][0]["title"] = "x" * 200
    big["padding"] = "y" * (1024 * 1024)
    (tmp_path / "big.json").write_text(json.dumps(big))
    assert main(["schedule", "push", str(tmp_path / "big.json"), "--scope", SCOPE, "--key", str(key),
                 "--dry-run"]) == 1
    assert "too large" in capsys.readouterr().err
    assert main(["schedule", "push", str(tmp_path / "nope.json"), "--scope", SCOPE, "--key", str(key),
                 "--dry-run"]) == 1
    assert "nope.json: refused, 1 problem(s)" in capsys.readouterr().err
    (tmp_path / "bad.key").write_text("not a key")
    assert main(["schedule", "push", str(EXAMPLE), "--scope", SCOPE, "--key", str(tmp_path / "bad.key"),
                 "--dry-run"]) == 1
    assert "bad.key: not an unencrypted PEM private key" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--scope", "Hoa Vang"], "--scope"),
        (["--scope", "a/b/c/d"], "--scope"),
        (["--scope", SCOPE], "--broker URL is required"),
        (["--scope", SCOPE, "--broker", "mqtt://127.0.0.1:1", "--watch", "0"], "--watch"),
        (["--scope", SCOPE, "--broker", "mqtt://127.0.0.1:1", "--watch", "5", "--dry-run"], "--watch"),
        (["--scope", SCOPE, "--broker", "mqtt://127.0.0.1:1", "--watch", "soon"], "invalid float value"),
    ],
)
def test_bad_arguments_exit_2(keys, args, expected, capsys):
    key, _ = keys
    with pytest.raises(SystemExit) as e:
        main(["schedule", "push", str(EXAMPLE), "--key", str(key), *args])
    assert e.value.code == 2
    assert expected in capsys.readouterr().err


def test_missing_action_and_missing_file_argument_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["schedule"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["schedule", "push", "--scope", SCOPE])
    assert e.value.code == 2


def test_a_version_not_greater_than_the_retained_one_is_refused(broker, keys, tmp_path, capsys):
    key, anchors = keys
    assert push(write_doc(tmp_path, "v5.json", version=5), broker, key) == 0
    capsys.readouterr()
    for version in (5, 4):
        assert push(write_doc(tmp_path, f"again{version}.json", version=version), broker, key) == 1
        err = capsys.readouterr().err
        assert f"version {version} is not greater than version 5 retained on loa/v1/hoa-vang/hoa-bac/schedule" in err
        assert 'set "version" to 6 or more' in err
    [msg] = retained(broker.url, "loa/v1/hoa-vang/hoa-bac/schedule")
    assert parse_schedule(open_envelope(msg.payload, anchors)).version == 5  # untouched
    assert push(write_doc(tmp_path, "v6.json", version=6), broker, key) == 0
    [msg] = retained(broker.url, "loa/v1/hoa-vang/hoa-bac/schedule")
    assert parse_schedule(open_envelope(msg.payload, anchors)).version == 6


def test_dry_run_checks_the_retained_version_but_publishes_nothing(broker, keys, tmp_path, capsys):
    key, _ = keys
    assert push(write_doc(tmp_path, version=3), broker, key, "--dry-run") == 0
    out, err = capsys.readouterr()
    assert "schedule v3 for hoa-vang/hoa-bac" in out and "would publish" in err
    assert retained(broker.url, "loa/v1/hoa-vang/hoa-bac/schedule") == []
    assert push(write_doc(tmp_path, version=3), broker, key) == 0
    assert push(write_doc(tmp_path, version=3), broker, key, "--dry-run") == 1


def test_an_unreachable_broker_exits_1(keys, capsys):
    key, _ = keys
    assert main(["schedule", "push", str(EXAMPLE), "--scope", SCOPE, "--key", str(key),
                 "--broker", "mqtt://127.0.0.1:1"]) == 1
    assert "loa-district schedule push: mqtt://127.0.0.1:1" in capsys.readouterr().err


def test_watch_reports_every_station_accepting(broker, keys, tmp_path, capsys):
    key, anchors = keys
    stations = [InboundStation(broker.url, Scope("hoa-vang", "hoa-bac", f"tram-0{i}"), anchors, tmp_path / str(i))
                for i in (1, 2)]
    try:
        assert push(EXAMPLE, broker, key, "--watch", "20") == 0
        out = capsys.readouterr().out
        assert "2/2 stations accepted" in out
        assert out.count("accepted  (6 programmes)") == 2
        for s in stations:
            ev = s.events.get(timeout=5)
            assert ev.schedule.version == 1
    finally:
        for s in stations:
            s.close()


def test_watch_shows_a_station_rejecting_with_every_reason(broker, keys, tmp_path, capsys):
    key, anchors = keys
    doc = json.loads(EXAMPLE.read_text())
    doc["programmes"] = doc["programmes"][:4]  # 05:30 daily, 05:31 mon-sat, 05:40 mon+thu, 17:05 wed
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    s = InboundStation(broker.url, Scope("hoa-vang", "hoa-bac", "tram-01"), anchors, tmp_path,
                       windows=[{"start": "05:35", "end": "12:00", "days": ["mon", "tue", "wed"]},
                                {"start": "05:00", "end": "12:00", "days": ["thu", "fri", "sat", "sun"]}])
    try:
        assert push(path, broker, key, "--watch", "20") == 1
    finally:
        s.close()
    out = capsys.readouterr().out
    assert "0/1 stations accepted" in out
    assert "rejected: hoa-vang/hoa-bac/tram-01" in out
    # One line per programme, its days grouped by their windows: every reason fits in the ack's 500 characters.
    for reason in ('programme "nhac-hieu-sang" starts 05:30 on Mon, Tue, Wed, outside allowed window 05:35-12:00',
                   'programme "tin-sang" starts 05:31 on Mon, Tue, Wed, outside allowed window 05:35-12:00',
                   'programme "khuyen-nong" starts 17:05 on Wed, outside allowed window 05:35-12:00'):
        assert reason in out
    assert "on Thu" not in out


def test_watch_with_no_station_answering_exits_3(broker, keys, capsys):
    key, _ = keys
    with DistrictClient.from_url(broker.url) as c:  # a station known from its retained status, but offline
        c.publish("loa/v1/hoa-vang/hoa-bac/tram-07/status", b'{"state":"offline"}', retain=True)
    assert push(EXAMPLE, broker, key, "--watch", "1") == 3
    assert "silent: hoa-vang/hoa-bac/tram-07" in capsys.readouterr().out


def test_show_prints_and_verifies_the_retained_schedule(broker, keys, tmp_path, capsys):
    key, _ = keys
    anchor = key.with_suffix(".json")
    assert main(["schedule", "show", "--scope", SCOPE, "--broker", broker.url]) == 1
    assert "no schedule retained on loa/v1/hoa-vang/hoa-bac/schedule" in capsys.readouterr().err
    assert push(write_doc(tmp_path, version=7), broker, key) == 0
    capsys.readouterr()
    assert main(["schedule", "show", "--scope", SCOPE, "--broker", broker.url, "--trust", str(anchor)]) == 0
    out = capsys.readouterr().out
    assert f"schedule v7, signed by {load_signing_key(key).kid}, signature verified" in out
    assert "target hoa-vang/hoa-bac, timezone Asia/Ho_Chi_Minh, 6 programme(s)" in out
    assert "18:00  tiep-song-tinh" in out
    assert main(["schedule", "show", "--scope", SCOPE, "--broker", broker.url]) == 0
    assert "signature not checked (give --trust)" in capsys.readouterr().out
    # signed with another key: shown, but flagged, and exit 1
    other = generate("hoa-vang")
    (tmp_path / "other.key").write_bytes(signing_key_pem(other))
    forged = seal((tmp_path / "s.json").read_bytes().replace(b'"version": 7', b'"version": 8'), other)
    with DistrictClient.from_url(broker.url) as c:
        c.publish("loa/v1/hoa-vang/hoa-bac/schedule", forged, retain=True)
    assert main(["schedule", "show", "--scope", SCOPE, "--broker", broker.url, "--trust", str(anchor)]) == 1
    out = capsys.readouterr().out
    assert "NOT VERIFIED (unknown-key" in out


def test_show_with_an_unreadable_trust_file_exits_1(broker, tmp_path, capsys):
    assert main(["schedule", "show", "--scope", SCOPE, "--broker", broker.url, "--trust",
                 str(tmp_path / "missing.json")]) == 1
    assert "missing.json" in capsys.readouterr().err


def test_clear_removes_the_retained_schedule_and_a_station_keeps_its_own(broker, keys, tmp_path, capsys):
    key, anchors = keys
    s = InboundStation(broker.url, Scope("hoa-vang", "hoa-bac", "tram-01"), anchors, tmp_path)
    try:
        assert push(write_doc(tmp_path, version=2), broker, key, "--watch", "10") == 0
        capsys.readouterr()
        assert main(["schedule", "clear", "--scope", SCOPE, "--broker", broker.url]) == 0
        assert "cleared loa/v1/hoa-vang/hoa-bac/schedule (was: schedule v2)" in capsys.readouterr().out
        assert retained(broker.url, "loa/v1/hoa-vang/hoa-bac/schedule") == []
        assert main(["schedule", "clear", "--scope", SCOPE, "--broker", broker.url]) == 0
        assert "(was: nothing)" in capsys.readouterr().out
        # after a clear, a version is checked against nothing retained; the station still holds v2
        assert push(write_doc(tmp_path, version=2), broker, key, "--watch", "10") == 1
        assert "version 2 is not newer than the active version 2" in capsys.readouterr().out
        assert s.handler.schedule_version == 2
    finally:
        s.close()


STATION_TOML = """
[station]
district = "hoa-vang"
commune = "hoa-bac"
id = "tram-01"
[[policy.windows]]
start = "05:35"
end = "21:00"
"""


def test_check_against_a_station_config_lists_every_problem_and_publishes_nothing(broker, keys, tmp_path, capsys):
    key, _ = keys
    (tmp_path / "tram-01.toml").write_text(STATION_TOML)
    assert push(EXAMPLE, broker, key, "--check-against", str(tmp_path / "tram-01.toml")) == 1
    err = capsys.readouterr().err
    assert "station hoa-vang/hoa-bac/tram-01" in err and "would reject it, 2 problem(s):" in err
    assert 'programme "nhac-hieu-sang" starts 05:30 on every day, outside allowed window 05:35-21:00' in err
    assert ('programme "tin-sang" starts 05:31 on Mon, Tue, Wed, Thu, Fri, Sat, outside allowed window '
            '05:35-21:00') in err
    assert retained(broker.url, "loa/v1/hoa-vang/hoa-bac/schedule") == []
    (tmp_path / "ok.toml").write_text(STATION_TOML.replace("05:35", "05:00"))
    assert push(EXAMPLE, broker, key, "--check-against", str(tmp_path / "ok.toml")) == 0


def test_check_against_an_unreadable_config_exits_1(keys, tmp_path, capsys):
    key, _ = keys
    (tmp_path / "bad.toml").write_text("[station\n")
    assert main(["schedule", "push", str(EXAMPLE), "--scope", SCOPE, "--key", str(key), "--dry-run",
                 "--check-against", str(tmp_path / "bad.toml")]) == 1
    err = capsys.readouterr().err
    assert "bad.toml: 1 problem(s)" in err and "not valid TOML" in err
