"""The commune's programme schedule: a JSON document with a version, validated strictly.

A programme recurs on weekdays and/or listed dates, optionally bounded by a date range and with exception
dates. Its planned length is the source's duration, bounded by `max_duration_s`. Live relays (streams) have
no natural end and must give `max_duration_s`.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from firmware.core import sources
from firmware.core.policy import WEEKDAYS, Policy, StartTime, Weekday, fmt_hhmm
from firmware.core.validation import TimeZoneName, check_id, format_validation_error

ProgrammeId = Annotated[str, AfterValidator(check_id)]
SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

# espeak-ng speaks Vietnamese at roughly this many characters per second at its default rate; used only to
# plan a TTS item's length when the schedule doesn't say.
TTS_CHARS_PER_S = 12.0


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSource(_M):
    type: Literal["file"]
    path: str | None = None
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    sha256: SHA256 | None = None
    size: int | None = Field(default=None, ge=1)
    duration_s: float = Field(gt=0, le=24 * 3600)

    @model_validator(mode="after")
    def _where(self) -> FileSource:
        if not self.path and not self.url:
            raise ValueError("a file source needs a path or a url")
        if self.url and not self.sha256:
            raise ValueError("a file source with a url needs its sha256 (the station verifies every download)")
        return self

    def spec(self) -> sources.SourceSpec:
        return sources.FileSpec(path=self.path, url=self.url, sha256=self.sha256, duration_s=self.duration_s)

    @property
    def duration(self) -> float | None:
        return self.duration_s


class StreamSource(_M):
    type: Literal["stream"]
    urls: tuple[Annotated[str, Field(pattern=r"^https?://\S+$")], ...] = Field(min_length=1, max_length=8)
    fallback_path: str | None = None

    def spec(self) -> sources.SourceSpec:
        return sources.StreamSpec(urls=self.urls, fallback_path=self.fallback_path)

    @property
    def duration(self) -> float | None:
        return None


class TtsSource(_M):
    type: Literal["tts"]
    text: str = Field(min_length=1, max_length=5000)
    lang: str = Field(default="vi", pattern=r"^[a-z]{2,3}(-[a-z0-9]+)?$")
    duration_s: float | None = Field(default=None, gt=0, le=3600)

    def spec(self) -> sources.SourceSpec:
        return sources.SpeechSpec(text=self.text, lang=self.lang)

    @property
    def duration(self) -> float | None:
        return self.duration_s or max(2.0, len(self.text) / TTS_CHARS_PER_S)


class ToneSource(_M):
    type: Literal["tone"]
    kind: Literal["test", "attention", "chime"] = "chime"
    duration_s: float = Field(default=5.0, gt=0, le=600)
    freq_hz: float = Field(default=1000.0, ge=20, le=20000)

    def spec(self) -> sources.SourceSpec:
        return sources.ToneSpec(kind=self.kind, duration_s=self.duration_s, freq_hz=self.freq_hz)

    @property
    def duration(self) -> float | None:
        return self.duration_s


Source = Annotated[FileSource | StreamSource | TtsSource | ToneSource, Field(discriminator="type")]


class Recurrence(_M):
    """Weekdays and/or dates, bounded by `from`/`until`, minus `except`."""

    days: tuple[Weekday, ...] = ()
    dates: tuple[date, ...] = ()
    from_: date | None = Field(default=None, alias="from")
    until: date | None = None
    except_: tuple[date, ...] = Field(default=(), alias="except")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("days", mode="before")
    @classmethod
    def _daily(cls, v):
        if v == "daily" or v == ["daily"]:
            return WEEKDAYS
        return v

    @model_validator(mode="after")
    def _something(self) -> Recurrence:
        if not self.days and not self.dates:
            raise ValueError('a recurrence needs "days" (e.g. ["mon","wed"] or "daily") and/or "dates"')
        if self.from_ and self.until and self.until < self.from_:
            raise ValueError(f"until {self.until} is before from {self.from_}")
        return self

    def occurs_on(self, d: date) -> bool:
        if d in self.except_:
            return False
        if d in self.dates:
            return True
        if self.from_ and d < self.from_ or self.until and d > self.until:
            return False
        return WEEKDAYS[d.weekday()] in self.days


class Programme(_M):
    id: ProgrammeId
    title: str = Field(min_length=1, max_length=200)
    level: Literal["normal", "priority"] = "normal"
    source: Source
    recurrence: Recurrence
    start: StartTime
    max_duration_s: float | None = Field(default=None, gt=0, le=24 * 3600)
    gain_db: float = Field(default=0.0, ge=-60, le=0)

    @model_validator(mode="after")
    def _length(self) -> Programme:
        if self.source.duration is None and self.max_duration_s is None:
            raise ValueError(f'programme "{self.id}": a live relay needs max_duration_s')
        return self

    @property
    def planned_s(self) -> float:
        d = self.source.duration
        if d is None:
            return float(self.max_duration_s)  # validated above
        return min(d, self.max_duration_s) if self.max_duration_s else d


class ScheduleDoc(_M):
    version: int = Field(ge=1)
    timezone: TimeZoneName = "Asia/Ho_Chi_Minh"
    target: str | None = Field(
        default=None, pattern=r"^[a-z0-9-]+(/[a-z0-9-]+){0,2}$", description="scope: district[/commune[/station]]"
    )
    programmes: tuple[Programme, ...] = Field(max_length=2000)

    @model_validator(mode="after")
    def _unique_ids(self) -> ScheduleDoc:
        seen: dict[str, int] = {}
        dups = []
        for i, p in enumerate(self.programmes):
            if p.id in seen:
                dups.append(f'programme id "{p.id}" is used twice (programmes[{seen[p.id]}] and programmes[{i}])')
            seen.setdefault(p.id, i)
        if dups:
            raise ValueError("; ".join(dups))
        return self

    def applies_to(self, district: str, commune: str, station: str) -> bool:
        if not self.target:
            return True
        parts = self.target.split("/")
        return parts == [district, commune, station][: len(parts)]


class ScheduleError(Exception):
    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))


MAX_SCHEDULE_BYTES = 1024 * 1024


def parse_schedule(raw: bytes | str, source: str = "<schedule>") -> ScheduleDoc:
    """Parse and validate a schedule document; raises ScheduleError listing every problem."""
    if isinstance(raw, str):
        raw = raw.encode()
    if len(raw) > MAX_SCHEDULE_BYTES:
        raise ScheduleError(source, [f"too large: {len(raw)} bytes (limit {MAX_SCHEDULE_BYTES})"])
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ScheduleError(source, [f"not valid JSON: {e}"]) from None
    try:
        doc = ScheduleDoc.model_validate(data)
    except ValidationError as e:
        raise ScheduleError(source, _name_programmes(format_validation_error(e, ScheduleDoc), data)) from None
    return doc


def _name_programmes(problems: list[str], data) -> list[str]:
    """`programmes[3].start: ...` -> `programmes[3] ("tin-sang").start: ...`: say which one."""
    out = []
    progs = data.get("programmes") if isinstance(data, dict) else None
    for p in problems:
        if progs and isinstance(progs, list) and p.startswith("programmes["):
            idx = p[len("programmes[") : p.index("]")]
            if idx.isdigit() and int(idx) < len(progs) and isinstance(progs[int(idx)], dict):
                pid = progs[int(idx)].get("id")
                if isinstance(pid, str):
                    p = p.replace(f"programmes[{idx}]", f'programmes[{idx}] ("{pid}")', 1)
        out.append(p)
    return out


def check_against_policy(doc: ScheduleDoc, policy: Policy, tz_name: str | None = None) -> list[str]:
    """Static refusals: programmes that could never play as written under this policy.

    Checks the requested start of each programme on each weekday it can occur: it must fall inside an
    allowed window that starts that day. Caps and overlaps are the planner's business (they depend on
    the day), reported in its timeline.
    """
    problems = []
    if tz_name and doc.timezone != tz_name:
        problems.append(f'schedule timezone "{doc.timezone}" differs from the station\'s "{tz_name}"')
    for p in doc.programmes:
        days = set(p.recurrence.days) | {WEEKDAYS[d.weekday()] for d in p.recurrence.dates}
        # one line per programme (an ack carries ~500 characters): days with the same allowed windows together
        by_windows: dict[str, list[str]] = {}
        for day in WEEKDAYS:
            if day in days and not _inside_a_window(policy, day, p.start):
                by_windows.setdefault(policy.describe_windows(day), []).append(day.capitalize())
        for windows, bad_days in by_windows.items():
            plural = "s" if windows.count(",") or windows == "none" else ""
            problems.append(
                f'programme "{p.id}" starts {fmt_hhmm(p.start)} on {_day_list(bad_days)}, outside allowed '
                f"window{plural} {windows}"
            )
    return problems


def _day_list(days: list[str]) -> str:
    if len(days) == 7:
        return "every day"
    return ", ".join(days)


def _inside_a_window(policy: Policy, day: str, minute: int) -> bool:
    prev = WEEKDAYS[(WEEKDAYS.index(day) - 1) % 7]
    for w in policy.windows:
        if day in w.days and w.start <= minute < w.start + w.length_min:
            return True
        # a window that started yesterday and crosses midnight
        if prev in w.days and w.end <= w.start and minute < w.end:
            return True
    return False
