"""Shared fixtures: a real mosquitto per test on a free loopback port."""

from __future__ import annotations

import pytest

from simulator.broker import Mosquitto


@pytest.fixture
def broker(tmp_path):
    """A private mosquitto (plain TCP, anonymous) on 127.0.0.1:<free port>; `.url`, `.port`, `.restart()`."""
    b = Mosquitto(workdir=tmp_path / "mosquitto")
    b.start()
    try:
        yield b
    finally:
        b.cleanup()
