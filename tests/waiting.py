"""Waiting on state that nothing signals (a database row another thread writes, an LED blinking in gpiozero's
thread, a cache filled by a worker): poll the condition with a deadline, never a bare sleep."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    """True as soon as `predicate()` holds; False if it still does not after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(step)  # a polling interval under a deadline, not a wait "for" something
    return True
