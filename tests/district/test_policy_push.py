"""`loa-district policy check|push|show`, offline and against a real mosquitto with a real simulated station
(the daemon's App on simulated GPIO and sink): the station applies the pushed policy, acks it, keeps it across
a restart, and refuses what is outside the district's bounds."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from district.cli import main
from district.mqtt import DistrictClient
from firmware.core import commands as C
from firmware.core.policydoc import parse_policy_doc
from firmware.protocol.envelope import open_envelope
from firmware.protocol.keys import load_trust_anchors
from firmware.protocol.topics import Scope
from tests.scenarios.harness import TZ, config, schedule, start_station, write_key
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "policy.example.json"


def policy_file(tmp: Path, name="p.json", *, version=1, windows=(("17:00", "19:00", -12.0),), target=None,
                **extra) -> Path:
    doc = {"id": f"hb-{version}", "version": version, "issued": f"2026-11-30T12:{version:02d}:00+07:00",
           "policy": {"windows": [{"start": a, "end": b, "cap_db": c} for a, b, c in windows], **extra}}
    if target:
        doc["target"] = target
    path = tmp / name
    path.write_text(json.dumps(doc))
    return path


# -- offline ----------------------------------------------------------------------------------------------


def test_check_accepts_the_example_and_describes_it(capsys):
    assert main(["policy", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "policy v1 (hoa-bac-2026-12) is valid" in out and "window 05:30-07:00" in out


@pytest.mark.parametrize(("content", "expected"), [
    ("{not json", "not valid JSON"),
    ("[]", "a policy is a JSON object, this is a JSON list"),
    (json.dumps({"id": "a", "version": 1, "policy": {"windows": [{"start": "25:00", "end": "07:00"}]}}),
     'policy.windows[0].start: "25:00" is not a time of day (00:00-23:59)'),
    (json.dumps({"id": "a", "version": 0, "policy": {"windows": [{"start": "05:00", "end": "07:00"}],
                                                     "max_sessions": 3}}),
     "policy.max_sessions: unknown key"),
    (json.dumps({"id": "a", "version": 1, "policy": {"windows": []}}), "policy.windows"),
])
def test_check_refuses_bad_files_with_one_line_per_problem_and_its_key_path(tmp_path, content, expected, capsys):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["policy", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: refused" in err and expected in err
    assert "Traceback" not in err


def test_check_holds_the_file_to_the_district_bounds(tmp_path, capsys):
    bounds = tmp_path / "policy_bounds.toml"
    bounds.write_text('earliest_start = "06:00"\nmax_gain_db = -10.0\n')
    assert main(["policy", "check", str(EXAMPLE), "--bounds", str(bounds)]) == 1
    err = capsys.readouterr().err
    assert "window 05:30-07:00 starts before the earliest start 06:00 set by the district" in err
    assert "window 05:30-07:00 caps at -6 dB, louder than the loudest cap -10 dB set by the district" in err
    bounds.write_text('latest_end = "31:00"\n')
    assert main(["policy", "check", str(EXAMPLE), "--bounds", str(bounds)]) == 1
    assert f"{bounds}: refused" in capsys.readouterr().err


def test_check_with_another_scope_than_the_target_is_refused(capsys):
    assert main(["policy", "check", str(EXAMPLE), "--scope", "hoa-vang/hoa-ninh"]) == 1
    assert 'target "hoa-vang/hoa-bac" differs from --scope hoa-vang/hoa-ninh' in capsys.readouterr().err


def test_push_needs_a_broker_or_dry_run_and_reads_its_key(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["policy", "push", str(EXAMPLE), "--scope", "hoa-vang/hoa-bac", "--key", "k"])
    assert e.value.code == 2
    assert main(["policy", "push", str(EXAMPLE), "--scope", "hoa-vang/hoa-bac", "--key", str(tmp_path / "no"),
                 "--dry-run"]) == 1
    assert "Traceback" not in capsys.readouterr().err


# -- against a real broker and a real simulated station ---------------------------------------------------


def _push(broker, tmp, path, *extra, scope="hv/hb") -> int:
    return main(["policy", "push", str(path), "--scope", scope, "--key", str(tmp / "district.key"),
                 "--broker", broker.url, *extra])


def _long_tone(start="06:05"):
    return {"id": "tin-sang", "title": "Bản tin sáng", "start": start, "gain_db": -6,
            "recurrence": {"days": "daily"}, "source": {"type": "tone", "kind": "test", "duration_s": 600}}


def test_a_pushed_policy_is_applied_acked_kept_across_a_restart_and_older_ones_are_refused(
        broker, tmp_path, capsys):
    write_key(tmp_path)
    cfg = config(tmp_path, broker_url=broker.url, windows=(("05:30", "07:00", -6.0),),
                 extra='[policy_bounds]\nearliest_start = "05:00"\nlatest_end = "22:00"\nmax_gain_db = -3.0\n')
    at = datetime(2026, 12, 1, 6, 10, tzinfo=TZ)
    app, _, rec = start_station(cfg, at=at, doc=schedule(_long_tone()))
    try:
        assert rec.wait_for(lambda r: r.of(C.Play)), "the 06:05 programme joins at 06:10 under station.toml"
        assert wait_until(lambda: app.parts.link.connected, 10)
        # the district moves the commune's hours to the evening: the morning programme stops, the ack says so
        assert _push(broker, tmp_path, policy_file(tmp_path, version=2), "--watch", "20") == 0
        out, err = capsys.readouterr()
        assert "policy v2 (hb-2) for hv/hb: 1 window(s)" in out and "policy-v2" in err
        assert "1/1 stations accepted" in out
        assert 'active schedule v1 no longer fits: programme "tin-sang" starts 06:05' in out
        assert rec.wait_for(lambda r: any(s.reason == "policy replaced" for s in r.of(C.Stop)))
        # outside a bound: refused by the station, with the bound and the value
        loud = policy_file(tmp_path, "loud.json", version=3, windows=(("17:00", "19:00", -1.0),))
        assert _push(broker, tmp_path, loud, "--watch", "20") == 1
        assert "window 17:00-19:00 caps at -1 dB, louder than the loudest cap -3 dB set by the district" in \
            capsys.readouterr().out
    finally:
        app.stop()
    [msg] = _retained(broker.url, "loa/v1/hv/hb/policy")  # what a station connecting later gets
    assert parse_policy_doc(open_envelope(msg, load_trust_anchors(tmp_path / "trust.json"),
                                          scope=Scope("hv", "hb"))).version == 3

    # restart: the pushed v2 (evening only) is still in force, v3 was refused: the morning programme stays off
    app, _, rec = start_station(cfg, at=at, doc=schedule(_long_tone()))
    try:
        assert rec.wait_for(lambda r: r.of(C.StateChanged)), "the first turn after boot has been carried out"
        assert wait_until(lambda: app.parts.link.connected, 10)
        assert rec.of(C.Play) == [], "station.toml's morning window would have joined the programme at boot"
        assert _push(broker, tmp_path, policy_file(tmp_path, "v4.json", version=4,
                                                   windows=(("05:00", "07:00", -6.0),)),
                     "--watch", "20", scope="hv/hb/s1") == 0
        assert rec.wait_for(lambda r: r.of(C.Play)), "v4 allows the morning again: the programme joins"
        capsys.readouterr()
        # an older version on another scope's topic (nothing retained there, so the tool lets it through)
        old = policy_file(tmp_path, "old.json", version=2, windows=(("05:00", "07:00", -6.0),))
        assert _push(broker, tmp_path, old, "--watch", "20", scope="hv") == 1
        assert "stale: version 2 is not newer than the active version 4" in capsys.readouterr().out
    finally:
        app.stop()


def test_push_refuses_a_version_not_above_the_retained_one_and_show_prints_it(broker, tmp_path, capsys):
    write_key(tmp_path)
    assert _push(broker, tmp_path, policy_file(tmp_path, version=5)) == 0
    assert _push(broker, tmp_path, policy_file(tmp_path, version=5)) == 1
    assert "version 5 is not greater than version 5 retained on loa/v1/hv/hb/policy" in capsys.readouterr().err
    assert main(["policy", "show", "--scope", "hv/hb", "--broker", broker.url,
                 "--trust", str(tmp_path / "trust.json")]) == 0
    out = capsys.readouterr().out
    assert "loa/v1/hv/hb/policy: policy v5, signature verified" in out and "window 17:00-19:00" in out


def _retained(url: str, topic: str) -> list[bytes]:
    import threading

    got: list[bytes] = []
    arrived = threading.Event()
    with DistrictClient.from_url(url) as c:
        c.subscribe([topic], lambda m: (got.append(m.payload), arrived.set()))
        arrived.wait(2.0)
    return got
