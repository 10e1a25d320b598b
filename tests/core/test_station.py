"""The station's promises, checked on the real core driven through simulated time."""

from datetime import timedelta

import pytest

from firmware.core import commands as C
from firmware.core import events as E
from firmware.core.alerts import Alert
from firmware.core.sources import SpeechSpec, ToneSpec
from firmware.core.station import EXERCISE_INTRO, Station, StationSettings
from simulator.dayrun import DayRun
from tests.core.helpers import TZ, at, policy, prog, schedule

MORNING = policy(("05:30", "07:00", -6), ("17:00", "19:00", -12))


def station(pol=MORNING, *programmes, **settings):
    progs = programmes or (prog("tin-sang", "05:30", 900), prog("nhac", "05:50", 600, gain_db=-8),
                           prog("toi", "17:30", 1200, gain_db=-3))
    return Station(pol, schedule(*progs), TZ, StationSettings(**settings))


def boot(st, when, trusted=True, last_alive=None, keep=True):
    run = DayRun(st, when, keep_commands=keep)
    run.send(E.Booted(clock_trusted=trusted, last_alive=last_alive))
    return run


def played(run, kind="programme"):
    return [r for r in run.rows if r.kind == kind and r.end and r.end > r.start]


def alert(aid="a1", status="actual", msg_type="alert", severity="severe", refs=(), minutes=30, issued=None, **kw):
    issued = issued or at(2026, 12, 1, 5, 0)
    return Alert(aid, issued, issued + timedelta(minutes=minutes), status, msg_type, severity,
                 headline=kw.pop("headline", "Lũ quét"), text=kw.pop("text", "Sơ tán ngay."),
                 references=tuple(refs), **kw)


def test_three_programmes_play_in_order_at_the_right_gains():
    run = boot(station(), at(2026, 12, 1, 0, 0))
    run.run_until(at(2026, 12, 2, 0, 0))
    rows = [(r.programme, r.start.strftime("%H:%M"), r.end.strftime("%H:%M"), r.gain_db) for r in played(run)]
    assert rows == [("tin-sang", "05:30", "05:45", -6), ("nhac", "05:50", "06:00", -8), ("toi", "17:30", "17:50", -12)]
    assert [e.result for e in run.log] == ["played"] * 3


def test_amplifier_is_on_a_warm_up_before_the_first_sample_and_off_after_the_hang_time():
    run = boot(station(amp_warmup_s=1.5, amp_hang_s=30), at(2026, 12, 1, 0, 0))
    run.run_until(at(2026, 12, 1, 12, 0))
    on = [t for t, v in run.amp if v]
    off = [t for t, v in run.amp if not v]
    first_play = next(t for t, c in run.commands if isinstance(c, C.Play))
    assert (first_play - on[0]).total_seconds() == pytest.approx(1.5)
    assert (off[-1] - at(2026, 12, 1, 6, 0)).total_seconds() == pytest.approx(30)
    # between 05:45 and 05:50 the gap is longer than the hang time: the amp goes off and comes back
    assert len(run.amp) == 4


@pytest.mark.parametrize("minute", range(0, 15))
def test_reboot_at_every_minute_of_a_session_joins_at_the_offset(minute):
    when = at(2026, 12, 1, 5, 30) + timedelta(minutes=minute, seconds=30)
    run = boot(station(), when, last_alive=when - timedelta(minutes=3))
    plays = [c for _, c in run.commands if isinstance(c, C.Play)]
    assert plays[0].ref == "tin-sang"
    assert plays[0].offset_s == pytest.approx(minute * 60 + 30)
    run.run_until(at(2026, 12, 1, 7, 0))
    assert run.log[0].result == "partial" and "joined late by" in run.log[0].reason
    assert run.log[0].ref == "tin-sang"


