"""Store-and-forward reporting to the district: outbox, sender, telemetry, daily reports, the `Reporter`."""

from firmware.reporting.outbox import Outbox, OutboxError
from firmware.reporting.reporter import Reporter
from firmware.reporting.sender import Sender

__all__ = ["Outbox", "OutboxError", "Reporter", "Sender"]
