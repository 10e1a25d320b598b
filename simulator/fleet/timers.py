"""One timer thread for a whole fleet: callbacks at monotonic instants, cancellable.

The fleet's virtual players keep time here instead of each running a player thread: 1,000 stations cost one
thread and a heap. Callbacks run on the timer thread and must be quick (they only enqueue events).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Timers:
    def __init__(self, name: str = "loa-fleet-timers"):
        self._heap: list = []
        self._seq = itertools.count()
        self._cancelled: set[int] = set()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_at(self, when: float, fn: Callable[[], None]) -> int:
        """Run `fn()` on the timer thread at monotonic time `when` (at once if it has passed). Returns a handle."""
        with self._cond:
            token = next(self._seq)
            heapq.heappush(self._heap, (when, token, fn))
            if self._heap[0][1] == token:
                self._cond.notify()
            return token

    def call_soon(self, fn: Callable[[], None]) -> int:
        return self.call_at(0.0, fn)

    def cancel(self, token: int) -> None:
        with self._cond:
            self._cancelled.add(token)

    def close(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    if self._heap:
                        wait = self._heap[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._stop:
                    return
                _, token, fn = heapq.heappop(self._heap)
                if token in self._cancelled:
                    self._cancelled.discard(token)
                    continue
            try:
                fn()
            except Exception:
                log.exception("fleet timer callback failed")