def test_reboot_with_skip_policy_skips_and_reports_missed():
    pol = policy(("05:30", "07:00", -6), join_in_progress="skip")
    run = boot(station(pol, prog("tin-sang", "05:30", 900)), at(2026, 12, 1, 5, 38))
    assert not any(isinstance(c, C.Play) for _, c in run.commands)
    assert run.log[0].result == "missed" and "join_in_progress = skip" in run.log[0].reason


def test_programmes_missed_while_the_station_was_off_are_reported():
    run = boot(station(), at(2026, 12, 1, 17, 0), last_alive=at(2026, 12, 1, 5, 0))
    assert [(e.ref, e.result, e.reason) for e in run.log] == [
        ("tin-sang", "missed", "station was off"), ("nhac", "missed", "station was off")]


def test_clock_step_forward_reports_what_was_skipped_and_bursts_nothing():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.run_until(at(2026, 12, 1, 5, 35))
    n_plays = sum(isinstance(c, C.Play) for _, c in run.commands)
    run.step_clock(3600 * 12)  # 05:35 -> 17:35: the Pi's clock jumped
    plays = [c for _, c in run.commands if isinstance(c, C.Play)][n_plays:]
    assert [p.ref for p in plays] == ["toi"]  # only what is due now, joined at its offset
    assert plays[0].offset_s == pytest.approx(300)
    results = {(e.ref, e.result) for e in run.log}
    assert ("nhac", "missed") in results and ("tin-sang", "partial") in results
    tin = next(e for e in run.log if e.ref == "tin-sang")
    assert tin.played_s == pytest.approx(300) and "clock stepped forward 43200 s" in tin.reason
    assert any("clock stepped forward" in e.reason for e in run.log if e.ref == "nhac")


def test_clock_step_back_never_plays_anything_twice():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.run_until(at(2026, 12, 1, 6, 5))
    run.step_clock(-3600)  # 06:05 -> 05:05: the same morning comes round again
    run.run_until(at(2026, 12, 1, 20, 0))
    starts = [c.ref for _, c in run.commands if isinstance(c, C.Play)]
    assert starts == ["tin-sang", "nhac", "toi"]


def test_a_programme_playing_across_a_backward_step_plays_once_and_never_more_than_planned():
    # found by hypothesis: playing at 02:35, the clock steps back an hour; an hour later the same minutes come
    # round again: the programme carries on across the step (issue 13) and never restarts when they do
    pol = policy(("00:00", "02:36", -20, ["mon"]))
    run = boot(station(pol, prog("p0", "02:34", 63, days=["mon"])), at(2026, 11, 30, 0, 0))
    run.run_until(at(2026, 11, 30, 2, 35))
    run.step_clock(-3600)
    run.run_until(at(2026, 11, 30, 3, 0))
    played = sum(e.played_s for e in run.log if e.ref == "p0")
    assert played == pytest.approx(63), [(e.result, e.played_s, e.reason) for e in run.log]
    plays = [c for _, c in run.commands if isinstance(c, C.Play) and c.ref == "p0"]
    assert [round(p.offset_s) for p in plays] == [0]


def test_small_backward_correction_does_not_interrupt_the_programme():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.run_until(at(2026, 12, 1, 5, 40))
    run.step_clock(-2)
    assert not any(isinstance(c, C.Stop) for _, c in run.commands)
    run.run_until(at(2026, 12, 1, 6, 30))
    assert [e.result for e in run.log[:2]] == ["played", "played"]


def test_untrusted_clock_holds_programmes_until_ntp_then_joins():
    run = boot(station(), at(2026, 12, 1, 5, 0), trusted=False)
    run.run_until(at(2026, 12, 1, 5, 40))
    assert played(run) == [] and run.station.status().state == "held"
    run.send(E.ClockTrustChanged(True))
    plays = [c for _, c in run.commands if isinstance(c, C.Play)]
    assert plays and plays[0].ref == "tin-sang" and plays[0].offset_s == pytest.approx(600)


