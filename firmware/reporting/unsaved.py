"""Reports the outbox could not take (disk full, SD card read-only): kept in memory, never dropped silently.

When `Outbox.put()` fails, play-log entries and daily reports wait here, in order, and the reporter thread
(1) retries putting them into the outbox every few seconds (as soon as there is space they are durable again,
ahead of anything newer), and (2) meanwhile, while the link is up, publishes them straight from memory and
forgets each one on its PUBACK: a station whose card stays full still gets its play log to the district, as
long as it does not reboot. The memory is bounded (`max_items`); beyond it the oldest report is dropped and
counted in `lost`, which telemetry adds to `dropped_reports`. Telemetry that cannot be stored is not kept
(the next one says the same, newer): it is counted in `dropped_telemetry`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict

from firmware.ports import Link
from firmware.reporting.outbox import Outbox

log = logging.getLogger(__name__)

STORE_ERRORS = (sqlite3.Error, OSError)
DEFAULT_MAX_ITEMS = 1000


class UnsavedReports:
    def __init__(self, *, max_items: int = DEFAULT_MAX_ITEMS):
        self.max_items = max_items
        self.lost = 0
        self.dropped_telemetry = 0
        self._items: OrderedDict[str, tuple[str, str, bytes]] = OrderedDict()
        self._inflight: set[str] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def keep(self, report_id: str, kind: str, topic: str, payload: bytes) -> None:
        with self._lock:
            if kind == "telemetry":
                self.dropped_telemetry += 1
                return
            self._items[report_id] = (kind, topic, payload)
            while len(self._items) > self.max_items:
                old, (old_kind, _, _) = self._items.popitem(last=False)
                self.lost += 1
                log.error("unsaved reports over %d: dropped %s %s (counted)", self.max_items, old_kind, old)

    def flush_into(self, outbox: Outbox) -> bool:
        """Move what we hold into the outbox, oldest first. True when nothing is left here."""
        while True:
            with self._lock:
                if not self._items:
                    return True
                report_id, (kind, topic, payload) = next(iter(self._items.items()))
            try:
                outbox.put(report_id, kind, topic, payload)
            except STORE_ERRORS:
                return False
            with self._lock:
                self._items.pop(report_id, None)
                self._inflight.discard(report_id)
            log.info("report %s stored in the outbox after all", report_id)

    def publish_direct(self, link: Link) -> None:
        """Send what is not in flight yet; each one is forgotten on its PUBACK."""
        with self._lock:
            todo = [(rid, item) for rid, item in self._items.items() if rid not in self._inflight]
            self._inflight.update(rid for rid, _ in todo)
        for rid, (_kind, topic, payload) in todo:
            link.publish(topic, payload, qos=1, on_done=self._done(rid))

    def _done(self, report_id: str):
        def done(ok: bool) -> None:  # network thread: a dict operation under a lock, nothing more
            with self._lock:
                self._inflight.discard(report_id)
                if ok:
                    self._items.pop(report_id, None)

        return done
