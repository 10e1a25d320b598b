"""The player thread: plays, preempts within a block, stops with a fade, honours max_s/offset_s/gain/cap,
reports failures with reasons and recovers from sink errors. Real sources, real DSP, simulated sinks."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf

from firmware.audio import SinkError
from firmware.audio.dsp import db_to_lin
from firmware.audio.player import Player
from firmware.core.commands import Play
from firmware.core.events import PlaybackEnded, PlaybackFailed, PlaybackStarted
from firmware.core.sources import FileSpec, ToneSpec
from simulator.sinks import PacedSink, RecordingSink

RATE = 48000
BLOCK = 960


class Events:
    """The runtime's side: collects emitted events, lets a test wait for one."""

    def __init__(self):
        self.items: list = []
        self.probe = lambda: None  # called as each event arrives (in the player thread), e.g. to count blocks
        self.probed: dict = {}
        self._cond = threading.Condition()

    def __call__(self, event) -> None:
        with self._cond:
            self.items.append(event)
            self.probed[(type(event), event.play_id)] = self.probe()
            self._cond.notify_all()

    def wait(self, kind, play_id: str, timeout: float = 5.0):
        def found():
            return next((e for e in self.items if isinstance(e, kind) and e.play_id == play_id), None)

        with self._cond:
            assert self._cond.wait_for(found, timeout), f"no {kind.__name__} for {play_id}: {self.items}"
            return found()

    def of(self, play_id: str) -> list:
        return [type(e).__name__ for e in self.items if e.play_id == play_id]


@pytest.fixture
def events():
    return Events()


@pytest.fixture
def run_player(events):
    players = []

    def start(sink, **kw):
        kw.setdefault("backoff_s", (0.05, 0.4))
        p = Player(sink, emit=events, **kw)
        p.start()
        players.append(p)
        return p

    yield start
    for p in players:
        p.close()


def tone(
    play_id: str, seconds: float = 0.5, gain_db: float = 0.0, cap_db: float = 0.0, kind="test", **kw
) -> Play:
    return Play(play_id, "programme", f"ref-{play_id}", ToneSpec(kind, seconds), gain_db, cap_db, **kw)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x.astype(np.float64)))))


def test_an_item_plays_to_its_end_at_its_gain(run_player, events):
    sink = RecordingSink(RATE)
    player = run_player(sink)
    player.play(tone("p1", 1.0, gain_db=-6.0))
    ended = events.wait(PlaybackEnded, "p1")
    assert events.of("p1") == ["PlaybackStarted", "PlaybackEnded"]
    assert ended.completed and ended.played_s == pytest.approx(1.0, abs=1e-6)
    x = sink.samples()[4800:-4800] / 32767
    # the test tone is 0.5 peak (-6 dBFS): at -6 dB gain, RMS = 0.5 * 0.501 / sqrt(2)
    assert rms(x) == pytest.approx(0.5 * db_to_lin(-6) / np.sqrt(2), rel=0.01)
    assert player.alive and player.current is None


def test_the_cap_holds_whatever_the_gain(run_player, events):
    sink = RecordingSink(RATE)
    player = run_player(sink)
    player.play(tone("loud", 0.5, gain_db=+20.0, cap_db=-10.0, kind="attention"))
    events.wait(PlaybackEnded, "loud")
    assert np.max(np.abs(sink.samples().astype(np.int32))) <= db_to_lin(-10) * 32767


def test_an_alert_preempts_within_one_block_plus_the_sink_buffer(run_player, events):
    sink = PacedSink(RATE, latency_s=0.04)
    events.probe = lambda: len(sink.accepted)
    player = run_player(sink)
    player.play(tone("programme", 30.0))
    events.wait(PlaybackStarted, "programme")
    sink.wait_for(lambda: len(sink.accepted) >= 10)
    asked = time.monotonic()
    player.play(tone("alert", 0.2, kind="attention"))
    events.wait(PlaybackStarted, "alert")
    ended = events.wait(PlaybackEnded, "programme")
    assert not ended.completed
    first_alert = events.probed[(PlaybackEnded, "programme")]  # blocks accepted when the programme ended
    # The hand-over block: the programme's fade-out (half a block) ends in silence, so the cut does not
    # click, and the alert starts in the same block, from silence (it fades in).
    handover = sink.accepted[first_alert].block
    fade = BLOCK // 2
    assert abs(int(handover[fade - 1])) < 100
    assert abs(int(handover[fade])) < 300 and np.max(np.abs(handover[fade:].astype(int))) > 300
    # From play() to the alert's first sample sounding: the block being written, then the hand-over block
    # itself, and the sink's buffer; plus scheduling slack for a loaded CI machine.
    latency = sink.accepted[first_alert].t_play - asked
    assert latency <= BLOCK / RATE + sink.latency_s + 0.03


