"""An emergency alert as the core sees it: already verified (signature, target, replay, time) by
`firmware.protocol`, so the core only decides *what to play and when*."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# CAP 1.2 severities, most severe first. Higher rank wins; equal rank queues.
SEVERITY_RANK = {"extreme": 4, "severe": 3, "moderate": 2, "minor": 1, "unknown": 0}


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    issued: datetime
    expires: datetime
    status: str  # "actual" | "exercise" | "test"
    msg_type: str  # "alert" | "update" | "cancel"
    severity: str = "unknown"
    headline: str = ""
    text: str = ""
    references: tuple[str, ...] = ()
    audio_url: str | None = None
    audio_sha256: str | None = None
    tone: bool = True
    repeat: int = 3

    @property
    def rank(self) -> int:
        return SEVERITY_RANK.get(self.severity.lower(), 0)
