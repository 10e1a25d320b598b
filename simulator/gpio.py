"""The station's GPIO devices on gpiozero's own MockFactory: the same classes as on a Pi, with test verbs.

    gpio = SimulatedGpio(on_short=..., on_long=..., on_mains=...)
    player = Player(sink, amplifier=gpio.amplifier, ...)
    gpio.press(long=True)        # the technician holds the button
    gpio.mains(on_backup=True)   # mains fails
    gpio.amp_pin.states          # gpiozero PinState history, for tests and the self-test
    gpio.close()

Each instance has its own MockFactory (never the global `Device.pin_factory`), reset on close.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from gpiozero.pins.mock import MockFactory

from firmware.adapters.gpio import AmplifierRelay, MainsSense, StatusLed, TechButton

AMP_PIN, LED_PIN, BUTTON_PIN, MAINS_PIN = 17, 27, 22, 23


class SimulatedGpio:
    def __init__(
        self,
        *,
        on_short: Callable[[], None] = lambda: None,
        on_long: Callable[[], None] = lambda: None,
        on_mains: Callable[[bool], None] | None = None,
        warmup_s: float = 1.5,
        hang_s: float = 30.0,
        long_press_s: float = 2.0,
        active_high: bool = True,
    ):
        self.factory = MockFactory()
        self.long_press_s = long_press_s
        self._devices: list = []
        self.amplifier = self._add(
            AmplifierRelay(
                AMP_PIN, active_high=active_high, warmup_s=warmup_s, hang_s=hang_s, pin_factory=self.factory
            )
        )
        self.led = self._add(StatusLed(LED_PIN, pin_factory=self.factory))
        self.button = self._add(
            TechButton(
                BUTTON_PIN,
                on_short=on_short,
                on_long=on_long,
                long_press_s=long_press_s,
                pin_factory=self.factory,
                bounce_s=None,
            )
        )
        self.mains_sense = None
        if on_mains is not None:
            self.mains_sense = self._add(
                MainsSense(MAINS_PIN, on_change=on_mains, pin_factory=self.factory, bounce_s=None)
            )

    def _add(self, device):
        self._devices.append(device)
        return device

    @property
    def amp_pin(self):
        return self.factory.pin(AMP_PIN)

    @property
    def led_pin(self):
        return self.factory.pin(LED_PIN)

    def press(self, long: bool = False) -> None:
        """Press and release the technician button; a long press holds it past `long_press_s` (real time:
        gpiozero's hold timer runs on its own thread)."""
        pin = self.factory.pin(BUTTON_PIN)
        pin.drive_low()
        if long:
            threading.Event().wait(self.long_press_s + 0.1)
        pin.drive_high()

    def mains(self, on_backup: bool) -> None:
        if self.mains_sense is None:
            raise RuntimeError("this station has no mains-sense input (pass on_mains=...)")
        pin = self.factory.pin(MAINS_PIN)
        if on_backup:
            pin.drive_high()
        else:
            pin.drive_low()

    def close(self) -> None:
        for device in reversed(self._devices):
            device.close()
        self._devices.clear()
        self.factory.reset()
