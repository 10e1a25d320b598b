from __future__ import annotations

import pytest

from tests.protocol.factory import Keys


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()
