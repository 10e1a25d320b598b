"""Protocol v1 topics: `loa/v1/{d}[/{c}[/{s}]]/{kind}`.

A *scope* is a district, a commune of a district, or one station: written `d`, `d/c` or `d/c/s`. Ids are
`[a-z0-9-]+` (1..63 characters). The number of levels tells the scope of a topic apart, so a commune or station
may even be called "alert" without ambiguity.

District -> stations, per scope: `alert`, `schedule`, `policy` (retained). District -> one station: `cmd`.
Station -> district, always at station scope: `status` (retained), `telemetry`, `report`, `ack`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "loa/v1"
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

SCOPED_KINDS = ("alert", "schedule", "policy")  # at any scope depth
STATION_KINDS = ("status", "telemetry", "report", "ack", "cmd")  # station depth only
KINDS = SCOPED_KINDS + STATION_KINDS


class TopicError(ValueError):
    """A scope string or topic that is not Protocol v1."""


def check_id(value: str, what: str = "id") -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise TopicError(
            f"{what} {value!r} is not a valid id (lowercase letters, digits and '-', 1-63 chars)"
        )
    return value


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """A district (`commune` and `station` None), a commune, or a station."""

    district: str
    commune: str | None = None
    station: str | None = None

    def __post_init__(self) -> None:
        check_id(self.district, "district")
        if self.commune is not None:
            check_id(self.commune, "commune")
        if self.station is not None:
            if self.commune is None:
                raise TopicError("a station scope needs a commune")
            check_id(self.station, "station")

    @classmethod
    def parse(cls, text: str) -> Scope:
        """`"d"`, `"d/c"` or `"d/c/s"`."""
        if not isinstance(text, str):
            raise TopicError(f"scope {text!r} is not a string")
        parts = text.split("/")
        if not 1 <= len(parts) <= 3:
            raise TopicError(f"scope {text!r} must be district, district/commune or district/commune/station")
        return cls(*parts)

    @property
    def depth(self) -> int:
        return 1 + (self.commune is not None) + (self.station is not None)

    @property
    def level(self) -> str:
        return ("district", "commune", "station")[self.depth - 1]

    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in (self.district, self.commune, self.station) if p is not None)

    def __str__(self) -> str:
        return "/".join(self.parts())

    def topic(self, kind: str) -> str:
        """The topic of `kind` at exactly this scope, e.g. `loa/v1/hoa-vang/hoa-bac/alert`."""
        if kind in STATION_KINDS and self.station is None:
            raise TopicError(f"{kind} topics exist only at station scope, not {self.level} {self}")
        if kind not in KINDS:
            raise TopicError(f"unknown topic kind {kind!r}")
        return f"{PREFIX}/{self}/{kind}"

    def station_filter(self, kind: str) -> str:
        """A subscription filter matching the station-level `kind` topics of every station inside this scope:
        `loa/v1/d/+/+/ack`, `loa/v1/d/c/+/ack` or `loa/v1/d/c/s/ack`."""
        if kind not in STATION_KINDS:
            raise TopicError(f"{kind} is not a station topic kind")
        wildcards = ["+"] * (3 - self.depth)
        return "/".join([PREFIX, *self.parts(), *wildcards, kind])

    def contains(self, other: Scope) -> bool:
        """True when `other` is this scope or inside it."""
        mine = self.parts()
        return other.parts()[: len(mine)] == mine

    def ancestors(self) -> tuple[Scope, ...]:
        """This scope and every scope containing it, widest first: (d, d/c, d/c/s) for a station."""
        parts = self.parts()
        return tuple(Scope(*parts[:n]) for n in range(1, len(parts) + 1))


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    scope: Scope
    kind: str


def parse_topic(topic: str) -> ParsedTopic:
    """Split a concrete topic (no wildcards) into its scope and kind. Raises TopicError."""
    if not isinstance(topic, str) or not topic.startswith(PREFIX + "/"):
        raise TopicError(f"topic {topic!r} is not under {PREFIX}/")
    rest = topic[len(PREFIX) + 1 :].split("/")
    if len(rest) < 2 or len(rest) > 4:
        raise TopicError(f"topic {topic!r} has {len(rest)} levels after {PREFIX}/, expected 2 to 4")
    *scope_parts, kind = rest
    if kind not in KINDS:
        raise TopicError(f"topic {topic!r}: unknown kind {kind!r}")
    scope = Scope(*scope_parts)
    if kind in STATION_KINDS and scope.station is None:
        raise TopicError(f"topic {topic!r}: {kind} exists only at station scope")
    return ParsedTopic(scope, kind)


def station_subscriptions(station: Scope) -> list[str]:
    """Every district -> station topic a station subscribes to: alert, schedule and policy at its district,
    commune and station scope, and its own cmd topic."""
    if station.station is None:
        raise TopicError(f"{station} is not a station scope")
    topics = [s.topic(kind) for kind in SCOPED_KINDS for s in station.ancestors()]
    topics.append(station.topic("cmd"))
    return topics
