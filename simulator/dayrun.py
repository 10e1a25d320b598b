"""Replay the station core over simulated days: a fake clock and a player that only keeps time.

The loop is the runtime's, minus the waiting: jump to the earlier of the next scripted event and the
station's deadline, hand the event to `Station.handle`, and carry out the commands on a `TimedPlayer`
that knows how long each source lasts. A week of a dense schedule takes milliseconds.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from firmware.core import commands as C
from firmware.core import events as E
from firmware.core.schedule import TTS_CHARS_PER_S
from firmware.core.sources import (
    FileSpec,
    SequenceSpec,
    SilenceSpec,
    SourceSpec,
    SpeechSpec,
    StreamSpec,
    ToneSpec,
)
from firmware.core.station import Station


def spec_duration(spec: SourceSpec) -> float | None:
    """Seconds of audio a spec yields; None for endless sources (live relays)."""
    if isinstance(spec, FileSpec):
        return spec.duration_s
    if isinstance(spec, ToneSpec | SilenceSpec):
        return spec.duration_s
    if isinstance(spec, SpeechSpec):
        return max(2.0, len(spec.text) / TTS_CHARS_PER_S)
    if isinstance(spec, StreamSpec):
        return None
    if isinstance(spec, SequenceSpec):
        parts = [spec_duration(p) for p in spec.parts]
        if any(p is None for p in parts):
            return None
        return (sum(parts) + spec.gap_s * max(0, len(parts) - 1)) * spec.repeat + spec.gap_s * (spec.repeat - 1)
    return None


@dataclass
class Row:
    """One stretch of audio at one gain, or a refused/missed item (start == end)."""

    start: datetime
    end: datetime | None
    kind: str
    programme: str
    level: str
    gain_db: float | None
    reason: str = ""
    result: str = "played"

    def as_json(self) -> dict:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end else None,
            "programme": self.programme,
            "level": self.level,
            "gain_db": self.gain_db,
            "reason": self.reason,
        }


@dataclass
class DayRun:
    """Drives one Station through simulated time. Scripted events are (time, Event)."""

    station: Station
    now: datetime
    rows: list[Row] = field(default_factory=list)
    log: list[C.PlayLogEntry] = field(default_factory=list)
    acks: list[C.Ack] = field(default_factory=list)
    commands: list[tuple[datetime, C.Command]] = field(default_factory=list)
    keep_commands: bool = False
    fail_plays: set[str] = field(default_factory=set)  # refs whose playback fails at once

    def __post_init__(self) -> None:
        self._queue: list = []
        self._seq = itertools.count()
        self._open: dict[str, Row] = {}  # play_id -> row being played
        self._play_ref: dict[str, tuple[str, str]] = {}
        self._ends: dict[str, int] = {}  # play_id -> token of its scheduled end
        self._current: str | None = None
        self.amp: list[tuple[datetime, bool]] = []

    def at(self, when: datetime, event: E.Event) -> None:
        heapq.heappush(self._queue, (when, next(self._seq), event, None))

    def run_until(self, end: datetime) -> None:
        while True:
            dl = self.station.next_deadline()
            nxt_ev = self._queue[0][0] if self._queue else None
            if nxt_ev is not None and (dl is None or nxt_ev <= dl):
                when, _, ev, token = heapq.heappop(self._queue)
                if when > end:
                    heapq.heappush(self._queue, (when, next(self._seq), ev, token))
                    break
                if token is not None:
                    if self._ends.get(ev.play_id) != token:
                        continue  # the play was stopped before this end came
                    self.now = max(self.now, when)
                    self._close(ev.play_id)  # the source ran out: the player goes idle
                self.now = max(self.now, when)
                self._handle(ev)
            elif dl is not None and dl <= end:
                self.now = max(self.now, dl)
                self._handle(E.DeadlineReached())
            else:
                break
        self.now = max(self.now, end)

    def step_clock(self, delta_s: float) -> None:
        """The wall clock jumps (an NTP step): the station is told, as the runtime would tell it."""
        shift = timedelta(seconds=delta_s)
        self.now = self.now + shift
        # The player counts real seconds: the end of what plays moves with the wall clock's step.
        self._queue = [(when + shift if token is not None else when, seq, ev, token)
                       for when, seq, ev, token in self._queue]
        heapq.heapify(self._queue)
        self._handle(E.ClockStepped(delta_s))

    def send(self, event: E.Event) -> None:
        self._handle(event)

    # -- the fake player ---------------------------------------------------------------------------

    def _handle(self, ev: E.Event) -> None:
        for cmd in self.station.handle(ev, self.now):
            if self.keep_commands:
                self.commands.append((self.now, cmd))
            self._execute(cmd)

    def _close(self, play_id: str) -> None:
        row = self._open.pop(play_id, None)
        if row is not None:
            row.end = self.now
        self._ends.pop(play_id, None)
        if self._current == play_id:
            self._current = None

    def _execute(self, cmd: C.Command) -> None:
        if isinstance(cmd, C.Play):
            if self._current is not None:
                self._close(self._current)
            self._current = cmd.play_id
            self._play_ref[cmd.play_id] = (cmd.kind, cmd.ref)
            if cmd.ref in self.fail_plays:
                self.at(self.now, E.PlaybackFailed(cmd.play_id, 0.0, "simulated failure"))
                return
            row = Row(self.now, None, cmd.kind, cmd.ref, "", cmd.gain_db)
            self._open[cmd.play_id] = row
            self.rows.append(row)
            self.at(self.now, E.PlaybackStarted(cmd.play_id))
            length = spec_duration(cmd.source)
            remaining = None if length is None else max(0.0, length - cmd.offset_s)
            if cmd.max_s is not None:
                remaining = cmd.max_s if remaining is None else min(remaining, cmd.max_s)
            if remaining is not None:
                token = next(self._seq)
                self._ends[cmd.play_id] = token
                heapq.heappush(
                    self._queue,
                    (self.now + timedelta(seconds=remaining), token,
                     E.PlaybackEnded(cmd.play_id, remaining, True), token),
                )
        elif isinstance(cmd, C.Stop):
            self._close(cmd.play_id)
        elif isinstance(cmd, C.SetGain):
            row = self._open.get(cmd.play_id)
            if row is not None and row.gain_db != cmd.gain_db:
                row.end = self.now
                new = Row(self.now, None, row.kind, row.programme, row.level, cmd.gain_db)
                self._open[cmd.play_id] = new
                self.rows.append(new)
        elif isinstance(cmd, C.Report):
            self._attach(cmd.entry)
        elif isinstance(cmd, C.Ack):
            self.acks.append(cmd)
        elif isinstance(cmd, C.Amplifier):
            self.amp.append((self.now, cmd.on))

    def _attach(self, e: C.PlayLogEntry) -> None:
        """Give the entry's level/result/reason to the rows it covers (or add a row for a missed one)."""
        self.log.append(e)
        if e.actual_start is None:
            self.rows.append(Row(e.requested_start, e.requested_start, e.kind, e.ref, e.level, None,
                                 e.reason, e.result))
            return
        for row in self.rows:
            if row.programme == e.ref and row.start >= e.actual_start and (
                    e.actual_end is None or row.start <= e.actual_end) and not row.level:
                row.level, row.reason, row.result = e.level, e.reason, e.result


