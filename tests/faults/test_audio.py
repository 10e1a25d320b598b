"""The audio device disappears in the middle of a programme (a USB sound card unplugged, an ALSA error) and
comes back: the loss is reported, the station keeps running, and audio plays again once the device is back.

What "reported" means: each play that the lost device broke is a `failed` play-log entry whose reason names
the device (the daily report counts them as faults), and the station's state is `fault` (LED, telemetry)
until audio reaches the device again, so the district's live view shows it at once."""

from __future__ import annotations

from datetime import datetime

from firmware.core import commands as C
from firmware.core.events import ButtonPressed
from tests.scenarios.harness import TZ, config, schedule, start_station, write_key


def tone(pid, start, seconds):
    return {"id": pid, "title": pid, "start": start, "recurrence": {"days": "daily"},
            "source": {"type": "tone", "kind": "test", "duration_s": seconds}}


def test_audio_device_lost_mid_programme_is_reported_and_audio_returns_when_it_is_back(tmp_path):
    write_key(tmp_path)
    doc = schedule(tone("a", "06:00", 3.0), tone("b", "06:00", 1.0))
    app, sink, rec = start_station(config(tmp_path), doc=doc, at=datetime(2026, 12, 1, 5, 59, 59, tzinfo=TZ))
    try:
        assert sink.wait_for(lambda: len(sink.accepted) > 10, 20)  # a is audible
        sink.unplug()
        assert rec.wait_for(lambda r: {e.ref for e in r.reports()} >= {"a", "b"}, 20), rec.commands
        assert rec.wait_for(lambda r: any(s.state == "fault" and "audio device" in s.detail
                                          for s in r.of(C.StateChanged)), 5), rec.of(C.StateChanged)
        heard = len(sink.accepted)
        sink.replug()
        app.events.put(ButtonPressed(False))  # the technician's test tone: is there sound again?
        assert sink.wait_for(lambda: len(sink.accepted) > heard + 10, 20), "no audio after the device came back"
        assert app.parts.runtime.alive and app.parts.player.alive
        assert rec.wait_for(lambda r: r.of(C.StateChanged)[-1].state != "fault", 10)  # sound again: not a fault
    finally:
        app.stop()
    reports = {e.ref: e for e in rec.reports()}
    assert reports["a"].result in ("failed", "partial") and "audio device" in reports["a"].reason, reports["a"]
    assert reports["b"].result == "failed", reports["b"]  # due while the device was gone: failed, said why
    assert len([p for p in rec.of(C.Play) if p.ref == "a"]) == 1
