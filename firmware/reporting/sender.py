"""Drain the outbox through a `Link`, oldest first, with at most `window` messages waiting for a PUBACK.

One thread ("loa-sender") owns the sending: it wakes on new items, acknowledgements, link changes, or every
`poll_s` as a safety net. PUBACKs arrive on the network thread and are only enqueued; the sender removes
acknowledged rows in batches (one transaction, one fsync). A message that paho reports failed, or that has
waited `resend_after_s` while the link was up, goes back to the queue and is sent again: the district drops
duplicates by report id, so at-least-once from here is exactly-once there.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from firmware.ports import Link
from firmware.reporting.outbox import Outbox

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 10


class Sender:
    def __init__(
        self,
        link: Link,
        outbox: Outbox,
        *,
        window: int = DEFAULT_WINDOW,
        poll_s: float = 2.0,
        resend_after_s: float = 120.0,
        monotonic=time.monotonic,
    ):
        self.link = link
        self.outbox = outbox
        self.window = max(1, int(window))
        self.poll_s = poll_s
        self.resend_after_s = resend_after_s
        self._monotonic = monotonic
        self._events: queue.SimpleQueue[tuple[int, bool] | None] = queue.SimpleQueue()
        self._inflight: dict[int, float] = {}  # seq -> monotonic time sent
        self._was_connected = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loa-sender", daemon=True)
        self.sent = 0
        self.acked = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._events.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def wake(self) -> None:
        """Something was put in the outbox or the link came up: look again now. Any thread."""
        self._events.put(None)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # -- sender thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._drain_events(block=True)
                if self._stop.is_set():
                    break
                self._expire()
                self._fill()
            except Exception:
                log.exception("sender iteration failed; retrying in %.0f s", self.poll_s)
                self._stop.wait(self.poll_s)

    def _drain_events(self, *, block: bool) -> None:
        acked: list[int] = []
        try:
            ev = self._events.get(timeout=self.poll_s) if block else self._events.get_nowait()
            while True:
                if ev is not None:
                    seq, ok = ev
                    if self._inflight.pop(seq, None) is not None and ok:
                        acked.append(seq)
                ev = self._events.get_nowait()
        except queue.Empty:
            pass
        if acked:
            self.outbox.remove(acked)
            self.acked += len(acked)

    def _expire(self) -> None:
        """Messages that waited too long for a PUBACK while the link was up are sent again. The clock starts
        again at each link-up: paho resends its own in-flight messages then, and those get a fair chance."""
        connected = self.link.connected
        if connected and not self._was_connected:
            now = self._monotonic()
            self._inflight = dict.fromkeys(self._inflight, now)
        self._was_connected = connected
        if not connected or not self._inflight:
            return
        limit = self._monotonic() - self.resend_after_s
        for seq, sent_at in list(self._inflight.items()):
            if sent_at < limit:
                log.warning("report seq %d not acknowledged after %.0f s: sending again", seq, self.resend_after_s)
                del self._inflight[seq]

    def _fill(self) -> None:
        if not self.link.connected:
            return
        room = self.window - len(self._inflight)
        if room <= 0:
            return
        for item in self.outbox.peek(room, skip=set(self._inflight)):
            self._inflight[item.seq] = self._monotonic()
            self.sent += 1
            self.link.publish(item.topic, item.payload, qos=1, on_done=self._done_callback(item.seq))

    def _done_callback(self, seq: int):
        def done(ok: bool) -> None:  # network thread: enqueue only
            self._events.put((seq, ok))

        return done
