"""`loa-district cmd` against a real mosquitto and a station's real InboundHandler: outcomes and exit codes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from district import commands_lib
from district.cli import main
from firmware.core import events as E
from firmware.protocol.command import Command
from firmware.protocol.keys import generate, signing_key_pem
from firmware.protocol.topics import Scope
from tests.district.test_schedule_push import InboundStation

STATION = "hoa-vang/hoa-bac/tram-01"


@pytest.fixture
def keys(tmp_path):
    assert main(["keygen", "--district", "hoa-vang", "--out", str(tmp_path / "keys")]) == 0
    key = next((tmp_path / "keys").glob("*.key"))
    from firmware.protocol.keys import load_trust_anchors

    return key, load_trust_anchors(key.with_suffix(".json"))


@pytest.fixture
def station(broker, keys, tmp_path):
    _, anchors = keys

    def selftest() -> str:
        return "amplifier ok, speaker ok, clock synced"

    def fetch() -> str:
        raise OSError(28, "No space left on device")

    s = InboundStation(broker.url, Scope.parse(STATION), anchors, tmp_path / "station",
                       actions={"selftest": selftest, "fetch": fetch})
    yield s
    s.close()


def cmd(broker, key, *args, scope=STATION, wait="10") -> int:
    return main(["cmd", *args, "--scope", scope, "--key", str(key), "--broker", broker.url, "--wait", wait])


def test_gain_mute_unmute_are_done_and_reach_the_station_core(broker, keys, station, capsys):
    key, _ = keys
    assert cmd(broker, key, "gain", "--offset-db", "-6") == 0
    out = capsys.readouterr().out
    assert ": done: gain offset -6.0 dB (still under the policy caps)" in out
    assert station.events.get(timeout=5) == E.GainOffsetChanged(-6.0)
    assert cmd(broker, key, "mute") == 0
    assert "done: scheduled audio muted (alerts always play)" in capsys.readouterr().out
    assert station.events.get(timeout=5) == E.MuteChanged(True)
    assert cmd(broker, key, "unmute") == 0
    assert station.events.get(timeout=5) == E.MuteChanged(False)


def test_an_action_reports_its_outcome_and_a_failing_one_exits_1(broker, keys, station, capsys):
    key, _ = keys
    assert cmd(broker, key, "selftest") == 0
    assert "done: amplifier ok, speaker ok, clock synced" in capsys.readouterr().out
    assert cmd(broker, key, "fetch") == 1
    assert "failed: OSError: [Errno 28] No space left on device" in capsys.readouterr().out
    assert cmd(broker, key, "telemetry") == 1  # this station has no such action
    assert "failed: telemetry is not available on this station" in capsys.readouterr().out


def test_a_command_signed_with_an_untrusted_key_is_rejected_without_an_id(broker, station, tmp_path, capsys):
    other = generate("hoa-vang")
    (tmp_path / "other.key").write_bytes(signing_key_pem(other))
    assert cmd(broker, tmp_path / "other.key", "mute") == 1
    out = capsys.readouterr().out
    assert "rejected: unknown-key" in out
    assert "could not verify the message" in out
    assert station.events.empty()


def test_no_station_listening_exits_3(broker, keys, capsys):
    key, _ = keys
    assert cmd(broker, key, "mute", scope="hoa-vang/hoa-bac/tram-99", wait="1") == 3
    assert "no answer from hoa-vang/hoa-bac/tram-99 within 1 s" in capsys.readouterr().out


def test_an_unreachable_broker_exits_1(keys, capsys):
    key, _ = keys
    assert main(["cmd", "mute", "--scope", STATION, "--key", str(key), "--broker", "mqtt://127.0.0.1:1"]) == 1
    assert "loa-district cmd: mqtt://127.0.0.1:1" in capsys.readouterr().err


def test_a_bad_key_file_exits_1(tmp_path, capsys):
    (tmp_path / "bad.key").write_text("nope")
    assert main(["cmd", "mute", "--scope", STATION, "--key", str(tmp_path / "bad.key"), "--broker",
                 "mqtt://127.0.0.1:1"]) == 1
    assert "bad.key: not an unencrypted PEM private key" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["gain", "--scope", STATION], "--offset-db"),
        (["gain", "--offset-db", "loud", "--scope", STATION], "invalid float value"),
        (["gain", "--offset-db", "21", "--scope", STATION], "--offset-db: Input should be less than or equal to 20"),
        (["gain", "--offset-db", "-41", "--scope", STATION], "greater than or equal to -40"),
        (["gain", "--offset-db", "nan", "--scope", STATION], "--offset-db"),
        (["mute", "--scope", "hoa-vang/hoa-bac"], "a command goes to one station"),
        (["mute", "--scope", "Hoa-Vang/x/y"], "--scope"),
        (["mute", "--scope", STATION, "--wait", "0"], "--wait must be a positive number"),
        (["reboot", "--scope", STATION], "invalid choice: 'reboot'"),
        (["--scope", STATION], "invalid choice"),
        ([], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2(args, expected, capsys):
    with pytest.raises(SystemExit) as e:
        main(["cmd", *args, "--key", "k", "--broker", "mqtt://127.0.0.1:1"])
    assert e.value.code == 2
    assert expected in capsys.readouterr().err


def test_the_payload_is_the_station_model_with_a_unique_id_and_offset():
    now = datetime(2026, 11, 26, 10, 30, tzinfo=timezone(timedelta(hours=7)))
    scope = Scope.parse(STATION)
    a = commands_lib.build_command(scope, "gain", now, offset_db=-6)
    b = commands_lib.build_command(scope, "gain", now, offset_db=-6)
    assert a.id != b.id and a.id.startswith("tram-01-cmd-20261126T103000-")
    data = json.loads(commands_lib.command_bytes(a))
    assert data == {"id": a.id, "issued": "2026-11-26T10:30:00+07:00", "target": STATION, "cmd": "gain", "offset_db": -6.0}
    assert Command.model_validate(data) == a
    assert "offset_db" not in json.loads(commands_lib.command_bytes(commands_lib.build_command(scope, "mute", now)))
    with pytest.raises(ValueError, match="needs a UTC offset"):
        commands_lib.build_command(scope, "mute", now.replace(tzinfo=None))
    with pytest.raises(ValueError, match="one station"):
        commands_lib.build_command(Scope("hoa-vang"), "mute", now)
    assert now - timedelta(minutes=1) < a.issued <= now