def test_received_acks_tell_a_new_alert_from_a_cancel():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.send(E.AlertReceived(alert("a1", issued=at(2026, 12, 1, 5, 0))))
    run.send(E.AlertReceived(alert("c1", msg_type="cancel", refs=("a1",), issued=at(2026, 12, 1, 5, 0))))
    received = [c for _, c in run.commands if isinstance(c, C.Ack) and c.state == "received"]
    assert [(a.ref, a.new_alert) for a in received] == [("a1", True), ("c1", False)]


def test_with_hold_off_an_untrusted_clock_plays_on_schedule_and_says_it_is_not_held():
    lenient = MORNING.model_copy(update={"hold_on_untrusted_clock": False})
    run = boot(station(lenient), at(2026, 12, 1, 5, 0), trusted=False)
    run.run_until(at(2026, 12, 1, 5, 40))
    plays = [c for _, c in run.commands if isinstance(c, C.Play)]
    assert plays and plays[0].ref == "tin-sang" and plays[0].offset_s == 0  # on time, not joined late
    assert run.station.status().state != "held"


def test_alert_preempts_plays_at_alert_gain_outside_windows_and_the_programme_resumes():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.run_until(at(2026, 12, 1, 5, 35))
    a = alert(issued=at(2026, 12, 1, 5, 35), repeat=1)
    run.send(E.AlertReceived(a))
    play = [c for _, c in run.commands if isinstance(c, C.Play)][-1]
    assert play.kind == "alert" and play.gain_db == 0.0 and play.cap_db == 0.0
    run.run_until(at(2026, 12, 1, 5, 50))
    resumed = [c for _, c in run.commands if isinstance(c, C.Play) and c.ref == "tin-sang"]
    assert len(resumed) == 2 and resumed[1].offset_s > 300
    assert [a.state for a in run.acks] == ["received", "playing", "done"]
    tin = [e for e in run.log if e.ref == "tin-sang"]
    assert tin[0].result == "partial" and "interrupted by alert a1" in tin[0].reason


def test_alert_plays_at_night_outside_every_window():
    run = boot(station(), at(2026, 12, 1, 2, 0))
    run.send(E.AlertReceived(alert(issued=at(2026, 12, 1, 2, 0))))
    assert any(isinstance(c, C.Play) and c.kind == "alert" for _, c in run.commands)


def test_alert_source_is_tone_then_message_repeated_and_exercise_is_announced():
    run = boot(station(), at(2026, 12, 1, 2, 0))
    run.send(E.AlertReceived(alert(status="exercise", repeat=3, issued=at(2026, 12, 1, 2, 0))))
    src = [c for _, c in run.commands if isinstance(c, C.Play)][-1].source
    assert src.repeat == 3
    assert src.parts[0] == ToneSpec("attention", 4.0)
    assert src.parts[1] == SpeechSpec(EXERCISE_INTRO)
    assert "Lũ quét" in src.parts[2].text


def test_test_alert_is_acknowledged_and_plays_nothing():
    run = boot(station(), at(2026, 12, 1, 2, 0))
    run.send(E.AlertReceived(alert(status="test", issued=at(2026, 12, 1, 2, 0))))
    assert not any(isinstance(c, C.Play) for _, c in run.commands)
    assert [(a.state, a.reason) for a in run.acks] == [("received", ""), ("done", "test alert: verified, nothing played")]


