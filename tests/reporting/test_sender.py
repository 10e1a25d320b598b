"""The sender against a scripted Link (the port, not our code): window, order, removal only on PUBACK."""

from __future__ import annotations

import threading

from firmware.reporting.outbox import Outbox
from firmware.reporting.sender import Sender
from tests.reporting.helpers import wait_for


class ScriptedLink:
    """A `Link` whose broker the test plays: it holds every publish until the test acks or fails it."""

    def __init__(self):
        self.connected = True
        self.sent: list[bytes] = []
        self.sent_while_down = 0
        self._pending: list[tuple[bytes, object]] = []
        self._lock = threading.Lock()

    def publish(self, topic, payload, *, qos=1, retain=False, expiry_s=None, on_done=None):
        with self._lock:
            self.sent_while_down += not self.connected
            self.sent.append(payload)
            self._pending.append((payload, on_done))

    def waiting(self) -> list[bytes]:
        with self._lock:
            return [p for p, _ in self._pending]

    def answer(self, payload: bytes, ok: bool) -> None:
        with self._lock:
            i = next(i for i, (p, _) in enumerate(self._pending) if p == payload)
            _, cb = self._pending.pop(i)
        cb(ok)

    def start(self): ...

    def stop(self): ...


def test_window_order_and_removal_only_after_the_broker_acknowledged(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(6):
        box.put(f"r{i}", "playlog", "t", f"r{i}".encode())
    link = ScriptedLink()
    sender = Sender(link, box, window=3, poll_s=0.05)
    sender.start()
    try:
        wait_for(lambda: link.waiting() == [b"r0", b"r1", b"r2"], 5, "a window of 3, oldest first")
        link.answer(b"r1", True)
        wait_for(lambda: link.waiting() == [b"r0", b"r2", b"r3"], 5, "r3 takes r1's place")
        assert box.ids() == ["r0", "r2", "r3", "r4", "r5"]  # r1 gone only now
        link.answer(b"r0", False)  # publish failed: sent again, still before the newer ones
        wait_for(lambda: sorted(link.waiting()) == [b"r0", b"r2", b"r3"], 5, "r0 resent")
        for p in [b"r0", b"r2", b"r3"]:
            link.answer(p, True)
        wait_for(lambda: link.waiting() == [b"r4", b"r5"], 5, "the rest")
        link.answer(b"r4", True)
        link.answer(b"r5", True)
        wait_for(lambda: box.depth() == 0, 5, "an empty outbox")
        assert link.sent == [b"r0", b"r1", b"r2", b"r3", b"r0", b"r4", b"r5"]
    finally:
        sender.stop()


def test_nothing_is_sent_while_the_link_is_down(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    box.put("r0", "playlog", "t", b"r0")
    link = ScriptedLink()
    link.connected = False
    sender = Sender(link, box, poll_s=0.05)
    sender.start()
    try:
        for i in range(1, 4):  # each put wakes the sender while the link is down
            box.put(f"r{i}", "playlog", "t", f"r{i}".encode())
            sender.wake()
        link.connected = True
        sender.wake()
        wait_for(lambda: link.sent == [b"r0", b"r1", b"r2", b"r3"], 5, "sent in order once the link is up")
        assert link.sent_while_down == 0
    finally:
        sender.stop()
