"""`Reporter`: the one object the runtime talks to for everything that goes up to the district.

    outbox = Outbox(state_dir / "outbox.sqlite")
    reporter = Reporter(link, outbox, ids, clock, boot_id=boot_id)
    link = station_link(..., on_link=lambda up: (queue.put(LinkChanged(up)), reporter.on_link(up)))
    reporter.start()
    ...  reporter.report(cmd.entry)            # core's Report command
    ...  reporter.state_changed(cmd.state, cmd.detail, item=..., gain_db=...)   # core's StateChanged
    ...  reporter.update(amp_on=True, clock_trusted=True, on_backup=False)     # no telemetry forced
    reporter.stop()

Every public method is cheap and safe from any thread: it writes to SQLite (the outbox fsyncs; a play-log
entry is durable when `report()` returns) and wakes the sender. One housekeeping thread ("loa-reporter")
sends telemetry every `telemetry_interval_s` and on a change of state (at most once per `min_change_gap_s`),
advances the link-session record, and builds the daily report(s) after local midnight.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from firmware.ports import Clock, Link
from firmware.protocol.reports import DailyReport, StationIds, Telemetry, encode, playlog_from_entry
from firmware.reporting.daily import DayLog, next_midnight
from firmware.reporting.outbox import Outbox
from firmware.reporting.sender import DEFAULT_WINDOW, Sender
from firmware.reporting.telemetry import THERMAL_PATH, Snapshot, TelemetryBuilder
from firmware.reporting.unsaved import STORE_ERRORS, UnsavedReports

log = logging.getLogger(__name__)

DEFAULT_TELEMETRY_INTERVAL_S = 300.0
DEFAULT_MIN_CHANGE_GAP_S = 10.0
MAX_WAIT_S = 60.0
UNSAVED_RETRY_S = 2.0  # how often reports the outbox refused are retried (disk full)  # re-read the wall clock at least this often: it may step (NTP sync after boot)


class Reporter:
    def __init__(
        self,
        link: Link,
        outbox: Outbox,
        ids: StationIds,
        clock: Clock,
        *,
        boot_id: str,
        daylog_path: str | Path | None = None,
        telemetry_interval_s: float = DEFAULT_TELEMETRY_INTERVAL_S,
        min_change_gap_s: float = DEFAULT_MIN_CHANGE_GAP_S,
        window: int = DEFAULT_WINDOW,
        thermal_path: str | Path = THERMAL_PATH,
    ):
        self.link = link
        self.outbox = outbox
        self.ids = ids
        self.clock = clock
        self.telemetry_interval_s = float(telemetry_interval_s)
        self.min_change_gap_s = float(min_change_gap_s)
        self.days = DayLog(daylog_path or outbox.path.with_name("daylog.sqlite"))
        self.sender = Sender(link, outbox, window=window, monotonic=clock.monotonic)
        self.builder = TelemetryBuilder(
            ids.station, clock, boot_id=boot_id, disk_path=outbox.path.parent, thermal_path=thermal_path
        )
        self._snap = Snapshot()
        self._snap_lock = threading.Lock()
        # (missing, failed) content files within the prefetch horizon; set by the app once the cache exists
        self.content_status: Callable[[], tuple[int, int]] | None = None
        self._link_since: float | None = None
        self._change_due: float | None = None  # monotonic time an on-change telemetry is due
        self._last_telemetry = float("-inf")
        self.unsaved = UnsavedReports()
        self._store_lock = threading.Lock()
        self._link_lock = threading.Lock()
        self._link_changes: collections.deque[tuple[bool, datetime]] = collections.deque()
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loa-reporter", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.link.connected:
            self.on_link(True)
        self.sender.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.sender.stop()
        self._record_link_changes()
        self._quietly(self.days.link_down, self.clock.wall())
        self.days.close()

    # -- what the runtime tells us (any thread) -------------------------------------------------------------

    def report(self, entry) -> None:
        """A `firmware.core.commands.PlayLogEntry`: into the outbox (durable on return; if the card is full,
        kept in memory and retried, see `firmware.reporting.unsaved`) and the day's log. Never raises on I/O."""
        payload = playlog_from_entry(entry, self.ids.station)
        self._store(payload.id, "playlog", self.ids.topic("report"), encode(payload))
        self._quietly(self.days.add_entry, payload, self.clock.wall().tzinfo)
        if entry.result == "failed":
            log.warning("%s: %s %s failed: %s", self.ids.station, entry.kind, entry.ref, entry.reason)
        self.sender.wake()

    def alert_received(self, alert_id: str) -> None:
        """The core acked a verified alert `received` (runtime thread): counted in the day's report."""
        self._quietly(self.days.add_alert, alert_id, self.clock.wall())

    def state_changed(self, state: str, detail: str = "", **fields) -> None:
        """The core's `StateChanged` (plus any snapshot fields): telemetry soon if the state really changed."""
        with self._snap_lock:
            before = self._snap
            self._snap = before.with_(state=state, detail=detail, **fields)
            changed = before.state != state or before.detail != detail
        if changed:
            if state == "fault" and before.state != "fault":
                self._quietly(self.days.add_fault, self.clock.wall(), detail)
            now = self.clock.monotonic()
            self._change_due = max(now, self._last_telemetry + self.min_change_gap_s)
            self._wakeup.set()

    def update(self, **fields) -> None:
        """Refresh snapshot fields (item, gain_db, amp_on, clock_trusted, on_backup) without forcing telemetry."""
        with self._snap_lock:
            self._snap = self._snap.with_(**fields)

    def on_link(self, up: bool) -> None:
        """Wire to the link's `on_link` (network thread): only notes the change and wakes our threads; the
        link-session record (online %) is written by the reporter thread."""
        self._link_since = self.clock.monotonic() if up else None
        self._link_changes.append((up, self.clock.wall()))
        self._wakeup.set()
        self.sender.wake()

    def _record_link_changes(self) -> None:
        with self._link_lock:  # keep up/down in order whichever thread records them
            while self._link_changes:
                up, at = self._link_changes.popleft()
                self._quietly(self.days.link_up if up else self.days.link_down, at)

    # -- building reports ------------------------------------------------------------------------------------

    def telemetry_now(self) -> Telemetry:
        """Build a telemetry message, put it in the outbox and wake the sender."""
        self._record_link_changes()
        with self._snap_lock:
            snap = self._snap
        t = self.builder.build(
            snap, link_up_since=self._link_since, outbox_depth=self.outbox.depth() + len(self.unsaved),
            counters=self.counters(), content=self._content(),
        )
        self._store(t.id, "telemetry", self.ids.topic("telemetry"), encode(t))
        self._last_telemetry = self.clock.monotonic()
        self._quietly(self.days.link_tick, self.clock.wall())
        self.sender.wake()
        return t

    def daily_now(self, day: date) -> DailyReport:
        """Build the report of `day` and put it in the outbox (idempotent: same id for the same day)."""
        self._record_link_changes()
        report = self.days.build(day, self.clock.wall().tzinfo, self.ids.station)
        self._store(report.id, "daily", self.ids.topic("report"), encode(report))
        self.sender.wake()
        log.info(
            "%s: daily report %s: online %.1f%%, %.0f/%.0f min played, %d fault(s)",
            self.ids.station,
            day,
            report.online_pct,
            report.minutes_played,
            report.minutes_requested,
            report.faults,
        )
        return report

    def counters(self) -> dict[str, int]:
        """Drops so far: persisted ones from the outbox plus those of reports it could not take."""
        stored = self.outbox.counters()
        return {
            "dropped_telemetry": stored["dropped_telemetry"] + self.unsaved.dropped_telemetry,
            "dropped_reports": stored["dropped_reports"] + self.unsaved.lost,
        }

    def _store(self, report_id: str, kind: str, topic: str, payload: bytes) -> None:
        with self._store_lock:
            if len(self.unsaved) and not self.unsaved.flush_into(self.outbox):
                self.unsaved.keep(report_id, kind, topic, payload)  # behind the older ones, in order
                self._wakeup.set()
                return
            try:
                self.outbox.put(report_id, kind, topic, payload)
            except STORE_ERRORS as e:
                log.error("%s: outbox cannot store %s %s (%s): kept in memory", self.ids.station, kind, report_id, e)
                self.unsaved.keep(report_id, kind, topic, payload)
                self._wakeup.set()
                return
        self.sender.wake()

    def _retry_unsaved(self) -> None:
        if not len(self.unsaved):
            return
        with self._store_lock:
            if self.unsaved.flush_into(self.outbox):
                self.sender.wake()
                return
        if self.link.connected:
            self.unsaved.publish_direct(self.link)

    def _content(self) -> tuple[int, int] | None:
        if self.content_status is None:
            return None
        try:
            return self.content_status()
        except Exception:  # telemetry goes out without the content counts rather than not at all
            log.exception("%s: content status unavailable", self.ids.station)
            return None

    def _quietly(self, fn, *args) -> None:
        """Day-log bookkeeping must not stop reporting when the card is full: log and go on."""
        try:
            fn(*args)
        except STORE_ERRORS as e:
            log.error("%s: day log not updated (%s)", self.ids.station, e)

    def _daily_due(self) -> None:
        today = self.clock.wall().date()
        if self.days.last_reported() is None:  # first run ever: nothing to report about the days before
            self.days.mark_reported(today - timedelta(days=1))
            return
        for day in self.days.days_due(today):
            self.daily_now(day)
            self.days.mark_reported(day)

    # -- housekeeping thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        next_periodic = self.clock.monotonic()  # first telemetry at start
        while not self._stop.is_set():
            try:
                self._record_link_changes()
                self._retry_unsaved()
                now = self.clock.monotonic()
                if now >= next_periodic or (self._change_due is not None and now >= self._change_due):
                    self._change_due = None
                    self.telemetry_now()
                    next_periodic = self.clock.monotonic() + self.telemetry_interval_s
                self._daily_due()
                wall = self.clock.wall()
                until_midnight = (next_midnight(wall) - wall).total_seconds() + 1
                due = [next_periodic, self._change_due or float("inf")]
                wait = min(min(due) - self.clock.monotonic(), until_midnight, MAX_WAIT_S)
                if len(self.unsaved):
                    wait = min(wait, UNSAVED_RETRY_S)
            except Exception:
                log.exception("%s: reporter housekeeping failed", self.ids.station)
                wait = MAX_WAIT_S
            self._wakeup.wait(max(0.0, wait))
            self._wakeup.clear()
