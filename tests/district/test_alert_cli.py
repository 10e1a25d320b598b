"""`loa-district keygen / alert / cancel / watch` against a real mosquitto."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from district.cli import main
from district.mqtt import DistrictClient, Message
from firmware.core.alerts import Alert
from firmware.protocol.ack import ack_bytes
from firmware.protocol.b64 import b64url_decode
from firmware.protocol.keys import load_trust_anchors
from firmware.protocol.topics import Scope
from firmware.protocol.verify import verify_alert

REPO = Path(__file__).resolve().parents[2]
COMMUNE = "hoa-vang/hoa-bac"
COMMUNE_ALERT = "loa/v1/hoa-vang/hoa-bac/alert"


@pytest.fixture
def key(tmp_path) -> Path:
    assert main(["keygen", "--district", "hoa-vang", "--out", str(tmp_path / "keys")]) == 0
    return next((tmp_path / "keys").glob("*.key"))


def retained(url: str, topic_filter: str) -> list[Message]:
    """What a subscriber arriving now receives as retained on `topic_filter`. Deterministic: after the SUBACK we
    publish a marker on a private topic we also subscribe to; the broker sends retained messages before it."""
    marker = f"test/marker/{uuid.uuid4().hex}"
    got: list[Message] = []
    done = threading.Event()

    def on(msg: Message) -> None:
        if msg.topic == marker:
            done.set()
        elif msg.retained:
            got.append(msg)

    with DistrictClient.from_url(url) as c:
        c.subscribe([topic_filter, marker], on)
        c.publish(marker, b"x")
        assert done.wait(5), "marker never came back"
    return got


def payload_of(msg: Message) -> dict:
    return json.loads(b64url_decode(json.loads(msg.payload)["payload"]))


def publish_statuses(url: str, states: dict[str, str]) -> None:
    with DistrictClient.from_url(url) as c:
        for station, state in states.items():
            c.publish(f"loa/v1/{station}/status", json.dumps({"state": state}).encode(), retain=True)


def alert_args(broker, key, *extra) -> list[str]:
    return ["alert", "--scope", COMMUNE, "--key", str(key), "--broker", broker.url, *extra]


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- keygen ----------------------------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_and_trust_anchors_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "keys"
    assert main(["keygen", "--district", "hoa-vang", "--out", str(out)]) == 0
    kid = capsys.readouterr().out.strip()
    assert re.fullmatch(r"ed25519-[0-9a-f]{16}", kid)
    assert stat.S_IMODE(os.stat(out / f"{kid}.key").st_mode) == 0o600
    anchors = load_trust_anchors(out / f"{kid}.json", out / f"{kid}.pub")
    assert set(anchors) == {kid} and anchors[kid].district == "hoa-vang"
    with pytest.raises(SystemExit) as e:
        main(["keygen", "--district", "hoa-vang", "--out", str(out)])
    assert e.value.code == 2
    assert len(list(out.glob("*.key"))) == 1


# -- alert -----------------------------------------------------------------------------------------------------


def test_alert_is_retained_signed_and_carries_the_message_expiry(broker, key, capsys):
    rc = main(alert_args(broker, key, "--status", "test", "--text", "Thử hệ thống", "--expires", "10m"))
    assert rc == 0
    alert_id = capsys.readouterr().out.strip()
    [msg] = retained(broker.url, COMMUNE_ALERT)
    assert msg.expiry_s is not None and 590 <= msg.expiry_s <= 600
    anchors = load_trust_anchors(key.with_suffix(".json"))
    result = verify_alert(
        msg.payload,
        msg.topic,
        trusted_keys=anchors,
        seen=set(),
        now=datetime.now().astimezone(),
        clock_trusted=True,
    )
    assert isinstance(result, Alert), result
    assert result.id == alert_id and result.status == "test" and result.text == "Thử hệ thống"


def test_a_late_subscriber_gets_the_alert_before_expiry_and_not_after(broker, key, capsys):
    assert main(alert_args(broker, key, "--status", "exercise", "--text", "Diễn tập", "--expires", "2s")) == 0
    sent = time.monotonic()
    assert len(retained(broker.url, COMMUNE_ALERT)) == 1
    # The broker drops the retained alert once its expiry passes; poll late subscribers until then.
    deadline = sent + 10
    gone = threading.Event()
    while time.monotonic() < deadline:
        if not retained(broker.url, COMMUNE_ALERT):
            gone.set()
            break
        gone.wait(0.2)
    assert gone.is_set(), "retained alert still delivered long after its expiry"
    assert time.monotonic() - sent >= 1.0, "dropped before its expiry"


def test_cancel_replaces_the_retained_alert_in_well_under_a_second(broker, key, capsys):
    assert main(alert_args(broker, key, "--status", "exercise", "--text", "Diễn tập")) == 0
    alert_id = capsys.readouterr().out.strip()
    rc = main(
        [
            "cancel",
            alert_id,
            "--scope",
            COMMUNE,
            "--status",
            "exercise",
            "--key",
            str(key),
            "--broker",
            broker.url,
        ]
    )
    assert rc == 0
    out = capsys.readouterr()
    # The time it reports is measured (the cancel figure is the broker's PUBACK, no census, no retained read);
    # its size is a benchmark's business, not a test's: here only that it was reported.
    assert re.search(r"in \d+\.\d+ s \(broker acknowledged\)", out.err), out.err
    [msg] = retained(broker.url, COMMUNE_ALERT)
    doc = payload_of(msg)
    assert doc["msg_type"] == "cancel" and doc["references"] == [alert_id] and doc["id"] == out.out.strip()
    assert msg.expiry_s is not None


def test_actual_alert_refuses_a_wrongly_typed_scope_and_sends_nothing(broker, key, capsys, monkeypatch):
    publish_statuses(
        broker.url, {"hoa-vang/hoa-bac/tram-01": "online", "hoa-vang/hoa-bac/tram-02": "offline"}
    )
    monkeypatch.setattr(sys, "stdin", FakeTty("hoa-vang/hoa-ninh\n"))
    assert main(alert_args(broker, key, "--status", "actual", "--text", "Lũ quét")) == 1
    err = capsys.readouterr().err
    assert "2 stations known in scope, 1 online" in err
    assert "aborted" in err
    assert retained(broker.url, COMMUNE_ALERT) == []


def test_actual_alert_is_sent_when_the_officer_types_the_scope_back(broker, key, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", FakeTty(COMMUNE + "\n"))
    assert (
        main(alert_args(broker, key, "--status", "actual", "--text", "Lũ quét", "--severity", "extreme")) == 0
    )
    [msg] = retained(broker.url, COMMUNE_ALERT)
    assert payload_of(msg)["status"] == "actual" and payload_of(msg)["severity"] == "extreme"


def test_actual_alert_without_a_terminal_needs_yes_actual(broker, key, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(COMMUNE + "\n"))  # piped input is not a confirmation
    assert main(alert_args(broker, key, "--status", "actual", "--text", "Lũ quét")) == 1
    assert "--yes-actual" in capsys.readouterr().err
    assert retained(broker.url, COMMUNE_ALERT) == []
    assert main(alert_args(broker, key, "--status", "actual", "--text", "Lũ quét", "--yes-actual")) == 0
    assert len(retained(broker.url, COMMUNE_ALERT)) == 1


def test_audio_is_copied_into_the_content_dir_under_its_sha256(broker, key, tmp_path, capsys):
    audio = tmp_path / "canh-bao.ogg"
    audio.write_bytes(b"OggS" + bytes(1000))
    content = tmp_path / "www"
    args = ["--status", "test", "--audio", str(audio), "--content-dir", str(content)]
    args += ["--content-base-url", "http://content.example:8080/"]
    assert main(alert_args(broker, key, *args)) == 0
    [msg] = retained(broker.url, COMMUNE_ALERT)
    ref = payload_of(msg)["audio"]
    assert (content / f"{ref['sha256']}.ogg").read_bytes() == audio.read_bytes()
    assert ref["url"] == f"http://content.example:8080/{ref['sha256']}.ogg"


@pytest.mark.parametrize(
    "extra",
    [
        ["--status", "test", "--audio", "missing.ogg", "--audio-url", "http://x/a.ogg"],
        ["--status", "test", "--text", "x", "--expires", "soon"],
        ["--status", "test", "--text", "x", "--repeat", "0"],
        ["--status", "test", "--text", "   "],
        ["--text", "no status"],
    ],
)
def test_bad_alert_arguments_are_usage_errors_and_send_nothing(broker, key, extra, capsys):
    with pytest.raises(SystemExit) as e:
        main(alert_args(broker, key, *extra))
    assert e.value.code == 2
    assert retained(broker.url, COMMUNE_ALERT) == []


def test_alert_to_a_broker_that_is_down_fails_cleanly(key, capsys):
    rc = main(
        [
            "alert",
            "--scope",
            COMMUNE,
            "--status",
            "test",
            "--text",
            "x",
            "--key",
            str(key),
            "--broker",
            "mqtt://127.0.0.1:1",
        ]
    )
    assert rc == 1
    assert "could not open a connection" in capsys.readouterr().err


def test_cap_alert_keeps_its_identifier_and_times(broker, key, tmp_path, capsys):
    now = datetime.now().astimezone().replace(microsecond=0)
    cap = tmp_path / "alert.xml"
    cap.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>VN-KTTV-2026-0042</identifier><sender>nchmf.gov.vn</sender>
  <sent>{now.isoformat()}</sent><status>Exercise</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>vi-VN</language><category>Met</category><event>Bão</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Likely</certainty><headline>Bão số 9</headline>
    <description>Bão số 9 đổ bộ trong 6 giờ tới.</description><instruction>Gia cố nhà cửa.</instruction>
  </info>
</alert>""")
    assert main(alert_args(broker, key, "--cap", str(cap))) == 0
    [msg] = retained(broker.url, COMMUNE_ALERT)
    doc = payload_of(msg)
    assert doc["id"] == "VN-KTTV-2026-0042" and doc["status"] == "exercise" and doc["severity"] == "severe"
    assert doc["text"] == "Bão số 9 đổ bộ trong 6 giờ tới.\nGia cố nhà cửa."
    assert datetime.fromisoformat(doc["issued"]) == now


