"""Commands the core returns; the runtime carries them out through the ports. Frozen values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from firmware.core.sources import SourceSpec


@dataclass(frozen=True, slots=True)
class Play:
    """Start `source` now, replacing whatever plays (with a fade of `fade_s`).

    `kind`: "programme" | "alert" | "notice" | "test-tone". `offset_s` seeks into the source (joining a
    programme in progress). `max_s` bounds the play (cut with a fade at window end); None = until it ends.
    `gain_db` is already capped by policy; the player's limiter enforces `cap_db` sample by sample.
    """

    play_id: str
    kind: str
    ref: str
    source: SourceSpec
    gain_db: float
    cap_db: float
    offset_s: float = 0.0
    max_s: float | None = None
    fade_s: float = 0.03


@dataclass(frozen=True, slots=True)
class Stop:
    play_id: str
    reason: str
    fade_s: float = 0.03


@dataclass(frozen=True, slots=True)
class SetGain:
    """Change the gain (and cap) of what plays, ramped by the player (a window's cap changed)."""

    play_id: str
    gain_db: float
    cap_db: float


@dataclass(frozen=True, slots=True)
class Amplifier:
    """Amplifier relay. The player also refuses to send a sample before the warm-up has passed."""

    on: bool


@dataclass(frozen=True, slots=True)
class Led:
    """Status LED pattern: "booting" | "online" | "offline" | "playing" | "alert" | "fault"."""

    pattern: str


@dataclass(frozen=True, slots=True)
class Ack:
    """Acknowledge an alert/schedule/command to the district: state "received" | "rejected" | "playing" |
    "done" | "failed" | "accepted"."""

    ref: str
    state: str
    reason: str = ""
    new_alert: bool = False  # on "received": a new alert or an update (not a cancel), for the day's count


@dataclass(frozen=True, slots=True)
class PlayLogEntry:
    """One line of the play log: what was asked for, what happened. `result`: "played" | "partial" |
    "missed" | "refused" | "failed"."""

    entry_id: str
    kind: str  # "programme" | "alert"
    ref: str
    title: str
    level: str  # "normal" | "priority" | "emergency" | alert status
    requested_start: datetime
    requested_end: datetime | None
    actual_start: datetime | None
    actual_end: datetime | None
    played_s: float
    gain_db: float | None
    result: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """Put a play-log entry in the outbox (store-and-forward to the district)."""

    entry: PlayLogEntry


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The station's visible state changed (idle/programme/alert/held...): telemetry on change."""

    state: str
    detail: str = ""


Command = Play | Stop | SetGain | Amplifier | Led | Ack | Report | StateChanged
