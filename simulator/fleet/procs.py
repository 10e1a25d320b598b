"""A fleet spread over worker processes, one per core: Python runs one thread at a time per process, and a
fan-out is CPU-bound (each station verifies an Ed25519 signature, decides, writes its replay cache), so a
second core needs a second process.

    fleet = ProcessFleet(FleetOptions(stations=1000, broker_url=url), workdir, procs=2, on_first_block=cb)
    fleet.start(); fleet.wait(lambda s: s.subscribed == 1000, 120); ...; fleet.stop()

The parent holds the district key and writes the trust anchor; each worker runs a `Fleet` of its slice of the
station ids (`FleetOptions.first`) and streams back first-block events and its summary over a pipe.
`FirstBlock.t` is `time.monotonic()` in the worker: CLOCK_MONOTONIC is one clock for every process of a Linux
machine, so the parent can subtract its own readings from it.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path

from simulator.fleet.fleet import Fleet, FleetOptions, Summary
from simulator.fleet.player import FirstBlock

log = logging.getLogger(__name__)

SUMMARY_EVERY_S = 0.2


def _worker(conn, opts: FleetOptions, workdir: str, trust_file: str, log_level: int) -> None:
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("firmware").setLevel(max(log_level, logging.ERROR))
    send_lock = threading.Lock()

    def send(msg) -> None:
        with send_lock:
            conn.send(msg)

    def on_first(fb: FirstBlock) -> None:
        send(("first", fb))

    fleet = Fleet(opts, Path(workdir), trust_file=Path(trust_file), on_first_block=on_first)
    stop = threading.Event()

    def pump() -> None:
        while not stop.wait(SUMMARY_EVERY_S):
            send(("summary", fleet.summary()))

    try:
        fleet.start()
        send(("started", fleet.summary()))
        t = threading.Thread(target=pump, name="loa-fleet-pump", daemon=True)
        t.start()
        while True:
            msg = conn.recv()
            if msg == "stop":
                break
        stop.set()
        t.join(2)
    finally:
        fleet.stop()
        send(("stopped", fleet.summary()))
        conn.close()


class ProcessFleet:
    def __init__(self, opts: FleetOptions, workdir: Path, *, procs: int, key=None,
                 on_first_block: Callable[[FirstBlock], None] | None = None, clock=None):
        from simulator.clock import HostClock

        self.opts = opts
        self.workdir = Path(workdir)
        self.procs = max(1, min(procs, opts.stations))
        # The parent's Fleet object is never started: it only writes the key and trust anchor.
        self._keeper = Fleet(dataclasses.replace(opts, stations=0), self.workdir, key=key)
        self.key = self._keeper.key
        self.clock = clock or HostClock(self._keeper.base_config().tz)
        self.on_first_block = on_first_block
        self._summaries: dict[int, Summary] = {}
        self._cond = threading.Condition()
        self._workers: list[tuple[multiprocessing.Process, object, threading.Thread]] = []

    def start(self, timeout_s: float = 120.0) -> ProcessFleet:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads and sockets
        n, k = self.opts.stations, self.procs
        first = self.opts.first
        for i in range(k):
            count = n // k + (1 if i < n % k else 0)
            part = dataclasses.replace(self.opts, stations=count, first=first,
                                       loops=max(1, (self.opts.loops or k) // k))
            first += count
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, name=f"loa-fleet-{i}", daemon=True,
                               args=(child, part, str(self.workdir), str(self._keeper.trust_path),
                                     logging.getLogger().getEffectiveLevel()))
            proc.start()
            child.close()
            reader = threading.Thread(target=self._read, args=(i, parent), name=f"loa-fleet-read-{i}", daemon=True)
            reader.start()
            self._workers.append((proc, parent, reader))
        if not self._wait_all(lambda: len(self._summaries) == k, timeout_s):
            raise RuntimeError(f"fleet workers did not start within {timeout_s:g} s")
        return self

    def _read(self, i: int, conn) -> None:
        try:
            while True:
                kind, value = conn.recv()
                if kind == "first":
                    if self.on_first_block is not None:
                        self.on_first_block(value)
                else:
                    with self._cond:
                        self._summaries[i] = value
                        self._cond.notify_all()
        except (EOFError, OSError):
            pass

    def _wait_all(self, pred: Callable[[], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(pred, timeout)

    def summary(self) -> Summary:
        with self._cond:
            return self._total()

    def wait(self, predicate: Callable[[Summary], bool], timeout: float) -> bool:
        """Block until `predicate(summary)` holds (workers report every 0.2 s)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._total()), timeout)

    def _total(self) -> Summary:
        parts = list(self._summaries.values())
        return Summary(**{f.name: sum(getattr(p, f.name) for p in parts) for f in dataclasses.fields(Summary)})

    def stop(self, timeout_s: float = 60.0) -> None:
        for _proc, conn, _ in self._workers:
            try:
                conn.send("stop")
            except (OSError, BrokenPipeError):
                pass
        for proc, conn, reader in self._workers:
            proc.join(timeout_s)
            if proc.is_alive():
                log.error("fleet worker %s did not stop: killing it", proc.name)
                proc.kill()
                proc.join(5)
            reader.join(5)
            conn.close()
        self._workers.clear()

    def __enter__(self) -> ProcessFleet:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