def test_stop_fades_out_and_reports_not_completed(run_player, events):
    sink = RecordingSink(RATE)
    player = run_player(sink)
    player.play(tone("p1", 60.0))
    events.wait(PlaybackStarted, "p1")
    player.stop("p1", fade_s=0.05)
    ended = events.wait(PlaybackEnded, "p1")
    assert not ended.completed and ended.played_s < 60
    tail = sink.samples()[-BLOCK:]
    assert abs(int(tail[-1])) < 100


def test_max_s_cuts_with_a_fade_at_the_limit(run_player, events):
    sink = RecordingSink(RATE)
    player = run_player(sink)
    player.play(tone("p1", 10.0, max_s=0.5))
    ended = events.wait(PlaybackEnded, "p1")
    assert ended.played_s == pytest.approx(0.5, abs=1 / RATE) and not ended.completed
    assert sink.frames == RATE // 2
    assert abs(int(sink.samples()[-1])) < 100


def test_offset_joins_a_programme_in_progress(run_player, events, tmp_path):
    path = tmp_path / "prog.wav"
    sf.write(path, np.full(3 * RATE, 0.25, dtype=np.float32), RATE)
    sink = RecordingSink(RATE)
    player = run_player(sink)
    player.play(Play("p1", "programme", "r", FileSpec(path=str(path)), 0.0, 0.0, offset_s=2.0))
    ended = events.wait(PlaybackEnded, "p1")
    assert ended.completed and ended.played_s == pytest.approx(1.0, abs=0.001)


def test_set_gain_ramps_without_a_jump(run_player, events, tmp_path):
    path = tmp_path / "dc.wav"
    sf.write(path, np.full(2 * RATE, 0.5, dtype=np.float32), RATE)  # a constant: the output is the envelope
    sink = RecordingSink(RATE)
    player = run_player(sink)
    player.play(Play("p1", "programme", "r", FileSpec(path=str(path)), 0.0, 0.0))
    events.wait(PlaybackStarted, "p1")
    player.set_gain("p1", -12.0, 0.0)
    events.wait(PlaybackEnded, "p1")
    x = sink.samples().astype(np.float64) / 32767
    assert x[-1] == pytest.approx(0.5 * db_to_lin(-12), rel=0.01)
    # Ramps of 10 ms (480 frames): the fade-in 0 -> 0.5 and the change 0.5 -> 0.125 move at most 0.5 / 480 per
    # sample (plus int16 truncation): no step anywhere.
    assert np.max(np.abs(np.diff(x))) <= 0.5 / 480 + 2 / 32767


def test_a_missing_file_fails_with_its_path_and_the_player_goes_on(run_player, events, tmp_path):
    sink = RecordingSink(RATE)
    player = run_player(sink)
    player.play(Play("bad", "programme", "r", FileSpec(path=str(tmp_path / "gone.mp3")), 0.0, 0.0))
    failed = events.wait(PlaybackFailed, "bad")
    assert "not found" in failed.reason and "gone.mp3" in failed.reason and failed.played_s == 0
    player.play(tone("good", 0.2))
    assert events.wait(PlaybackEnded, "good").completed
    assert events.of("bad") == ["PlaybackFailed"]


