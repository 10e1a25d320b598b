"""Schedules, district -> station on `loa/v1/{d}[/{c}[/{s}]]/schedule` (signed envelope, QoS 1, retained).

The payload is the schedule document (`firmware.core.schedule`); this module holds the wire's own facts.
"""

from __future__ import annotations

MAX_SCHEDULE_ENVELOPE_BYTES = 1_500_000  # a schedule payload may be 1 MiB; base64 adds a third
