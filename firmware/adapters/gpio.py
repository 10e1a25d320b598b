"""GPIO devices of a station, on gpiozero with the pin factory injected (real pins on a Pi, MockFactory in the
simulator and tests; never the global `Device.pin_factory`).

- `AmplifierRelay`: the `firmware.ports.Amplifier`; on before audio with a warm-up, off after an idle hang.
- `StatusLed`: one LED, patterns booting / online / offline / playing / alert / fault.
- `TechButton`: short press (released before `long_press_s`) and long press (held that long).
- `MainsSense`: optional input that says the station runs on its DC backup.

gpiozero calls the button and input callbacks from its own threads: ours only call the given callables, which
MUST only enqueue (the runtime owns all state), and any exception they raise is logged, never propagated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gpiozero import LED, Button, DigitalInputDevice, OutputDevice

log = logging.getLogger(__name__)


class AmplifierRelay:
    """The amplifier's power relay.

    `ready_in()` switches the relay on if it is off and returns the seconds left of the warm-up (the player
    waits that long before its first sample, so the speakers never get the turn-on thump with programme audio
    on top). `release()` says the audio stopped: the relay switches off after `hang_s` unless the amplifier is
    used again meanwhile (back-to-back programmes do not click the relay). `off()` is immediate.
    """

    def __init__(
        self,
        pin,
        *,
        active_high: bool = True,
        warmup_s: float = 1.5,
        hang_s: float = 30.0,
        pin_factory=None,
        name: str = "loa-amp-hang",
    ):
        if not (0 <= warmup_s <= 30):
            raise ValueError(f"amplifier warmup_s {warmup_s} is out of range [0, 30]")
        if not (0 <= hang_s <= 3600):
            raise ValueError(f"amplifier hang_s {hang_s} is out of range [0, 3600]")
        self.warmup_s = warmup_s
        self.hang_s = hang_s
        self._dev = OutputDevice(pin, active_high=active_high, initial_value=False, pin_factory=pin_factory)
        self._cond = threading.Condition()
        self._on_at: float | None = None
        self._idle_since: float | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._hang_loop, name=name, daemon=True)
        self._thread.start()

    @property
    def is_on(self) -> bool:
        return self._on_at is not None

    def on(self) -> None:
        with self._cond:
            self._idle_since = None
            self._switch_on()
            self._cond.notify_all()

    def ready_in(self) -> float:
        with self._cond:
            self._idle_since = None
            self._switch_on()
            self._cond.notify_all()
            return max(0.0, self._on_at + self.warmup_s - time.monotonic())

    def release(self) -> None:
        """Audio stopped: switch off after the hang time unless used again. Idempotent (the hang is not
        restarted by a second call)."""
        with self._cond:
            if self._on_at is not None and self._idle_since is None:
                self._idle_since = time.monotonic()
                self._cond.notify_all()

    def off_due_in(self) -> float | None:
        """Seconds until the hang time switches the relay off; None when no switch-off is pending."""
        with self._cond:
            if self._idle_since is None:
                return None
            return max(0.0, self._idle_since + self.hang_s - time.monotonic())

    def off(self) -> None:
        with self._cond:
            self._idle_since = None
            self._switch_off()
            self._cond.notify_all()

    def wait_state(self, on: bool, timeout_s: float) -> bool:
        """Block until the relay is on (or off); False on timeout. For the self-test and for tests."""
        with self._cond:
            return self._cond.wait_for(lambda: self.is_on == on, timeout_s)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(5.0)
        with self._cond:
            self._switch_off()
        self._dev.close()

    def _switch_on(self) -> None:
        if self._on_at is None:
            self._dev.on()
            self._on_at = time.monotonic()
            self._cond.notify_all()
            log.info("amplifier on (warm-up %.1f s)", self.warmup_s)

    def _switch_off(self) -> None:
        if self._on_at is not None:
            self._dev.off()
            self._on_at = None
            self._cond.notify_all()
            log.info("amplifier off")

    def _hang_loop(self) -> None:
        with self._cond:
            while not self._closed:
                if self._idle_since is None:
                    self._cond.wait()
                    continue
                left = self._idle_since + self.hang_s - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                log.info("amplifier idle for %.0f s", self.hang_s)
                self._idle_since = None
                self._switch_off()


# (on_s, off_s) for gpiozero's blink; None = steady on. Distinct rhythms, readable from across a yard.
LED_PATTERNS: dict[str, tuple[float, float] | None] = {
    "booting": (0.3, 0.3),  # even, medium blink while the daemon starts
    "online": None,  # steady: all is well
    "offline": (0.1, 1.9),  # a short blip every 2 s: running, no link to the district
    "playing": (1.5, 0.2),  # mostly on, brief dips
    "alert": (0.08, 0.08),  # rapid flicker: an emergency alert is playing
    "fault": (0.6, 0.6),  # slow and even: needs a technician
}


class StatusLed:
    def __init__(self, pin, *, pin_factory=None, active_high: bool = True):
        self._led = LED(pin, active_high=active_high, initial_value=False, pin_factory=pin_factory)
        self.pattern: str | None = None

    def show(self, pattern: str) -> None:
        if pattern not in LED_PATTERNS:
            raise ValueError(f'unknown LED pattern "{pattern}" (known: {", ".join(LED_PATTERNS)})')
        if pattern == self.pattern:
            return  # restarting a blink would make the rhythm stutter
        self.pattern = pattern
        timing = LED_PATTERNS[pattern]
        if timing is None:
            self._led.on()
        else:
            self._led.blink(on_time=timing[0], off_time=timing[1], background=True)

    def off(self) -> None:
        self.pattern = None
        self._led.off()

    def close(self) -> None:
        self._led.close()


def _guarded(fn: Callable, what: str) -> Callable:
    def call(*args):
        try:
            fn(*args)
        except Exception:
            log.exception("%s callback raised", what)

    return call


class TechButton:
    """The technician's button (to ground, internal pull-up): `on_short()` when released before
    `long_press_s`, `on_long()` once it has been held that long (not again on release)."""

    def __init__(
        self,
        pin,
        *,
        on_short: Callable[[], None],
        on_long: Callable[[], None],
        long_press_s: float = 2.0,
        pin_factory=None,
        bounce_s: float | None = 0.02,
    ):
        self._on_short = _guarded(on_short, "button short press")
        self._on_long = _guarded(on_long, "button long press")
        self._held = False
        self._button = Button(
            pin, pull_up=True, bounce_time=bounce_s, hold_time=long_press_s, pin_factory=pin_factory
        )
        self._button.when_held = self._held_cb
        self._button.when_released = self._released_cb

    def _held_cb(self) -> None:
        self._held = True
        self._on_long()

    def _released_cb(self) -> None:
        if not self._held:
            self._on_short()
        self._held = False

    def close(self) -> None:
        self._button.close()


class MainsSense:
    """A digital input that is active while the station runs on its DC backup (mains failed).

    `on_change(on_backup)` is called on every change; `on_backup` reads the current state.
    """

    def __init__(
        self,
        pin,
        *,
        on_change: Callable[[bool], None],
        backup_when_high: bool = True,
        pin_factory=None,
        bounce_s: float | None = 0.1,
    ):
        self._notify = _guarded(on_change, "mains sense")
        self._input = DigitalInputDevice(
            pin, pull_up=not backup_when_high, bounce_time=bounce_s, pin_factory=pin_factory
        )
        self._input.when_activated = lambda: self._notify(True)
        self._input.when_deactivated = lambda: self._notify(False)

    @property
    def on_backup(self) -> bool:
        return bool(self._input.is_active)

    def close(self) -> None:
        self._input.close()
