"""Wire formats of what a station tells the district: status, telemetry, play-log entries, daily reports.

Shared by the station (builds them), the district collector (parses them) and the simulator. Every model is
strict (`extra="forbid"`, no type coercion) so a collector rejects anything it does not understand instead of
storing half of it. Every report that goes through the outbox carries a unique `id`: the district stores
each id once, so a resend after a lost PUBACK, a reconnect or a reboot never makes a duplicate row.

Topics (Protocol v1): `loa/v1/{district}/{commune}/{station}/{status|telemetry|report|ack}`.
`status` is retained (birth `online`, Will `offline`); `telemetry` and `report` are QoS 1, not retained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from firmware.protocol.topics import ID_RE

SCHEMA_VERSION = 1
MAX_REPORT_BYTES = 16 * 1024
"""A report larger than this is refused by the collector (and never built by a station)."""

_ID = Annotated[str, Field(pattern=ID_RE.pattern)]
_REPORT_ID = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
_TEXT = Annotated[str, Field(max_length=500)]
_SECONDS = Annotated[float, Field(ge=0, le=10 * 365 * 86400)]

STATION_KINDS = ("status", "telemetry", "report", "ack")


@dataclass(frozen=True, slots=True)
class StationIds:
    """Who a station is: district, commune and station ids (`[a-z0-9-]+`), and its topics."""

    district: str
    commune: str
    station: str

    def __post_init__(self) -> None:
        for name in ("district", "commune", "station"):
            if not ID_RE.match(getattr(self, name)):
                raise ValueError(f"{name} id {getattr(self, name)!r} must be lowercase letters, digits and '-' (1-63 chars)")

    def topic(self, kind: str) -> str:
        return f"loa/v1/{self.district}/{self.commune}/{self.station}/{kind}"


def parse_station_topic(topic: str) -> tuple[StationIds, str] | None:
    """`loa/v1/d/c/s/kind` -> (ids, kind); None when it is not a station topic of Protocol v1."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "loa" or parts[1] != "v1" or parts[5] not in STATION_KINDS:
        return None
    try:
        return StationIds(parts[2], parts[3], parts[4]), parts[5]
    except ValueError:
        return None


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# -- status (retained) ---------------------------------------------------------------------------------------


class Status(_Strict):
    """Retained on `.../status`. The birth message says `online` with what runs; the Will says `offline`
    (its `ts` is None: it is written at connect time and published by the broker when the station is gone)."""

    v: Literal[1] = SCHEMA_VERSION
    state: Literal["online", "offline"]
    station: _ID
    boot_id: Annotated[str, Field(max_length=64)]
    fw: Annotated[str, Field(max_length=64)] = ""
    config_hash: Annotated[str, Field(max_length=128)] = ""
    since: AwareDatetime | None = None
    ts: AwareDatetime | None = None
    reason: Annotated[str, Field(max_length=200)] = ""


# -- telemetry -----------------------------------------------------------------------------------------------

StationState = Literal["idle", "programme", "alert", "notice", "fault", "held", "muted", "booting"]


class Telemetry(_Strict):
    """Sent every `interval` (default 300 s) and on a change of state. Through the outbox, droppable first.

    To stay inside 100 KB a day, a *full* message (every field known) goes out on start and then hourly; the
    ones in between always carry id, ts, uptimes, state and outbox depth, plus only the fields that changed
    since the last message (None = unchanged or unknown). The district keeps the latest value of each field.
    """

    v: Literal[1] = SCHEMA_VERSION
    kind: Literal["telemetry"] = "telemetry"
    id: _REPORT_ID
    station: _ID
    ts: AwareDatetime
    uptime_s: Annotated[int, Field(ge=0)]
    link_uptime_s: Annotated[int, Field(ge=0)]
    state: StationState
    detail: _TEXT = ""
    item: Annotated[str, Field(max_length=200)] | None = None
    gain_db: Annotated[float, Field(ge=-120, le=40)] | None = None
    amp_on: bool | None = None
    clock_trusted: bool | None = None
    on_backup: bool | None = None
    disk_free_mb: Annotated[int, Field(ge=0)] | None = None
    cpu_temp_c: Annotated[float, Field(ge=-60, le=150)] | None = None
    # Files the schedule needs within the prefetch horizon (default 48 h) that are not in the verified cache
    # yet, and how many of those failed their last download (404, wrong sha256, ...): known hours ahead.
    content_missing: Annotated[int, Field(ge=0, le=100_000)] | None = None
    content_failed: Annotated[int, Field(ge=0, le=100_000)] | None = None
    outbox_depth: Annotated[int, Field(ge=0)]
    dropped_telemetry: Annotated[int, Field(ge=0)] = 0
    dropped_reports: Annotated[int, Field(ge=0)] = 0