def test_cancel_stops_at_once_plays_a_notice_and_the_programme_resumes():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.run_until(at(2026, 12, 1, 5, 35))
    run.send(E.AlertReceived(alert(issued=at(2026, 12, 1, 5, 35), repeat=10)))
    run.run_until(at(2026, 12, 1, 5, 36))
    n = len(run.commands)
    run.send(E.AlertReceived(alert("c1", msg_type="cancel", refs=["a1"], issued=at(2026, 12, 1, 5, 36))))
    cmds = [c for _, c in run.commands[n:]]
    # audio first: the alert stops and the notice starts before any ack or log write
    assert isinstance(cmds[0], C.Stop) and cmds[0].reason == "cancelled by c1"
    assert isinstance(cmds[1], C.Play)
    notice = cmds[1]
    assert notice.kind == "notice"
    assert ("a1", "done", "cancelled by c1") in [(a.ref, a.state, a.reason) for a in run.acks]
    run.run_until(at(2026, 12, 1, 5, 40))
    assert [c.ref for _, c in run.commands if isinstance(c, C.Play)][-1] == "tin-sang"


def test_audio_commands_come_before_acks_and_log_writes():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.run_until(at(2026, 12, 1, 5, 35))
    n = len(run.commands)
    run.send(E.AlertReceived(alert(issued=at(2026, 12, 1, 5, 35))))
    kinds = [type(c).__name__ for _, c in run.commands[n:]]
    assert kinds[0] == "Play" and kinds.index("Ack") > 0 and kinds.index("Report") > kinds.index("Ack")


def test_update_replaces_the_running_alert():
    run = boot(station(), at(2026, 12, 1, 2, 0))
    run.send(E.AlertReceived(alert(issued=at(2026, 12, 1, 2, 0), repeat=10)))
    run.send(E.AlertReceived(alert("a2", msg_type="update", refs=["a1"], headline="Lũ lên nhanh",
                                   issued=at(2026, 12, 1, 2, 0), repeat=10)))
    plays = [c for _, c in run.commands if isinstance(c, C.Play)]
    assert [p.ref for p in plays] == ["a1", "a2"]
    assert ("a1", "done", "updated by a2") in [(a.ref, a.state, a.reason) for a in run.acks]


def test_expiry_stops_the_alert():
    run = boot(station(), at(2026, 12, 1, 2, 0))
    run.send(E.AlertReceived(alert(issued=at(2026, 12, 1, 2, 0), minutes=1, repeat=10)))
    run.run_until(at(2026, 12, 1, 2, 5))
    assert ("a1", "done", "expired") in [(a.ref, a.state, a.reason) for a in run.acks]
    assert run.station.status().state == "idle"


def test_more_severe_alert_wins_and_equal_severity_queues():
    run = boot(station(), at(2026, 12, 1, 2, 0))
    t = at(2026, 12, 1, 2, 0)
    run.send(E.AlertReceived(alert("moderate", severity="moderate", issued=t, repeat=1)))
    run.send(E.AlertReceived(alert("extreme", severity="extreme", issued=t, repeat=1)))
    run.send(E.AlertReceived(alert("extreme-2", severity="extreme", issued=t, repeat=1)))
    run.run_until(at(2026, 12, 1, 3, 0))
    order = [c.ref for _, c in run.commands if isinstance(c, C.Play) and c.kind == "alert"]
    assert order == ["moderate", "extreme", "extreme-2", "moderate"]


def test_long_press_stops_the_programme_and_it_does_not_come_back():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.run_until(at(2026, 12, 1, 5, 35))
    run.send(E.ButtonPressed(long=True))
    run.run_until(at(2026, 12, 1, 5, 45))
    assert [e.reason for e in run.log if e.ref == "tin-sang"] == ["gain capped to -6.0 dB by window; stopped by technician button"]
    assert sum(1 for _, c in run.commands if isinstance(c, C.Play) and c.ref == "tin-sang") == 1


def test_long_press_never_stops_an_alert():
    run = boot(station(), at(2026, 12, 1, 2, 0))
    run.send(E.AlertReceived(alert(issued=at(2026, 12, 1, 2, 0))))
    run.send(E.ButtonPressed(long=True))
    assert not any(isinstance(c, C.Stop) for _, c in run.commands)


