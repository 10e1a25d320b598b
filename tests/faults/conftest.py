from __future__ import annotations

import pytest

from simulator.broker import Mosquitto
from simulator.proxy import FaultProxy
from tests.faults.helpers import Collector


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(workdir=tmp_path / "mosquitto")
    b.start()
    yield b
    b.cleanup()


@pytest.fixture
def proxy(broker):
    with FaultProxy(broker.port) as p:
        yield p


@pytest.fixture
def collector(broker):
    with Collector(broker.url) as c:
        yield c