# -- reports: play-log entries and daily reports (topic `.../report`) ------------------------------------------


class PlayLog(_Strict):
    """One play-log entry (`firmware.core.commands.PlayLogEntry` on the wire). `id` is the entry id."""

    v: Literal[1] = SCHEMA_VERSION
    kind: Literal["playlog"] = "playlog"
    id: _REPORT_ID
    station: _ID
    item_kind: Literal["programme", "alert"]
    ref: Annotated[str, Field(max_length=128)]
    title: Annotated[str, Field(max_length=200)] = ""
    level: Annotated[str, Field(max_length=32)]
    requested_start: AwareDatetime
    requested_end: AwareDatetime | None = None
    actual_start: AwareDatetime | None = None
    actual_end: AwareDatetime | None = None
    played_s: _SECONDS
    gain_db: Annotated[float, Field(ge=-120, le=40)] | None = None
    result: Literal["played", "partial", "missed", "refused", "failed"]
    reason: _TEXT = ""

    @property
    def requested_s(self) -> float:
        if self.requested_end is None:
            return self.played_s
        return max(0.0, (self.requested_end - self.requested_start).total_seconds())


class DailyReport(_Strict):
    """The day's summary, built at local midnight. `id` = `{station}-daily-{day}` so a rebuilt one dedups."""

    v: Literal[1] = SCHEMA_VERSION
    kind: Literal["daily"] = "daily"
    id: _REPORT_ID
    station: _ID
    day: date
    online_pct: Annotated[float, Field(ge=0, le=100)]
    minutes_played: Annotated[float, Field(ge=0)]
    minutes_requested: Annotated[float, Field(ge=0)]
    programmes_played: Annotated[int, Field(ge=0)]
    programmes_missed: Annotated[int, Field(ge=0)]
    by_level: dict[Annotated[str, Field(max_length=32)], Annotated[int, Field(ge=0)]]
    alerts_received: Annotated[int, Field(ge=0)]
    alerts_played: Annotated[int, Field(ge=0)]
    faults: Annotated[int, Field(ge=0)]


ReportPayload = Annotated[PlayLog | DailyReport, Field(discriminator="kind")]
_report_adapter: TypeAdapter[PlayLog | DailyReport] = TypeAdapter(ReportPayload)


class PayloadError(ValueError):
    """A payload the collector must refuse; the message says why in one line."""


def _check_size(data: bytes) -> None:
    if len(data) > MAX_REPORT_BYTES:
        raise PayloadError(f"payload of {len(data)} bytes exceeds {MAX_REPORT_BYTES}")


def _one_line(e: ValidationError) -> str:
    first = e.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{loc}: {first['msg']}{more}"


def parse_status(data: bytes) -> Status:
    _check_size(data)
    try:
        return Status.model_validate_json(data)
    except ValidationError as e:
        raise PayloadError(_one_line(e)) from None


def parse_telemetry(data: bytes) -> Telemetry:
    _check_size(data)
    try:
        return Telemetry.model_validate_json(data)
    except ValidationError as e:
        raise PayloadError(_one_line(e)) from None


def parse_report(data: bytes) -> PlayLog | DailyReport:
    _check_size(data)
    try:
        return _report_adapter.validate_json(data)
    except ValidationError as e:
        raise PayloadError(_one_line(e)) from None


def encode(model: BaseModel) -> bytes:
    """Compact JSON for the wire: unknown (None) and default-valued fields are left out (the strict models
    restore them when parsing), except the schema version `v` and, on the `report` topic, the `kind`
    discriminator, always first. (Telemetry's kind is its topic: 19 bytes x 288 a day saved.)"""
    body = model.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    keep = ("v",) if isinstance(model, Telemetry) else ("v", "kind")
    head = {k: getattr(model, k) for k in keep if k in type(model).model_fields}
    data = json.dumps({**head, **body}, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) > MAX_REPORT_BYTES:
        raise PayloadError(f"{type(model).__name__} of {len(data)} bytes exceeds {MAX_REPORT_BYTES}")
    return data


def playlog_from_entry(entry, station: str) -> PlayLog:
    """`firmware.core.commands.PlayLogEntry` -> `PlayLog` (duck-typed: the core type is not imported here)."""
    return PlayLog(
        id=entry.entry_id,
        station=station,
        item_kind=entry.kind,
        ref=entry.ref,
        title=entry.title[:200],
        level=entry.level,
        requested_start=entry.requested_start,
        requested_end=entry.requested_end,
        actual_start=entry.actual_start,
        actual_end=entry.actual_end,
        played_s=float(entry.played_s),
        gain_db=None if entry.gain_db is None else float(entry.gain_db),
        result=entry.result,
        reason=entry.reason[:500],
    )
