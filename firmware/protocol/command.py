"""Remote commands, district -> station on `loa/v1/{d}/{c}/{s}/cmd` (signed envelope, QoS 1, not retained).

The payload is JSON: `{"id", "issued", "target": "d/c/s", "cmd", "offset_db"}`. The station refuses an
envelope above `MAX_COMMAND_BYTES` and, on a trusted clock, a command issued more than `COMMAND_MAX_AGE` ago.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_COMMAND_BYTES = 16 * 1024
COMMAND_MAX_AGE = timedelta(minutes=30)  # a queued command older than this is stale, not obeyed


class Command(BaseModel):
    """A remote command (signed, on `.../cmd`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    issued: datetime
    target: str = Field(pattern=r"^[a-z0-9-]+/[a-z0-9-]+/[a-z0-9-]+$")
    cmd: Literal["gain", "mute", "unmute", "selftest", "fetch", "telemetry"]
    offset_db: float | None = Field(default=None, ge=-40.0, le=20.0)
