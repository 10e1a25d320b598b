"""The commune's policy as a signed document, and the district's bounds that a pushed policy must respect.

A policy document travels like a schedule (signed envelope, retained on `loa/v1/<scope>/policy`):

    {"id": "hoa-bac-2026-12", "version": 3, "issued": "2026-12-04T09:00:00+07:00",
     "target": "hoa-vang/hoa-bac", "policy": {<exactly the fields of station.toml's [policy]>}}

The `policy` object is validated by the same model as the config's `[policy]` (`firmware.core.policy.Policy`),
so a problem reads the same in both places (`policy.windows[0].start: ...`). The district sets bounds at
provisioning (`[policy_bounds]` in station.toml); `bounds_problems` says, per window, which bound a policy
breaks and by what value. Pure: no clock, no I/O.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, ValidationError

from firmware.core.policy import EndTime, Policy, StartTime, fmt_hhmm
from firmware.core.validation import format_validation_error

MAX_POLICY_BYTES = 64 * 1024  # a policy is a few windows; anything larger is not one
MAX_POLICY_ENVELOPE_BYTES = 96 * 1024  # base64 adds a third


def _db(v: float) -> str:
    return f"{v:g} dB"


class PolicyBounds(BaseModel):
    """Set by the district at provisioning; unset = only the firmware's absolute limits (the Policy model's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    earliest_start: StartTime | None = Field(default=None, description="no window may start before this")
    latest_end: EndTime | None = Field(default=None, description="no window may end after this (24:00 allowed)")
    max_gain_db: Annotated[float, PlainSerializer(float)] | None = Field(
        default=None, ge=-60.0, le=0.0, description="no window's cap_db may be louder than this")

    @property
    def empty(self) -> bool:
        return self.earliest_start is None and self.latest_end is None and self.max_gain_db is None

    def describe(self) -> str:
        parts = []
        if self.earliest_start is not None:
            parts.append(f"earliest start {fmt_hhmm(self.earliest_start)}")
        if self.latest_end is not None:
            parts.append(f"latest end {fmt_hhmm(self.latest_end)}")
        if self.max_gain_db is not None:
            parts.append(f"loudest cap {_db(self.max_gain_db)}")
        return ", ".join(parts) or "none (firmware limits only)"


def bounds_problems(policy: Policy, bounds: PolicyBounds) -> list[str]:
    """Every window outside the district's bounds, naming the window, the bound and the value.

    A window belongs to the day it starts on: one that crosses midnight (21:00-01:00) ends after any
    latest end earlier than 24:00.
    """
    problems = []
    for w in policy.windows:
        if bounds.earliest_start is not None and w.start < bounds.earliest_start:
            problems.append(f"window {w.label()} starts before the earliest start "
                            f"{fmt_hhmm(bounds.earliest_start)} set by the district")
        end = w.start + w.length_min  # minutes after the start day's midnight; > 24:00 when it crosses
        if bounds.latest_end is not None and end > bounds.latest_end:
            crossing = " (the next day)" if end > 24 * 60 else ""
            problems.append(f"window {w.label()} ends{crossing} after the latest end "
                            f"{fmt_hhmm(bounds.latest_end)} set by the district")
        if bounds.max_gain_db is not None and w.cap_db > bounds.max_gain_db:
            problems.append(f"window {w.label()} caps at {_db(w.cap_db)}, louder than the loudest cap "
                            f"{_db(bounds.max_gain_db)} set by the district")
    return problems


class PolicyDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    version: int = Field(ge=1, description="strictly increasing per scope: a station refuses an older one")
    issued: AwareDatetime
    target: str | None = Field(
        default=None, pattern=r"^[a-z0-9-]+(/[a-z0-9-]+){0,2}$", description="scope: district[/commune[/station]]"
    )
    policy: Policy


class PolicyError(Exception):
    """A policy document that cannot be used as it is; `problems` lists every reason with its key path."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))


def parse_policy_doc(raw: bytes | str, source: str = "<policy>") -> PolicyDoc:
    """Parse and validate a policy document; raises PolicyError listing every problem."""
    if isinstance(raw, str):
        raw = raw.encode()
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(source, [f"too large: {len(raw)} bytes (limit {MAX_POLICY_BYTES})"])
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise PolicyError(source, [f"not valid JSON: {str(e)[:200]}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(source, [f"a policy document is a JSON object, this is a JSON {type(data).__name__}"])
    try:
        return PolicyDoc.model_validate(data)
    except ValidationError as e:
        raise PolicyError(source, format_validation_error(e, PolicyDoc)) from None


def ack_ref(version: int | None) -> str:
    """The `ref` a station puts in its ack of policy version `version`."""
    return f"policy-v{version}" if version is not None else "policy"
