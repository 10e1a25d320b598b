"""GPIO on gpiozero's own MockFactory (injected into each device, reset after each test): the amplifier is on
for the warm-up before the first sample and off only after the hang time; LED rhythms; the button; mains."""

from __future__ import annotations

import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.adapters.gpio import LED_PATTERNS, AmplifierRelay, MainsSense, StatusLed, TechButton
from firmware.audio.player import Player
from firmware.core.commands import Play
from firmware.core.events import PlaybackEnded, PlaybackStarted
from firmware.core.sources import ToneSpec
from simulator.gpio import SimulatedGpio
from simulator.sinks import RecordingSink
from tests import waiting

RATE = 48000
AMP_PIN, LED_PIN, BUTTON_PIN, MAINS_PIN = 17, 27, 22, 23


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


@pytest.fixture
def closing():
    """Devices to close after the test, in reverse order (gpiozero reservations are per factory)."""
    devices = []
    yield devices.append
    for d in reversed(devices):
        d.close()


class Events:
    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def __call__(self, e):
        with self.cond:
            self.items.append(e)
            self.cond.notify_all()

    def wait(self, kind, play_id, timeout=5.0):
        with self.cond:
            assert self.cond.wait_for(
                lambda: any(isinstance(e, kind) and e.play_id == play_id for e in self.items), timeout
            ), self.items


def pin_times(pin, t0: float) -> list[tuple[float, bool]]:
    """MockPin keeps (seconds since the previous change, state); make them absolute from clear_states()."""
    out, t = [], t0
    for s in pin.states:
        t += s.timestamp
        out.append((t, s.state))
    return out


def tone(play_id, seconds=0.2):
    return Play(play_id, "programme", "r", ToneSpec("test", seconds), 0.0, 0.0)


def wait_until(predicate, timeout=3.0) -> bool:
    """For state that has no event to wait on (an LED blinking in gpiozero's thread)."""
    return waiting.wait_until(predicate, timeout, step=0.01)


def test_amplifier_is_warm_before_the_first_sample_and_off_only_after_the_hang(factory, closing):
    amp = AmplifierRelay(AMP_PIN, warmup_s=0.3, hang_s=0.4, pin_factory=factory)
    closing(amp)
    pin = factory.pin(AMP_PIN)
    t0 = time.monotonic()
    pin.clear_states()
    sink, events = RecordingSink(RATE), Events()
    player = Player(sink, amplifier=amp, emit=events)
    player.start()
    try:
        player.play(tone("p1"))
        events.wait(PlaybackEnded, "p1")
        assert amp.wait_state(False, 3.0)
    finally:
        player.close()
    history = pin_times(pin, t0)
    assert [s for _, s in history] == [False, True, False]  # one switch-on, one switch-off: no chatter
    (t_on, _), (t_off, _) = history[1], history[2]
    first, last = sink.accepted[0].t_write, sink.accepted[-1].t_write
    assert first - t_on >= 0.3 - 0.002  # MockPin and the sink read the same monotonic clock
    assert t_off - last >= 0.4 - 0.002
    assert t_off - last < 0.4 + 0.3


def test_back_to_back_items_keep_the_amplifier_on(factory, closing):
    amp = AmplifierRelay(AMP_PIN, warmup_s=0.05, hang_s=0.5, pin_factory=factory)
    closing(amp)
    pin = factory.pin(AMP_PIN)
    pin.clear_states()
    sink, events = RecordingSink(RATE), Events()
    player = Player(sink, amplifier=amp, emit=events)
    player.start()
    try:
        for i in range(3):
            player.play(tone(f"p{i}", 0.1))
            events.wait(PlaybackEnded, f"p{i}")
        assert len(pin.states) == 2 and amp.is_on
        assert amp.wait_state(False, 3.0)
    finally:
        player.close()
    assert [s.state for s in pin.states] == [False, True, False]


def test_a_stop_during_the_warm_up_is_handled_at_once(factory, closing):
    amp = AmplifierRelay(AMP_PIN, warmup_s=5.0, hang_s=0.1, pin_factory=factory)
    closing(amp)
    sink, events = RecordingSink(RATE), Events()
    player = Player(sink, amplifier=amp, emit=events)
    player.start()
    try:
        player.play(tone("p1"))
        assert amp.wait_state(True, 2.0)
        player.stop("p1")
        events.wait(PlaybackEnded, "p1", timeout=2.5)  # the warm-up would hold it 5 s
        assert sink.frames == 0 and not any(isinstance(e, PlaybackStarted) for e in events.items)
    finally:
        player.close()


def test_ready_in_counts_down_the_warm_up_and_on_off_are_idempotent(factory, closing):
    amp = AmplifierRelay(AMP_PIN, warmup_s=1.5, pin_factory=factory)
    closing(amp)
    pin = factory.pin(AMP_PIN)
    assert not amp.is_on and not pin.state
    left = amp.ready_in()
    assert 1.4 < left <= 1.5 and amp.is_on and pin.state
    amp.on()
    assert amp.ready_in() <= left
    amp.off()
    amp.off()
    assert [s.state for s in pin.states] == [False, True, False]
    assert amp.off_due_in() is None


