"""A pushed policy at the station (`InboundHandler` + the core): verified like a schedule, held to the district's
bounds, stored atomically, applied to the plan, and acked with a reason that names the bound and the value.

Real signing keys, a real state directory and replay cache; the publish port records the acks.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from firmware.adapters.statefile import StateStore
from firmware.config import ConfigError, parse_config_text
from firmware.core import commands as C
from firmware.core import events as E
from firmware.core.policy import Policy
from firmware.core.policydoc import PolicyBounds, parse_policy_doc
from firmware.core.schedule import parse_schedule
from firmware.core.station import Station
from firmware.inbound import InboundHandler, load_active_policy
from firmware.protocol.ack import AckPayload, parse_ack
from firmware.protocol.envelope import seal
from firmware.protocol.keys import generate
from firmware.protocol.replay import ReplayCache
from firmware.protocol.topics import Scope

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
STATION = Scope("hv", "hb", "s1")
KEY = generate("hv")
TOML_POLICY = Policy.model_validate({"windows": [{"start": "05:30", "end": "21:00", "cap_db": -6}]})
BOUNDS = PolicyBounds.model_validate({"earliest_start": "05:00", "latest_end": "22:00", "max_gain_db": -3})


def window(start="06:00", end="07:00", cap_db=-6.0, **kw) -> dict:
    return {"start": start, "end": end, "cap_db": cap_db, **kw}


def policy_doc(version=1, *windows, target="hv/hb", issued=NOW - timedelta(hours=1), **policy) -> bytes:
    doc = {"id": f"hb-{version}", "version": version, "issued": issued.isoformat(), "target": target,
           "policy": {"windows": list(windows) or [window()], **policy}}
    return json.dumps(doc).encode()


class Inbound:
    """An InboundHandler as the app builds it: state dir, bounds, the pushed policy if one is stored."""

    def __init__(self, state_dir: Path, *, bounds=BOUNDS, schedule=None):
        self.state = StateStore(state_dir)
        self.acks: list[AckPayload] = []
        pushed = load_active_policy(self.state, STATION, bounds)
        self.policy = pushed.policy if pushed else TOML_POLICY
        self.handler = InboundHandler(
            STATION, trusted_keys={KEY.kid: KEY.anchor()}, replay=ReplayCache(state_dir / "replay.json"),
            publish=lambda t, p: self.acks.append(parse_ack(p)), policy=self.policy, timezone="Asia/Ho_Chi_Minh",
            state=self.state, bounds=bounds, policy_doc=pushed, schedule=schedule,
            schedule_version=schedule.version if schedule else None)

    def send(self, raw: bytes, *, scope: Scope = Scope("hv", "hb"), kind="policy", retained=False, now=NOW,
             trusted=True, key=KEY):
        envelope = seal(raw, key) if key is not None else raw
        return self.handler.handle(scope.topic(kind), envelope, retained, now, clock_trusted=trusted,
                                   last_trusted=None)

    @property
    def ack(self) -> AckPayload:
        return self.acks[-1]


@pytest.fixture
def inbound(tmp_path):
    return Inbound(tmp_path)


# -- accepted ---------------------------------------------------------------------------------------------


def test_a_policy_inside_the_bounds_is_accepted_stored_and_becomes_an_event(inbound, tmp_path):
    [ev] = inbound.send(policy_doc(1, window("05:00", "06:30", -3), window("17:00", "22:00", -12)))
    assert isinstance(ev, E.PolicyReceived)
    assert [w.label() for w in ev.policy.windows] == ["05:00-06:30", "17:00-22:00"]
    assert (inbound.ack.ref, inbound.ack.state) == ("policy-v1", "accepted")
    assert "2 windows (05:00-06:30 -3 dB, 17:00-22:00 -12 dB)" in inbound.ack.reason
    assert parse_policy_doc((tmp_path / "policy.json").read_bytes()).version == 1
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically: no temp file left behind


def test_the_next_schedule_is_checked_against_the_pushed_policy(inbound):
    inbound.send(policy_doc(1, window("17:00", "19:00")))
    sched = {"version": 1, "target": "hv/hb/s1", "programmes": [
        {"id": "tin-sang", "title": "t", "start": "06:00", "recurrence": {"days": "daily"},
         "source": {"type": "tone", "kind": "chime", "duration_s": 10}}]}
    assert inbound.send(json.dumps(sched).encode(), kind="schedule", scope=STATION) == []
    assert inbound.ack.state == "rejected" and "outside allowed window 17:00-19:00" in inbound.ack.reason


def test_the_active_schedule_is_rechecked_and_what_no_longer_fits_is_named_in_the_ack(tmp_path):
    sched = parse_schedule(json.dumps({"version": 4, "target": "hv/hb", "programmes": [
        {"id": "tin-sang", "title": "t", "start": "05:45", "recurrence": {"days": "daily"},
         "source": {"type": "tone", "kind": "chime", "duration_s": 10}}]}))
    inbound = Inbound(tmp_path, schedule=sched)
    [ev] = inbound.send(policy_doc(1, window("06:00", "07:00")))
    assert inbound.ack.state == "accepted"
    assert 'active schedule v4 no longer fits: programme "tin-sang" starts 05:45' in inbound.ack.reason


# -- refused outside the bounds: each bound, with its value -----------------------------------------------


@pytest.mark.parametrize(("win", "reason"), [
    (window("04:30", "07:00"), "window 04:30-07:00 starts before the earliest start 05:00 set by the district"),
    (window("20:00", "22:30"), "window 20:00-22:30 ends after the latest end 22:00 set by the district"),
    (window("21:00", "01:00"), "window 21:00-01:00 ends (the next day) after the latest end 22:00 set by the district"),
    (window("06:00", "07:00", cap_db=-1.5),
     "window 06:00-07:00 caps at -1.5 dB, louder than the loudest cap -3 dB set by the district"),
])
def test_a_policy_outside_a_bound_is_refused_naming_the_bound_and_the_value(inbound, tmp_path, win, reason):
    assert inbound.send(policy_doc(1, win)) == []
    assert (inbound.ack.ref, inbound.ack.state, inbound.ack.reason) == ("policy-v1", "rejected", reason)
    assert not (tmp_path / "policy.json").exists()


def test_without_bounds_only_the_firmware_limits_apply(tmp_path):
    inbound = Inbound(tmp_path, bounds=PolicyBounds())
    [ev] = inbound.send(policy_doc(1, window("00:00", "24:00", cap_db=0)))
    assert ev.policy.windows[0].cap_db == 0
    inbound.send(policy_doc(2, window("06:00", "07:00", cap_db=3)))  # above 0 dBFS: the model refuses it
    assert inbound.ack.state == "rejected"
    assert inbound.ack.reason.startswith("invalid: policy.windows[0].cap_db")


# -- replayed, older, wrong target, unsigned --------------------------------------------------------------


def test_an_older_or_equal_version_is_refused_and_the_retained_copy_is_ignored(inbound):
    inbound.send(policy_doc(3))
    assert inbound.send(policy_doc(2)) == []
    assert inbound.ack.reason == "stale: version 2 is not newer than the active version 3"
    assert inbound.send(policy_doc(3)) == []  # replayed by hand
    assert inbound.ack.state == "rejected" and "version 3 is not newer" in inbound.ack.reason
    n = len(inbound.acks)
    assert inbound.send(policy_doc(3), retained=True) == []  # what a reconnect delivers again: not an error
    assert len(inbound.acks) == n


def test_a_newer_version_issued_before_the_active_one_is_refused(inbound):
    inbound.send(policy_doc(3, issued=NOW - timedelta(hours=1)))
    assert inbound.send(policy_doc(4, issued=NOW - timedelta(days=2))) == []
    assert inbound.ack.reason.startswith("stale: issued 2026-11-29T10:00:00+07:00, before the active version 3")


def test_a_policy_issued_in_the_future_is_refused_while_the_clock_is_trusted(inbound):
    assert inbound.send(policy_doc(1, issued=NOW + timedelta(hours=2))) == []
    assert inbound.ack.reason.startswith("future: issued")
    assert inbound.send(policy_doc(1, issued=NOW + timedelta(hours=2)), trusted=False) != []


def test_a_policy_for_another_scope_is_refused(inbound):
    assert inbound.send(policy_doc(1, target="hv/other")) == []
    assert inbound.ack.reason == 'wrong-target: target "hv/other" differs from the topic\'s scope "hv/hb"'


def test_an_unsigned_or_foreign_signed_policy_is_refused(inbound):
    assert inbound.send(policy_doc(1), key=None) == []
    assert inbound.ack.state == "rejected"
    assert inbound.send(policy_doc(1), key=generate("hv")) == []
    assert inbound.ack.state == "rejected" and "ed25519-" in inbound.ack.reason  # names the unknown key
    assert not inbound.state.policy_path.exists()


@pytest.mark.parametrize(("payload", "expected"), [
    (b"not json", "invalid: not valid JSON"),
    (b"[1]", "invalid: a policy document is a JSON object"),
    (policy_doc(1, window("25:00", "07:00")), 'invalid: policy.windows[0].start: "25:00" is not a time of day'),
    (json.dumps({"id": "x", "version": 1, "issued": "2026-12-01T08:00:00", "target": "hv/hb",
                 "policy": {"windows": [window()]}}).encode(), "invalid: issued"),
])
def test_a_malformed_policy_is_refused_with_the_key_path(inbound, payload, expected):
    assert inbound.send(payload) == []
    assert inbound.ack.state == "rejected" and inbound.ack.reason.startswith(expected), inbound.ack.reason


# -- no pushed policy, restart ----------------------------------------------------------------------------


def test_a_station_with_no_pushed_policy_keeps_station_toml(tmp_path):
    assert Inbound(tmp_path).policy == TOML_POLICY


def test_a_restart_keeps_the_pushed_policy_and_still_refuses_older_ones(tmp_path):
    Inbound(tmp_path).send(policy_doc(2, window("06:00", "08:00", -9)))
    again = Inbound(tmp_path)
    assert [w.label() for w in again.policy.windows] == ["06:00-08:00"]
    assert again.send(policy_doc(1)) == []
    assert "not newer than the active version 2" in again.ack.reason


def test_a_stored_policy_outside_narrower_bounds_falls_back_to_station_toml(tmp_path, caplog):
    Inbound(tmp_path).send(policy_doc(1, window("05:00", "06:00")))
    narrower = PolicyBounds.model_validate({"earliest_start": "05:30"})
    assert Inbound(tmp_path, bounds=narrower).policy == TOML_POLICY
    assert "outside the bounds now provisioned" in caplog.text


def test_a_corrupt_stored_policy_falls_back_to_station_toml(tmp_path):
    (tmp_path / "policy.json").write_bytes(b'{"version": 1, "pol')
    assert Inbound(tmp_path).policy == TOML_POLICY


# -- the core applies it ----------------------------------------------------------------------------------


def _tone_schedule(start: str):
    return parse_schedule(json.dumps({"version": 1, "programmes": [
        {"id": "p", "title": "p", "start": start, "recurrence": {"days": "daily"},
         "source": {"type": "tone", "kind": "chime", "duration_s": 600}}]}))


def test_the_core_recomputes_the_plan_and_stops_a_programme_the_new_policy_forbids():
    st = Station(TOML_POLICY, _tone_schedule("09:55"), TZ)
    out = st.handle(E.Booted(clock_trusted=True), NOW)
    assert any(isinstance(c, C.Play) for c in out)  # joined at its offset inside 05:30-21:00
    new = Policy.model_validate({"windows": [{"start": "17:00", "end": "19:00"}]})
    out = st.handle(E.PolicyReceived(new), NOW + timedelta(seconds=1))
    assert any(isinstance(c, C.Stop) for c in out)


def test_the_core_applies_a_new_cap_to_the_programme_that_plays():
    st = Station(TOML_POLICY, _tone_schedule("09:55"), TZ)
    st.handle(E.Booted(clock_trusted=True), NOW)
    quieter = Policy.model_validate({"windows": [{"start": "05:30", "end": "21:00", "cap_db": -20}]})
    out = st.handle(E.PolicyReceived(quieter), NOW + timedelta(seconds=1))
    [gain] = [c for c in out if isinstance(c, C.SetGain)]
    assert gain.cap_db == -20 and gain.gain_db <= -20


# -- provisioned bounds in station.toml -------------------------------------------------------------------

BASE = """
[station]
district = "hv"
commune = "hb"
id = "s1"

[[policy.windows]]
start = "05:30"
end = "07:00"
cap_db = -6.0
"""


def test_station_toml_takes_policy_bounds_and_its_own_policy_must_fit_them():
    cfg = parse_config_text(BASE + '\n[policy_bounds]\nearliest_start = "05:00"\nmax_gain_db = -6.0\n')
    assert cfg.policy_bounds.earliest_start == 300 and cfg.policy_bounds.latest_end is None
    with pytest.raises(ConfigError) as e:
        parse_config_text(BASE + '\n[policy_bounds]\nearliest_start = "06:00"\n')
    assert "window 05:30-07:00 starts before the earliest start 06:00 set by the district" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config_text(BASE + '\n[policy_bounds]\nlatest_end = "25:00"\nloudest = 1\n')
    assert "policy_bounds.latest_end" in str(e.value) and "policy_bounds.loudest: unknown key" in str(e.value)
