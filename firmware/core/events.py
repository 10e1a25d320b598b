"""Events that come into the core. Named for what happened; frozen values.

The runtime is the only caller of `Station.handle(event, now)`: adapters (player, MQTT, GPIO, clock) put
these on the runtime's queue and never touch the Station themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from firmware.core.alerts import Alert


@dataclass(frozen=True, slots=True)
class Booted:
    """The daemon started. `last_alive` is the last wall time the previous run persisted (None: first boot);
    programmes due between it and now are reported missed."""

    clock_trusted: bool
    last_alive: datetime | None = None
    interrupted: dict | None = None  # `Station.playing_record()` of what played when the last run died


@dataclass(frozen=True, slots=True)
class DeadlineReached:
    """The instant returned by `Station.next_deadline()` has come (or passed)."""


@dataclass(frozen=True, slots=True)
class ClockTrustChanged:
    """NTP sync gained or lost (or the wall clock fell behind the last trusted time)."""

    trusted: bool


@dataclass(frozen=True, slots=True)
class ClockStepped:
    """The runtime saw wall time move by `delta_s` more (or less) than monotonic time did."""

    delta_s: float


@dataclass(frozen=True, slots=True)
class PlaybackStarted:
    """The first sample of `play_id` was handed to the sink."""

    play_id: str


@dataclass(frozen=True, slots=True)
class PlaybackEnded:
    """`play_id` stopped: its source ran out (`completed=True`) or it was stopped by a command."""

    play_id: str
    played_s: float
    completed: bool


@dataclass(frozen=True, slots=True)
class PlaybackFailed:
    """`play_id` could not be played (missing file, corrupt data, sink error). The player is idle again."""

    play_id: str
    played_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class SourceNote:
    """Something the source of `play_id` did that the play log must say (a live relay switched URL)."""

    play_id: str
    note: str


@dataclass(frozen=True, slots=True)
class AlertReceived:
    """A verified alert (or update, or cancel). `topic` is where it came from, for acks and logs."""

    alert: Alert
    topic: str = ""


@dataclass(frozen=True, slots=True)
class ScheduleReceived:
    """A verified, policy-checked schedule document (`firmware.core.schedule.ScheduleDoc`) to make active."""

    schedule: object


@dataclass(frozen=True, slots=True)
class PolicyReceived:
    """A verified pushed policy (`firmware.core.policy.Policy`), inside the district's bounds, to make active."""

    policy: object


@dataclass(frozen=True, slots=True)
class ButtonPressed:
    """Technician button: short press plays the test tone, long press stops the current non-emergency item."""

    long: bool


@dataclass(frozen=True, slots=True)
class PowerChanged:
    """Mains failed (`on_backup=True`: running on the 12-24 V DC battery) or came back."""

    on_backup: bool


@dataclass(frozen=True, slots=True)
class LinkChanged:
    """The MQTT link to the district went up or down."""

    up: bool


@dataclass(frozen=True, slots=True)
class MuteChanged:
    """Remote command: mute or unmute scheduled audio (never emergency alerts)."""

    muted: bool


@dataclass(frozen=True, slots=True)
class GainOffsetChanged:
    """Remote command: an offset in dB applied to scheduled audio, still under the policy caps."""

    offset_db: float


@dataclass(frozen=True, slots=True)
class Stopping:
    """The daemon is stopping (SIGTERM): end what plays and account for it."""


Event = (
    Booted
    | DeadlineReached
    | ClockTrustChanged
    | ClockStepped
    | PlaybackStarted
    | PlaybackEnded
    | PlaybackFailed
    | SourceNote
    | AlertReceived
    | ScheduleReceived
    | PolicyReceived
    | ButtonPressed
    | PowerChanged
    | LinkChanged
    | MuteChanged
    | GainOffsetChanged
    | Stopping
)