def day_summary(rows: list[Row], gap_minutes: float) -> dict[str, dict]:
    """Per local day: sessions, minutes of scheduled audio, max gain, refusals."""
    days: dict[str, dict] = {}
    played = sorted((r for r in rows if r.end and r.end > r.start and r.kind == "programme"),
                    key=lambda r: r.start)
    for r in played:
        d = days.setdefault(r.start.date().isoformat(),
                            {"sessions": 0, "minutes": 0.0, "max_gain_db": None, "refused": 0, "_last": None})
        if d["_last"] is None or (r.start - d["_last"]).total_seconds() > gap_minutes * 60:
            d["sessions"] += 1
        d["_last"] = r.end if d["_last"] is None else max(d["_last"], r.end)
        d["minutes"] += (r.end - r.start).total_seconds() / 60
        if r.gain_db is not None:
            d["max_gain_db"] = r.gain_db if d["max_gain_db"] is None else max(d["max_gain_db"], r.gain_db)
    for r in rows:
        if r.result in ("refused", "missed"):
            d = days.setdefault(r.start.date().isoformat(),
                                {"sessions": 0, "minutes": 0.0, "max_gain_db": None, "refused": 0, "_last": None})
            d["refused"] += 1
    for d in days.values():
        d.pop("_last", None)
        d["minutes"] = round(d["minutes"], 2)
    return dict(sorted(days.items()))