def test_short_press_plays_the_test_tone_quietly():
    run = boot(station(), at(2026, 12, 1, 12, 0))
    run.send(E.ButtonPressed(long=False))
    tone = [c for _, c in run.commands if isinstance(c, C.Play)][-1]
    assert tone.kind == "test-tone" and tone.gain_db <= -12


def test_mute_stops_scheduled_audio_but_not_alerts_and_gain_offset_stays_under_the_cap():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.run_until(at(2026, 12, 1, 5, 35))
    run.send(E.GainOffsetChanged(+6))
    sg = [c for _, c in run.commands if isinstance(c, C.SetGain)][-1]
    assert sg.gain_db == -6  # programme 0 dB + 6 is still capped at the window's -6
    n = len(run.commands)
    run.send(E.MuteChanged(True))
    assert [c.reason for _, c in run.commands[n:] if isinstance(c, C.Stop)] == ["muted by the district"]
    run.send(E.AlertReceived(alert(issued=at(2026, 12, 1, 5, 35))))
    assert [c for _, c in run.commands if isinstance(c, C.Play)][-1].kind == "alert"


def test_failed_playback_is_logged_and_the_next_programme_still_plays():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.fail_plays.add("tin-sang")
    run.run_until(at(2026, 12, 1, 7, 0))
    assert [(e.ref, e.result) for e in run.log] == [("tin-sang", "failed"), ("nhac", "played")]
    assert "simulated failure" in run.log[0].reason


def test_new_schedule_replaces_the_plan_and_stops_what_is_no_longer_in_it():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.run_until(at(2026, 12, 1, 5, 35))
    run.send(E.ScheduleReceived(schedule(prog("moi", "05:40", 60), version=2)))
    assert any(isinstance(c, C.Stop) and c.reason == "schedule replaced" for _, c in run.commands)
    run.run_until(at(2026, 12, 1, 6, 0))
    assert [c.ref for _, c in run.commands if isinstance(c, C.Play)] == ["tin-sang", "moi"]


def test_play_log_ids_are_unique():
    run = boot(station(id_prefix="hb-01.boot7"), at(2026, 12, 1, 0, 0))
    run.run_until(at(2026, 12, 8, 0, 0))
    ids = [e.entry_id for e in run.log]
    assert len(ids) == len(set(ids)) == 21 and ids[0].startswith("hb-01.boot7.")


def test_missing_content_is_missed_with_the_reason_and_a_notice_is_spoken():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.run_until(at(2026, 12, 1, 5, 30))
    play = [c for _, c in run.commands if isinstance(c, C.Play)][-1]
    run.send(E.PlaybackFailed(play.play_id, 0.0, "content not available: http://x/a.mp3 is not in the content cache"))
    entry = run.log[-1]
    assert (entry.ref, entry.result) == ("tin-sang", "missed")
    assert "content: content not available" in entry.reason
    notice = [c for _, c in run.commands if isinstance(c, C.Play)][-1]
    assert notice.kind == "notice" and "tin-sang" in notice.source.text
    run.run_until(at(2026, 12, 1, 5, 55))
    assert sum(1 for _, c in run.commands if isinstance(c, C.Play) and c.ref == "tin-sang") == 1  # not retried


def test_missing_content_with_silence_fallback_plays_nothing_instead():
    run = boot(station(content_fallback="silence"), at(2026, 12, 1, 5, 0))
    run.run_until(at(2026, 12, 1, 5, 30))
    play = [c for _, c in run.commands if isinstance(c, C.Play)][-1]
    n = len(run.commands)
    run.send(E.PlaybackFailed(play.play_id, 0.0, "content not available: not in the cache"))
    assert not any(isinstance(c, C.Play) for _, c in run.commands[n:])
    assert run.log[-1].result == "missed"