def test_an_active_low_relay_is_on_when_the_pin_is_low(factory, closing):
    amp = AmplifierRelay(AMP_PIN, active_high=False, warmup_s=0, pin_factory=factory)
    closing(amp)
    pin = factory.pin(AMP_PIN)
    assert pin.state  # off = high
    assert amp.ready_in() == 0
    assert not pin.state


def test_release_switches_off_after_the_hang_unless_used_again(factory, closing):
    amp = AmplifierRelay(AMP_PIN, warmup_s=0, hang_s=0.3, pin_factory=factory)
    closing(amp)
    amp.on()
    amp.release()
    due = amp.off_due_in()
    assert due is not None and 0.2 < due <= 0.3
    amp.ready_in()  # used again: the hang is cancelled
    assert amp.off_due_in() is None
    assert not amp.wait_state(False, 0.5)
    amp.release()
    assert amp.wait_state(False, 1.0)


@pytest.mark.parametrize("bad", [-1.0, 31.0])
def test_an_out_of_range_warm_up_is_refused(factory, bad):
    with pytest.raises(ValueError, match="warmup_s"):
        AmplifierRelay(AMP_PIN, warmup_s=bad, pin_factory=factory)


def test_led_patterns_blink_with_their_own_rhythm(factory, closing):
    led = StatusLed(LED_PIN, pin_factory=factory)
    closing(led)
    pin = factory.pin(LED_PIN)
    led.show("online")
    assert pin.state
    pin.clear_states()
    led.show("alert")
    assert wait_until(lambda: len(pin.states) >= 8)
    led.off()
    on_s, off_s = LED_PATTERNS["alert"]
    durations = [s.timestamp for s in pin.states[2:8]]  # skip the first (from the steady "online")
    states = [s.state for s in pin.states[1:7]]  # the state each duration ended
    for held, was in zip(durations, states, strict=True):
        assert held == pytest.approx(on_s if was else off_s, abs=0.04)


def test_showing_the_same_pattern_again_does_not_restart_it(factory, closing):
    led = StatusLed(LED_PIN, pin_factory=factory)
    closing(led)
    pin = factory.pin(LED_PIN)
    led.show("online")
    led.show("online")
    assert [s.state for s in pin.states] == [False, True]


def test_every_pattern_is_distinct_and_unknown_ones_are_named(factory, closing):
    timings = list(LED_PATTERNS.values())
    assert len(set(timings)) == len(timings) == 6
    led = StatusLed(LED_PIN, pin_factory=factory)
    closing(led)
    with pytest.raises(ValueError, match='unknown LED pattern "disco"'):
        led.show("disco")


def test_button_short_and_long_presses(factory, closing):
    short, long_ = threading.Event(), threading.Event()
    calls = []
    button = TechButton(
        BUTTON_PIN,
        on_short=lambda: (calls.append("short"), short.set()),
        on_long=lambda: (calls.append("long"), long_.set()),
        long_press_s=0.2,
        pin_factory=factory,
        bounce_s=None,
    )
    closing(button)
    pin = factory.pin(BUTTON_PIN)
    pin.drive_low()
    pin.drive_high()
    assert short.wait(1.0)
    pin.drive_low()
    assert long_.wait(2.0)
    pin.drive_high()
    assert calls == ["short", "long"]  # the release after a long press is not also a short press


def test_a_raising_button_callback_does_not_break_the_button(factory, closing, caplog):
    pressed = threading.Event()
    count = []

    def boom():
        count.append(1)
        pressed.set()
        raise RuntimeError("runtime queue full")

    button = TechButton(BUTTON_PIN, on_short=boom, on_long=lambda: None, pin_factory=factory, bounce_s=None)
    closing(button)
    pin = factory.pin(BUTTON_PIN)
    for _ in range(2):
        pin.drive_low()
        pin.drive_high()
    assert pressed.wait(1.0) and len(count) == 2
    assert "button short press callback raised" in caplog.text


def test_mains_sense_reports_backup_power(factory, closing):
    seen = []
    changed = threading.Condition()

    def on_change(on_backup):
        with changed:
            seen.append(on_backup)
            changed.notify_all()

    mains = MainsSense(MAINS_PIN, on_change=on_change, pin_factory=factory, bounce_s=None)
    closing(mains)
    pin = factory.pin(MAINS_PIN)
    assert not mains.on_backup
    pin.drive_high()
    pin.drive_low()
    with changed:
        assert changed.wait_for(lambda: len(seen) == 2, 1.0)
    assert seen == [True, False] and not mains.on_backup


def test_the_simulated_station_gpio_has_the_real_devices_and_test_verbs():
    pressed = []
    changed = threading.Condition()

    def note(what):
        with changed:
            pressed.append(what)
            changed.notify_all()

    gpio = SimulatedGpio(
        on_short=lambda: note("short"),
        on_long=lambda: note("long"),
        on_mains=note,
        long_press_s=0.1,
        warmup_s=0,
    )
    try:
        gpio.press()
        gpio.press(long=True)
        gpio.mains(on_backup=True)
        with changed:
            assert changed.wait_for(lambda: len(pressed) == 3, 2.0)
        assert pressed == ["short", "long", True]
        assert gpio.amplifier.ready_in() == 0 and gpio.amp_pin.state
    finally:
        gpio.close()
