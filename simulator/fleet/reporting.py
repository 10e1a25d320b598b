"""The fleet's light reporting: play-log entries go straight to the link (QoS 1), no outbox, no threads.

A real station writes every report to an SQLite outbox before sending it (`firmware.reporting.Reporter`):
two threads and two SQLite files (outbox, day log) per station. For a fleet of 1,000 on one laptop that is
2,000 threads and 2,000 WAL databases sharing one disk, which measures the laptop's disk, not the district's
network. `--reporting outbox` still runs the real Reporter for small fleets; the default is this one:
the same report payloads on the same topics, held by paho (in memory) while the link is down.
"""

from __future__ import annotations

import threading

from firmware.protocol.reports import StationIds, encode, playlog_from_entry


class LightReporter:
    """`firmware.ports.Reporter` (`report`, `state_changed`, `update`, `alert_received`, `on_link`) without the
    outbox. `tests/simulator/test_fleet.py` checks it offers every public method of the real `Reporter` the
    runtime uses."""

    def __init__(self, link, ids: StationIds):
        self.link = link
        self.ids = ids
        self.state = "booting"
        self.detail = ""
        self.fields: dict = {}
        self.reports = 0
        self.acked = 0
        self.alerts_received = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def report(self, entry) -> None:
        payload = playlog_from_entry(entry, self.ids.station)
        self.reports += 1
        self.link.publish(self.ids.topic("report"), encode(payload), qos=1, on_done=self._done)

    def state_changed(self, state: str, detail: str = "", **fields) -> None:
        self.state, self.detail = state, detail
        self.fields.update(fields)

    def update(self, **fields) -> None:
        self.fields.update(fields)

    def alert_received(self, alert_id: str) -> None:
        self.alerts_received += 1

    def on_link(self, up: bool) -> None:
        pass

    def _done(self, ok: bool) -> None:
        if ok:
            with self._lock:
                self.acked += 1