def test_an_item_interrupted_by_a_crash_is_logged_at_the_next_boot_and_joined_if_its_slot_is_open():
    first = boot(station(id_prefix="s.boot1"), at(2026, 12, 1, 5, 0))
    first.run_until(at(2026, 12, 1, 5, 33))
    rec = first.station.playing_record()
    assert rec["ref"] == "tin-sang" and rec["kind"] == "programme"
    # the station dies at 05:33; the last persisted "alive" was 05:32:30; it is back at 05:36
    run = DayRun(station(id_prefix="s.boot2"), at(2026, 12, 1, 5, 36), keep_commands=True)
    run.send(E.Booted(clock_trusted=True, last_alive=at(2026, 12, 1, 5, 32, 30), interrupted=rec))
    entry = run.log[0]
    assert (entry.ref, entry.result, entry.played_s) == ("tin-sang", "partial", 150.0)
    assert "stopped unexpectedly" in entry.reason
    assert [c.ref for _, c in run.commands if isinstance(c, C.Play)] == ["tin-sang"]  # joined again


def test_an_alert_interrupted_by_a_crash_plays_again_if_still_in_force():
    first = boot(station(), at(2026, 12, 1, 2, 0))
    first.send(E.AlertReceived(alert(issued=at(2026, 12, 1, 2, 0), minutes=30)))
    rec = first.station.playing_record()
    assert rec["kind"] == "alert" and rec["alert"]["id"] == "a1"
    run = DayRun(station(), at(2026, 12, 1, 2, 5), keep_commands=True)
    run.send(E.Booted(clock_trusted=True, last_alive=at(2026, 12, 1, 2, 4), interrupted=rec))
    assert run.log[0].kind == "alert" and run.log[0].result == "partial"
    assert [c.ref for _, c in run.commands if isinstance(c, C.Play)] == ["a1"]
    late = DayRun(station(), at(2026, 12, 1, 3, 0), keep_commands=True)  # after its expiry: only logged
    late.send(E.Booted(clock_trusted=True, last_alive=at(2026, 12, 1, 2, 4), interrupted=rec))
    assert not any(isinstance(c, C.Play) for _, c in late.commands) and late.log[0].result == "partial"


def test_an_unreadable_record_of_the_interrupted_item_does_not_stop_the_boot():
    run = DayRun(station(), at(2026, 12, 1, 5, 40), keep_commands=True)
    run.send(E.Booted(clock_trusted=True, interrupted={"kind": "programme", "issued_at": "garbage"}))
    assert any(isinstance(c, C.StateChanged) and "unreadable" in c.detail for _, c in run.commands)
    assert [c.ref for _, c in run.commands if isinstance(c, C.Play)] == ["tin-sang"]


def test_a_device_failure_shows_as_fault_until_audio_plays_again():
    run = boot(station(), at(2026, 12, 1, 5, 0))
    run.run_until(at(2026, 12, 1, 5, 30))
    play = [c for _, c in run.commands if isinstance(c, C.Play)][-1]
    run.send(E.PlaybackFailed(play.play_id, 3.0, "audio device error: [Errno -9996] Invalid output device"))
    assert run.station.status().state == "fault"
    assert any(isinstance(c, C.Led) and c.pattern == "fault" for _, c in run.commands)
    run.run_until(at(2026, 12, 1, 5, 51))  # the next programme plays: the device is back
    assert run.station.status().state == "programme"


def test_missed_entries_have_ids_that_do_not_depend_on_the_boot():
    a = boot(station(id_prefix="s.boot1", station_id="s"), at(2026, 12, 1, 17, 0), last_alive=at(2026, 12, 1, 5, 0))
    b = boot(station(id_prefix="s.boot2", station_id="s"), at(2026, 12, 1, 17, 1), last_alive=at(2026, 12, 1, 5, 0))
    ids_a = [e.entry_id for e in a.log if e.result == "missed"]
    assert ids_a == ["s.tin-sang@2026-12-01.missed", "s.nhac@2026-12-01.missed"]
    assert ids_a == [e.entry_id for e in b.log if e.result == "missed"]  # the district deduplicates them
