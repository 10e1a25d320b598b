"""The station's inbound checks for schedules and remote commands (`firmware.inbound.InboundHandler`).

Real signing keys, a real replay cache and state directory; the publish port records the acks. Every refusal is
acked with its reason and produces no event; the last good schedule stays active and survives a restart.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from firmware.adapters.statefile import StateStore
from firmware.core import events as E
from firmware.core.policy import Policy
from firmware.inbound import COMMAND_MAX_AGE, InboundHandler, load_active_schedule
from firmware.protocol.ack import AckPayload, parse_ack
from firmware.protocol.envelope import seal
from firmware.protocol.keys import generate
from firmware.protocol.replay import ReplayCache
from firmware.protocol.topics import Scope

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
STATION = Scope("hv", "hb", "s1")
KEY = generate("hv")


class Station:
    """An InboundHandler with its state dir, replay cache and a recording publish port."""

    def __init__(self, state_dir: Path, *, actions=None, windows=None, state=None):
        self.dir = state_dir
        self.acks: list[AckPayload] = []
        self.topics: list[str] = []
        self.state = state if state is not None else StateStore(state_dir)
        doc, _ = load_active_schedule(self.state, None)
        policy = Policy.model_validate({"windows": windows or [{"start": "05:00", "end": "21:00"}]})
        self.handler = InboundHandler(
            STATION, trusted_keys={KEY.kid: KEY.anchor()}, replay=ReplayCache(state_dir / "replay.json"),
            publish=self._publish, policy=policy, timezone="Asia/Ho_Chi_Minh", state=self.state,
            schedule_version=doc.version if doc else None, actions=actions)

    def _publish(self, topic: str, payload: bytes) -> None:
        self.topics.append(topic)
        self.acks.append(parse_ack(payload))

    def send(self, kind: str, raw: bytes, *, scope: Scope = STATION, retained=False, now=NOW, trusted=True):
        return self.handler.handle(scope.topic(kind), raw, retained, now, clock_trusted=trusted, last_trusted=None)

    @property
    def ack(self) -> AckPayload:
        return self.acks[-1]


@pytest.fixture
def station(tmp_path):
    return Station(tmp_path)


def programme(pid="tin-sang", start="06:00", days="daily", **kw) -> dict:
    return {"id": pid, "title": pid, "start": start, "recurrence": {"days": days},
            "source": {"type": "tone", "kind": "chime", "duration_s": 10}, **kw}


def schedule(version=1, *programmes, target="hv/hb/s1", **kw) -> bytes:
    doc = {"version": version, "target": target, "programmes": list(programmes) or [programme()], **kw}
    if target is None:
        del doc["target"]
    return json.dumps(doc).encode()


def signed(payload: bytes, key=KEY) -> bytes:
    return seal(payload, key)


# -- schedules: accepted ------------------------------------------------------------------------------


def test_a_valid_schedule_is_accepted_persisted_and_becomes_an_event(station):
    payload = schedule(1, programme("a", "06:00"), programme("b", "20:59", ["mon"]))
    [ev] = station.send("schedule", signed(payload))
    assert isinstance(ev, E.ScheduleReceived) and ev.schedule.version == 1
    assert (station.ack.ref, station.ack.state, station.ack.reason) == ("schedule-v1", "accepted", "2 programmes")
    assert station.topics == ["loa/v1/hv/hb/s1/ack"]
    assert station.state.load_schedule_bytes() == payload  # the exact signed bytes, written atomically


def test_schedules_on_the_commune_and_district_topics_are_accepted_when_targeted_there(station):
    assert station.send("schedule", signed(schedule(1, target="hv/hb")), scope=Scope("hv", "hb"))
    assert station.send("schedule", signed(schedule(2, target="hv")), scope=Scope("hv"))
    assert [a.state for a in station.acks] == ["accepted", "accepted"]


def test_the_accepted_schedule_survives_a_restart_and_its_retained_copy_is_then_ignored(tmp_path):
    first = Station(tmp_path)
    raw = signed(schedule(3))
    assert first.send("schedule", raw)
    again = Station(tmp_path)  # a reboot: same state dir
    doc, source = load_active_schedule(again.state, None)
    assert doc.version == 3 and source.endswith("schedule.json")
    assert again.handler.schedule_version == 3
    assert again.send("schedule", raw, retained=True) == []  # the broker's retained copy on reconnect
    assert again.acks == []


def test_on_schedule_is_told_of_accepted_schedules_only(tmp_path):
    told = []
    s = Station(tmp_path)
    s.handler.on_schedule = told.append
    s.send("schedule", signed(schedule(1)))
    s.send("schedule", signed(schedule(1)))  # refused: not newer
    assert [d.version for d in told] == [1]


# -- schedules: refused, the old one kept --------------------------------------------------------------


@pytest.fixture
def running(tmp_path):
    """A station already running schedule v5."""
    s = Station(tmp_path)
    s.send("schedule", signed(schedule(5)))
    assert s.ack.state == "accepted"
    return s


def assert_refused_and_v5_kept(s: Station, events, reason_part: str, ref: str | None = None):
    assert events == []
    assert s.ack.state == "rejected", s.ack
    assert reason_part in s.ack.reason, s.ack.reason
    if ref is not None:
        assert s.ack.ref == ref
    assert s.handler.schedule_version == 5
    assert json.loads(s.state.load_schedule_bytes())["version"] == 5
    restarted, _ = load_active_schedule(StateStore(s.dir), None)
    assert restarted.version == 5


def test_a_bad_signature_is_refused_without_echoing_the_version(running):
    env = json.loads(signed(schedule(6)))
    env["payload"] = signed(schedule(7)).split(b'"payload":"')[1].split(b'"')[0].decode()  # v7's bytes, v6's sig
    evs = running.send("schedule", json.dumps(env).encode())
    assert_refused_and_v5_kept(running, evs, "bad-signature: signature does not verify with key", ref="")


def test_an_unknown_key_is_refused(running):
    evs = running.send("schedule", signed(schedule(6), generate("hv")))
    assert_refused_and_v5_kept(running, evs, "unknown-key", ref="")


def test_a_key_of_another_district_is_refused(tmp_path):
    other = generate("hoa-vang")
    s = Station(tmp_path)
    s.handler.trusted_keys = {**s.handler.trusted_keys, other.kid: other.anchor()}
    s.send("schedule", signed(schedule(5)))
    evs = s.send("schedule", signed(schedule(6), other))
    assert_refused_and_v5_kept(s, evs, "key-not-for-scope: key", ref="")


@pytest.mark.parametrize("target, scope, reason", [
    ("hv/hb", STATION, 'target "hv/hb" differs from the topic\'s scope "hv/hb/s1"'),
    ("hv/hb/s2", STATION, 'target "hv/hb/s2" differs'),
    ("hv/hb/s1", Scope("hv", "hb"), 'target "hv/hb/s1" differs from the topic\'s scope "hv/hb"'),
    (None, STATION, 'target "None" differs'),
])
def test_a_schedule_for_another_scope_is_refused(running, target, scope, reason):
    evs = running.send("schedule", signed(schedule(6, target=target)), scope=scope)
    assert_refused_and_v5_kept(running, evs, reason, ref="schedule-v6")


@pytest.mark.parametrize("version", [5, 4, 1])
def test_an_equal_or_older_version_is_refused(running, version):
    evs = running.send("schedule", signed(schedule(version)))
    assert_refused_and_v5_kept(running, evs, f"version {version} is not newer than the active version 5",
                               ref=f"schedule-v{version}")


def test_the_retained_copy_of_the_active_version_is_ignored_silently(running):
    before = len(running.acks)
    assert running.send("schedule", signed(schedule(5)), retained=True) == []
    assert len(running.acks) == before


def test_an_older_retained_schedule_is_still_refused_aloud(running):
    # e.g. a commune-level v3 retained beside the station's v5: every reconnect acks this refusal again
    evs = running.send("schedule", signed(schedule(3, target="hv/hb")), scope=Scope("hv", "hb"), retained=True)
    assert_refused_and_v5_kept(running, evs, "version 3 is not newer than the active version 5")


@pytest.mark.parametrize("payload, reason", [
    (schedule(6, programme(start="25:00")), 'programmes[0] ("tin-sang").start'),
    (schedule(6, programme(gain_db=3)), "gain_db"),
    (schedule(6, programme("a"), programme("a")), 'programme id "a" is used twice'),
    (schedule(6, programme(source={"type": "file", "url": "http://x/a.mp3", "duration_s": 5})), "sha256"),
    (schedule(6, programme(source={"type": "stream", "urls": ["http://x/live"]})), "max_duration_s"),
    (schedule(6, programme(), extra="x"), "extra"),
    (b'{"version": 6, "programmes": [', "not valid JSON"),
])
def test_invalid_fields_are_refused_with_every_problem(running, payload, reason):
    evs = running.send("schedule", signed(payload))
    assert_refused_and_v5_kept(running, evs, "invalid: ")
    assert reason in running.ack.reason
    assert running.ack.ref in ("schedule-v6", "schedule")


def test_programmes_outside_the_allowed_windows_are_refused_each_with_its_reason(tmp_path):
    s = Station(tmp_path, windows=[{"start": "05:30", "end": "07:00"},
                                   {"start": "17:00", "end": "19:00", "days": ["mon", "tue", "wed", "thu", "fri"]}])
    evs = s.send("schedule", signed(schedule(
        1, programme("sang", "05:45", ["mon"]), programme("som", "04:45", ["tue"]),
        programme("chieu", "18:00", ["sat"]), programme("dem", "21:30", ["sun"]))))
    assert evs == [] and s.ack.state == "rejected"
    reasons = s.ack.reason.split("; ")
    assert reasons == [
        'programme "som" starts 04:45 on Tue, outside allowed windows 05:30-07:00, 17:00-19:00',
        'programme "chieu" starts 18:00 on Sat, outside allowed window 05:30-07:00',
        'programme "dem" starts 21:30 on Sun, outside allowed window 05:30-07:00',
    ]
    assert s.handler.schedule_version is None and s.state.load_schedule_bytes() is None


def test_a_schedule_in_another_timezone_is_refused(running):
    evs = running.send("schedule", signed(schedule(6, timezone="Asia/Bangkok")))
    assert_refused_and_v5_kept(running, evs, 'schedule timezone "Asia/Bangkok" differs from the station\'s')


def test_an_oversize_schedule_is_refused_before_it_is_parsed(running):
    huge = b" " * 1_500_001
    evs = running.send("schedule", huge)
    assert_refused_and_v5_kept(running, evs, "oversize: message is 1500001 bytes, limit 1500000", ref="")


def test_a_payload_over_one_mebibyte_is_refused_even_when_signed(running):
    payload = schedule(6, programme(title="x" * 200), padding="y" * (1024 * 1024))
    evs = running.send("schedule", signed(payload))
    assert_refused_and_v5_kept(running, evs, "too large")


class FullDisk(StateStore):
    def save_schedule_bytes(self, raw: bytes) -> None:
        raise OSError(28, "No space left on device")


def test_a_schedule_that_cannot_be_stored_is_refused_and_not_used(tmp_path):
    s = Station(tmp_path, state=FullDisk(tmp_path))
    assert s.send("schedule", signed(schedule(1))) == []
    assert s.ack.state == "rejected" and "cannot store it: [Errno 28] No space left on device" in s.ack.reason
    assert s.handler.schedule_version is None


def test_an_empty_retained_message_clears_nothing_and_says_nothing(running):
    before = len(running.acks)
    assert running.send("schedule", b"", retained=True) == []
    assert len(running.acks) == before and running.handler.schedule_version == 5


# -- remote commands ------------------------------------------------------------------------------------


def command(cmd="mute", *, id="c-1", issued=NOW, target="hv/hb/s1", **kw) -> bytes:
    data = {"id": id, "issued": issued.isoformat() if isinstance(issued, datetime) else issued, "target": target,
            "cmd": cmd, **kw}
    return json.dumps(data).encode()


def test_gain_mute_and_unmute_become_events_and_are_done(station):
    assert station.send("cmd", signed(command("gain", id="g", offset_db=-6))) == [E.GainOffsetChanged(-6.0)]
    assert (station.ack.ref, station.ack.state) == ("g", "done")
    assert "gain offset -6.0 dB" in station.ack.reason
    assert station.send("cmd", signed(command("mute", id="m"))) == [E.MuteChanged(True)]
    assert station.send("cmd", signed(command("unmute", id="u"))) == [E.MuteChanged(False)]
    assert [(a.ref, a.state) for a in station.acks] == [("g", "done"), ("m", "done"), ("u", "done")]


def test_an_action_reports_its_outcome(tmp_path):
    s = Station(tmp_path, actions={"selftest": lambda: "amplifier ok"})
    assert s.send("cmd", signed(command("selftest"))) == []
    assert (s.ack.ref, s.ack.state, s.ack.reason) == ("c-1", "done", "amplifier ok")


def test_an_action_that_raises_is_failed_not_a_crash(tmp_path):
    def fetch() -> str:
        raise RuntimeError("cache directory is read-only")

    s = Station(tmp_path, actions={"fetch": fetch})
    assert s.send("cmd", signed(command("fetch"))) == []
    assert (s.ack.state, s.ack.reason) == ("failed", "RuntimeError: cache directory is read-only")


def test_an_action_the_station_lacks_is_failed(station):
    station.send("cmd", signed(command("telemetry")))
    assert (station.ack.state, station.ack.reason) == ("failed", "telemetry is not available on this station")


@pytest.mark.parametrize("payload, reason", [
    (command(target="hv/hb/s2"), 'wrong-target: target "hv/hb/s2" differs from the topic\'s scope "hv/hb/s1"'),
    (command(issued=NOW - COMMAND_MAX_AGE - timedelta(seconds=1)), "expired: issued"),
    (command(issued=NOW + timedelta(seconds=301)), "future: issued"),
    (command("gain"), "bad-payload: a gain command needs offset_db"),
    (command("gain", offset_db=21), "bad-payload"),
    (command("reboot"), "bad-payload"),
    (command(extra=1), "bad-payload"),
    (command(issued="2026-12-01T10:00:00"), "bad-payload: issued needs a UTC offset"),
    (command(id="no spaces"), "bad-payload"),
    (b"[]", "bad-payload"),
])
def test_bad_commands_are_rejected_with_the_reason_and_do_nothing(tmp_path, payload, reason):
    ran = []
    s = Station(tmp_path, actions={"selftest": lambda: ran.append(1) or "ok"})
    assert s.send("cmd", signed(payload)) == []
    assert s.ack.state == "rejected" and s.ack.reason.startswith(reason), s.ack.reason
    assert ran == []


def test_a_bad_payload_echoes_the_id_it_could_read(station):
    station.send("cmd", signed(command("reboot", id="c-9")))
    assert station.ack.ref == "c-9"


def test_a_replayed_command_is_rejected_even_after_a_restart(tmp_path):
    s = Station(tmp_path)
    raw = signed(command("mute", id="c-7"))
    assert s.send("cmd", raw) == [E.MuteChanged(True)]
    assert s.send("cmd", raw, now=NOW + timedelta(seconds=5)) == []
    assert (s.ack.state, s.ack.reason) == ("rejected", "replayed: command c-7 was already carried out")
    again = Station(tmp_path)
    assert again.send("cmd", raw, now=NOW + timedelta(seconds=10)) == []
    assert again.ack.reason.startswith("replayed")


def test_with_an_untrusted_clock_the_age_of_a_command_is_not_held_against_it(station):
    old = signed(command(issued=NOW - timedelta(hours=5)))
    assert station.send("cmd", old, trusted=False) == [E.MuteChanged(True)]


@pytest.mark.parametrize("raw, reason", [
    (signed(command(), generate("hv")), "unknown-key"),
    (b"{}", "bad-envelope"),
    (b"not json", "not-json"),
    (b"x" * (16 * 1024 + 1), "oversize"),
])
def test_unverifiable_commands_are_rejected_without_an_id(station, raw, reason):
    assert station.send("cmd", raw) == []
    assert station.ack.state == "rejected" and station.ack.ref == "" and station.ack.reason.startswith(reason)


def test_a_command_with_a_forged_signature_is_rejected(station):
    env = json.loads(signed(command("mute")))
    env["payload"] = json.loads(signed(command("unmute")))["payload"]
    assert station.send("cmd", json.dumps(env).encode()) == []
    assert station.ack.reason.startswith("bad-signature") and station.ack.ref == ""


def test_an_accepted_alert_id_is_on_disk_only_after_flush(tmp_path):
    """The replay cache is saved after the alert's commands ran (no fsync between an alert and the horn),
    but it is in memory at once: a duplicate right behind it is refused."""
    import json as _json
    from datetime import timedelta as _td

    from firmware.protocol.alert import new_alert_payload
    from firmware.protocol.replay import ReplayCache

    s = Station(tmp_path)
    path = s.handler.replay.path
    before = path.read_bytes() if path.exists() else b""
    payload = new_alert_payload(id="hv-flush-1", issued=NOW, expires=NOW + _td(minutes=30), status="actual",
                                target="hv/hb/s1", severity="severe", text="Lũ")
    evs = s.send("alert", signed(payload.to_bytes()))
    aid = payload.id
    assert len(evs) == 1 and aid in s.handler.replay
    assert s.send("alert", signed(payload.to_bytes())) == []  # the duplicate right behind it is refused
    assert (path.read_bytes() if path.exists() else b"") == before
    s.handler.flush()
    assert aid in _json.loads(path.read_text())["seen"]
    assert aid in ReplayCache(path)