# -- watch -----------------------------------------------------------------------------------------------------


def start_watch(broker, alert_id: str, *extra: str) -> subprocess.Popen:
    """`loa-district watch` as a real process; returns once it is listening (its 'watching' line)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "district.cli",
            "watch",
            alert_id,
            "--scope",
            COMMUNE,
            "--broker",
            broker.url,
            *extra,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stderr.readline()
    assert line.startswith("watching"), line + proc.stderr.read()
    return proc


def send_acks(url: str, alert_id: str, acks: list[tuple[str, str, str]]) -> None:
    with DistrictClient.from_url(url) as c:
        for station, state, reason in acks:
            scope = Scope.parse(station)
            c.publish(
                scope.topic("ack"),
                ack_bytes(alert_id, state, station=scope, at=datetime.now().astimezone(), reason=reason),
            )


STATIONS = {"hoa-vang/hoa-bac/tram-01": "online", "hoa-vang/hoa-bac/tram-02": "online"}


def test_watch_exits_zero_when_every_station_is_done(broker):
    publish_statuses(broker.url, STATIONS)
    proc = start_watch(broker, "a1", "--timeout", "20")
    send_acks(broker.url, "a1", [(s, st, "") for st in ("received", "playing", "done") for s in STATIONS])
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "2/2 stations done" in out
    assert out.count(" done") >= 2


def test_watch_exits_non_zero_when_a_station_rejects(broker):
    publish_statuses(broker.url, STATIONS)
    proc = start_watch(broker, "a1", "--timeout", "20")
    send_acks(
        broker.url,
        "a1",
        [
            ("hoa-vang/hoa-bac/tram-01", "done", ""),
            ("hoa-vang/hoa-bac/tram-02", "rejected", "alert a1 expired"),
        ],
    )
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out
    assert "rejected: hoa-vang/hoa-bac/tram-02  alert a1 expired" in out


def test_watch_exits_non_zero_when_a_station_stays_silent(broker):
    publish_statuses(broker.url, STATIONS)
    proc = start_watch(broker, "a1", "--timeout", "1.5")
    send_acks(broker.url, "a1", [("hoa-vang/hoa-bac/tram-01", "done", "")])
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3, out
    assert "silent: hoa-vang/hoa-bac/tram-02" in out


def test_watch_of_a_test_alert_is_satisfied_by_received(broker, key, capsys):
    publish_statuses(broker.url, STATIONS)
    assert main(alert_args(broker, key, "--status", "test", "--text", "Thử")) == 0
    alert_id = capsys.readouterr().out.strip()
    proc = start_watch(broker, alert_id, "--timeout", "20")
    send_acks(broker.url, alert_id, [(s, "received", "") for s in STATIONS])
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "2/2 stations received" in out


def test_watch_ignores_acks_of_other_alerts_and_stations_outside_the_scope(broker):
    publish_statuses(broker.url, {"hoa-vang/hoa-bac/tram-01": "online"})
    proc = start_watch(broker, "a1", "--timeout", "20")
    send_acks(broker.url, "other", [("hoa-vang/hoa-bac/tram-01", "failed", "")])
    send_acks(broker.url, "a1", [("hoa-vang/hoa-ninh/tram-09", "failed", "")])
    send_acks(broker.url, "a1", [("hoa-vang/hoa-bac/tram-01", "done", "")])
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


def test_actual_alert_confirmation_on_a_real_terminal_refuses_a_wrong_scope(broker, key):
    """The officer's side for real: the CLI in its own process, reading a pseudo-terminal."""
    import pty

    publish_statuses(broker.url, {"hoa-vang/hoa-bac/tram-01": "online"})
    leader, follower = pty.openpty()
    cmd = [
        sys.executable,
        "-m",
        "district.cli",
        *alert_args(broker, key, "--status", "actual", "--text", "Lũ"),
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    os.close(follower)
    try:
        # Answer once the summary is out (the prompt itself has no newline to read up to).
        seen = ""
        while not seen.endswith(("  text: Lũ\n",)):
            line = proc.stderr.readline()
            assert line, seen
            seen += line
        os.write(leader, b"hoa-vang\n")  # the district, not the commune: a wider scope than intended
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(leader)
    assert proc.returncode == 1, err
    assert "1 stations known in scope, 1 online" in seen
    assert "aborted" in err and out == ""
    assert retained(broker.url, COMMUNE_ALERT) == []


def test_update_replaces_the_active_alert_and_is_refused_for_one_that_ended(broker, key, capsys, tmp_path):
    assert main(alert_args(broker, key, "--status", "exercise", "--text", "Nước lên 1 mét")) == 0
    first = capsys.readouterr().out.strip()
    # the wrong status, or an id that is not the one active on the topic: nothing sent
    assert main(alert_args(broker, key, "--status", "actual", "--yes-actual", "--update", first, "--text", "x")) == 1
    assert f"alert {first} is exercise, not actual" in capsys.readouterr().err
    assert main(alert_args(broker, key, "--status", "exercise", "--update", "hv-0-nope", "--text", "x")) == 1
    assert f"is not the one active on {COMMUNE_ALERT} (that is alert {first})" in capsys.readouterr().err
    assert [payload_of(m)["id"] for m in retained(broker.url, COMMUNE_ALERT)] == [first]

    assert main(alert_args(broker, key, "--status", "exercise", "--update", first, "--text", "Nước lên 2 mét")) == 0
    out = capsys.readouterr()
    second = out.out.strip()
    assert f"sent exercise update {second}" in out.err
    [msg] = retained(broker.url, COMMUNE_ALERT)
    doc = payload_of(msg)
    assert (doc["id"], doc["msg_type"], doc["references"], doc["text"]) == (second, "update", [first], "Nước lên 2 mét")
    # the first one is no longer active: updating it again is refused; the update itself can be updated
    assert main(alert_args(broker, key, "--status", "exercise", "--update", first, "--text", "y")) == 1
    assert "not the one active" in capsys.readouterr().err
    assert main(["cancel", second, "--scope", COMMUNE, "--status", "exercise", "--key", str(key),
                 "--broker", broker.url]) == 0
    capsys.readouterr()
    assert main(alert_args(broker, key, "--status", "exercise", "--update", second, "--text", "z")) == 1
    assert f"alert {second} was cancelled" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(alert_args(broker, key, "--cap", str(tmp_path / "x.xml"), "--update", first))
    assert e.value.code == 2 and "--update goes with --text/--audio" in capsys.readouterr().err