def test_a_truncated_mp3_fails_after_what_could_be_played(run_player, events, make_file, tmp_path):
    whole = make_file("mp3", seconds=4.0).read_bytes()
    path = tmp_path / "cut.mp3"
    path.write_bytes(whole[: len(whole) // 2])
    sink = RecordingSink(RATE)
    player = run_player(sink)
    player.play(Play("cut", "programme", "r", FileSpec(path=str(path)), 0.0, 0.0))
    failed = events.wait(PlaybackFailed, "cut")
    assert "truncated or corrupt" in failed.reason and 1.0 < failed.played_s < 3.0
    assert events.of("cut") == ["PlaybackStarted", "PlaybackFailed"]


def test_a_sink_failing_mid_programme_fails_the_item_then_recovers(run_player, events):
    sink = RecordingSink(RATE)
    player = run_player(sink)
    sink.wait_for(lambda: sink.opens == 1)
    sink.fail_after(10, "ALSA: I/O error (-5)")
    player.play(tone("p1", 5.0))
    failed = events.wait(PlaybackFailed, "p1")
    assert failed.reason == "audio device error: ALSA: I/O error (-5)"
    assert failed.played_s == pytest.approx(10 * BLOCK / RATE)
    assert sink.wait_for(lambda: sink.opens == 2), "the player did not reopen the sink"
    player.play(tone("p2", 0.2))
    assert events.wait(PlaybackEnded, "p2").completed
    assert player.alive


def test_a_device_that_disappears_and_comes_back(run_player, events):
    sink = RecordingSink(RATE)
    player = run_player(sink, backoff_s=(0.05, 0.2))
    player.play(tone("p1", 5.0))
    events.wait(PlaybackStarted, "p1")
    sink.unplug()
    assert "device unplugged" in events.wait(PlaybackFailed, "p1").reason
    # While it is gone: each play tries the device at once and fails with the reason, no waiting for it.
    player.play(tone("p2", 0.2))
    assert events.wait(PlaybackFailed, "p2").reason == "audio device unavailable: device unplugged"
    # Meanwhile the player keeps retrying with backoff.
    errors = sink.errors
    assert sink.wait_for(lambda: sink.errors >= errors + 2, timeout=3.0)
    sink.replug()
    assert sink.wait_for(lambda: sink.opens >= 2, timeout=3.0)
    player.play(tone("p3", 0.2))
    assert events.wait(PlaybackEnded, "p3").completed
    assert player.alive


class HangingSink(RecordingSink):
    """A device whose driver hangs in write() until released."""

    def __init__(self):
        super().__init__(RATE)
        self.release = threading.Event()

    def write(self, block):
        super().write(block)
        if len(self.accepted) == 3:
            self.release.wait(10)

    def close(self):
        self.release.set()
        super().close()


def test_alive_turns_false_when_the_thread_is_stuck_in_the_sink(run_player, events):
    sink = HangingSink()
    player = run_player(sink, stuck_blocks=5)
    player.play(tone("p1", 5.0))
    events.wait(PlaybackStarted, "p1")
    assert sink.wait_for(lambda: len(sink.accepted) == 3)
    deadline = time.monotonic() + 3
    while player.alive and time.monotonic() < deadline:
        sink.release.wait(0.02)  # polling a property: nothing to wait on but time
    assert not player.alive
    sink.release.set()


def test_close_ends_what_plays_and_stops_the_thread(events):
    sink = RecordingSink(RATE)
    player = Player(sink, emit=events)
    player.start()
    player.play(tone("p1", 60.0))
    events.wait(PlaybackStarted, "p1")
    player.close()
    assert not player.alive
    assert events.wait(PlaybackEnded, "p1").completed is False
    assert not sink.is_open


def test_a_new_play_replaces_one_that_has_not_started(run_player, events):
    sink = RecordingSink(RATE)
    player = run_player(sink)
    player.play(tone("a", 0.3))
    player.play(tone("b", 0.3))
    events.wait(PlaybackEnded, "b")
    # Either a started and was preempted, or it never started: never both a and b "completed".
    assert not events.wait(PlaybackEnded, "a").completed


def test_a_sink_error_from_open_at_start_is_retried(run_player, events):
    sink = RecordingSink(RATE)
    sink.unplug()
    player = run_player(sink)
    assert sink.wait_for(lambda: sink.errors >= 2, timeout=3.0)
    sink.replug()
    player.play(tone("p1", 0.1))
    assert events.wait(PlaybackEnded, "p1").completed


def test_sink_errors_are_sink_errors():
    sink = RecordingSink(RATE)
    with pytest.raises(SinkError):
        sink.write(np.zeros(10, np.int16))
