"""The commune's rules: when scheduled audio may play, how much of it, and how loud.

Emergency alerts are exempt from all of it (they play at `alert_gain_db` whatever the hour); priority
bulletins are not. Times are local wall-clock times of the station's timezone, minutes since midnight.
A window belongs to the weekday on which it *starts*; `end <= start` means it crosses midnight
(21:00-01:00 on Saturday ends at 01:00 on Sunday).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAY_MIN = 24 * 60
WEEK_MIN = 7 * DAY_MIN

_HHMM = re.compile(r"^(\d{2}):(\d{2})$")


def parse_hhmm(value: object, *, allow_24: bool = False) -> int:
    """'05:30' -> 330. Strict: two digits each, 00:00-23:59 (and 24:00 where `allow_24`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, time):
        return value.hour * 60 + value.minute
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time: use HH:MM")
    m = _HHMM.match(value.strip())
    if not m:
        raise ValueError(f'"{value}" is not a time: use HH:MM, e.g. 05:30')
    hh, mm = int(m.group(1)), int(m.group(2))
    if allow_24 and hh == 24 and mm == 0:
        return DAY_MIN
    if hh > 23 or mm > 59:
        limit = "00:00-23:59, or 24:00 as an end" if allow_24 else "00:00-23:59"
        raise ValueError(f'"{value}" is not a time of day ({limit})')
    return hh * 60 + mm


def fmt_hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _start_time(v: object) -> int:
    return parse_hhmm(v)


def _end_time(v: object) -> int:
    return parse_hhmm(v, allow_24=True)


StartTime = Annotated[int, BeforeValidator(_start_time), PlainSerializer(fmt_hhmm, return_type=str)]
EndTime = Annotated[int, BeforeValidator(_end_time), PlainSerializer(fmt_hhmm, return_type=str)]


class Window(BaseModel):
    """An allowed broadcast window with its volume cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: tuple[Weekday, ...] = Field(default=WEEKDAYS, min_length=1, description="weekdays it starts on")
    start: StartTime = Field(description="HH:MM local time")
    end: EndTime = Field(description="HH:MM local time; <= start crosses midnight; 24:00 allowed")
    cap_db: float = Field(default=-6.0, ge=-60.0, le=0.0, description="volume cap in dBFS inside the window")

    @model_validator(mode="after")
    def _not_empty(self) -> Window:
        if self.start == self.end:
            raise ValueError(f"window {self.label()} is empty (start equals end)")
        if len(set(self.days)) != len(self.days):
            raise ValueError(f"window {self.label()} lists a day twice: {list(self.days)}")
        return self

    @property
    def length_min(self) -> int:
        return self.end - self.start if self.end > self.start else self.end + DAY_MIN - self.start

    def label(self) -> str:
        return f"{fmt_hhmm(self.start)}-{fmt_hhmm(self.end)}"

    def week_intervals(self) -> list[tuple[int, int]]:
        """[start, end) in minutes since Monday 00:00, one per day; may exceed WEEK_MIN (wraps)."""
        return [
            (WEEKDAYS.index(d) * DAY_MIN + self.start, WEEKDAYS.index(d) * DAY_MIN + self.start + self.length_min)
            for d in self.days
        ]


class Policy(BaseModel):
    """The commune People's Committee's rules for this station."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    windows: tuple[Window, ...] = Field(min_length=1, description="allowed windows; at least one")
    max_sessions_per_day: int = Field(default=4, ge=1, le=48)
    max_session_minutes: float = Field(default=60.0, gt=0, le=1440)
    max_minutes_per_day: float = Field(default=240.0, gt=0, le=1440)
    session_gap_minutes: float = Field(
        default=10.0, ge=0, le=240, description="items closer than this belong to one session"
    )
    alert_gain_db: float = Field(default=0.0, ge=-40.0, le=0.0, description="gain of emergency alerts")
    join_in_progress: Literal["join", "skip"] = Field(
        default="join", description="after a reboot or outage: join a programme at its offset, or skip it"
    )
    hold_on_untrusted_clock: bool = Field(
        default=True, description="play no scheduled programme while the wall clock is not trusted"
    )

    @model_validator(mode="after")
    def _no_overlaps(self) -> Policy:
        spans: list[tuple[int, int, int, str]] = []
        for i, w in enumerate(self.windows):
            for day, (a, b) in zip(w.days, w.week_intervals(), strict=True):
                spans.append((a, b, i, day))
                if b > WEEK_MIN:  # Sunday night into Monday morning
                    spans.append((a - WEEK_MIN, b - WEEK_MIN, i, day))
        spans.sort()
        problems = []
        for (_a1, b1, i1, d1), (a2, _b2, i2, d2) in zip(spans, spans[1:], strict=False):
            if a2 < b1 and i1 != i2:
                w1, w2 = self.windows[i1], self.windows[i2]
                problems.append(
                    f"windows[{i1}] ({d1} {w1.label()}) overlaps windows[{i2}] ({d2} {w2.label()})"
                )
        if problems:
            raise ValueError("; ".join(sorted(set(problems))))
        return self

    # -- lookups on local wall time ---------------------------------------------------------------

    def window_at(self, t: datetime) -> tuple[int, datetime, datetime] | None:
        """The window containing local time `t`: (index, start, end) as datetimes in t's tzinfo."""
        minute_of_day = t.hour * 60 + t.minute + (t.second + t.microsecond / 1e6) / 60
        for day_back in (0, 1):
            d = t.date() - timedelta(days=day_back)
            wd = WEEKDAYS[d.weekday()]
            for i, w in enumerate(self.windows):
                if wd not in w.days:
                    continue
                rel = minute_of_day + day_back * DAY_MIN
                if w.start <= rel < w.start + w.length_min:
                    start = _at(d, w.start, t)
                    return i, start, start + timedelta(minutes=w.length_min)
        return None

    def windows_on(self, d: date, tz) -> list[tuple[int, datetime, datetime]]:
        """Windows that start on local date `d`, in time order."""
        wd = WEEKDAYS[d.weekday()]
        out = []
        for i, w in enumerate(self.windows):
            if wd in w.days:
                start = datetime.combine(d, time(), tzinfo=tz) + timedelta(minutes=w.start)
                out.append((i, start, start + timedelta(minutes=w.length_min)))
        return sorted(out, key=lambda x: x[1])

    def describe_windows(self, weekday: str) -> str:
        labels = [w.label() for w in self.windows if weekday in w.days]
        return ", ".join(labels) if labels else "none"


def _at(d: date, minutes: int, like: datetime) -> datetime:
    return datetime.combine(d, time(), tzinfo=like.tzinfo) + timedelta(minutes=minutes)
