"""Fan-out: one district-wide signed alert to N stations; time from publish to each station's first alert block.

    python -m benchmarks fanout [--stations 1000] [--procs 2] [--loops 2] [--broker URL] [--rounds 1]

Everything runs on this machine and is timed with `time.monotonic()` (CLOCK_MONOTONIC, one clock for all of
its processes): a private mosquitto (or --broker); the fleet (`simulator.fleet`: the daemon's Station,
InboundHandler verification, Runtime and MqttLink per station, on shared network loops, virtual players), in
one worker process per core (`--procs 1`: all in this process); and, in this process, the district publisher
(`district.alerts.build_alert` + `publish_alert`). A station's figure is the instant its virtual player hands
the alert's first block to the sink, minus the instant just before the publish.

Baseline, in the same run and the same process layout: N bare paho clients on the same number of shared
loops, subscribed to the same topic, receiving the same signed envelope (published unretained, so the fleet
phase starts with a clean topic); their figure is the instant paho delivers the message.
Goal (issue 8): N = 1,000 within 1 s, at most 2x the bare subscribers.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from benchmarks._common import row
from district.alerts import build_alert, publish_alert
from district.mqtt import DistrictClient
from firmware.adapters.mqtt import SharedLoop, parse_url
from firmware.protocol.envelope import seal
from firmware.protocol.topics import Scope
from simulator.broker import Mosquitto
from simulator.fleet import Fleet, FleetOptions, ProcessFleet, raise_fd_limit

GOAL_S = 1.0
GOAL_RATIO = 2.0


class Bare:
    """A plain paho MQTT 5 subscriber, driven by a `SharedLoop` like a fleet station's link."""

    reconnect_min_s = 1.0
    reconnect_max_s = 30.0

    def __init__(self, url: str, client_id: str, topic: str, on_sub, on_msg):
        addr = parse_url(url)
        self.client_id = client_id
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(topic, SubscribeOptions(qos=1))])
        self.client.on_subscribe = lambda *a: on_sub()
        self.client.on_message = lambda c, u, m: on_msg(self, time.monotonic())
        self.client.connect_async(addr.host, addr.port, keepalive=60)


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))]


class Counter:
    def __init__(self):
        self.n = 0
        self.cond = threading.Condition()

    def inc(self) -> None:
        with self.cond:
            self.n += 1
            self.cond.notify_all()

    def wait(self, n: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.n >= n, timeout)


def _bare_worker(conn, url: str, first: int, n: int, loops: int, topic: str) -> None:
    """A worker process of the baseline: `n` bare subscribers on `loops` shared loops; streams arrivals."""
    shared = [SharedLoop(name=f"bench-bare-{i}") for i in range(loops)]
    subs = Counter()
    lock = threading.Lock()

    def on_msg(b: Bare, t: float) -> None:
        with lock:
            conn.send(("msg", b.client_id, t))

    clients = [Bare(url, f"bench-bare-{i:04d}", topic, subs.inc, on_msg) for i in range(first, first + n)]
    for i, c in enumerate(clients):
        shared[i % loops].attach(c)
    subs.wait(n, 120)
    with lock:
        conn.send(("subscribed", subs.n, 0.0))
    conn.recv()  # "stop"
    for c in clients:
        try:
            c.client.disconnect()
        except Exception:
            pass
    for i, c in enumerate(clients):
        shared[i % loops].detach(c, 1.0)
    for s in shared:
        s.close()
    conn.close()


def bare_round_procs(url: str, n: int, loops: int, procs: int, topic: str, envelope: bytes,
                     timeout: float) -> list[float]:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    got, ready = Counter(), Counter()
    arrived: dict[str, float] = {}
    workers = []
    first = 0
    for i in range(procs):
        count = n // procs + (1 if i < n % procs else 0)
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_bare_worker, args=(child, url, first, count, max(1, loops // procs), topic),
                           daemon=True)
        proc.start()
        child.close()
        first += count

        def read(conn=parent) -> None:
            try:
                while True:
                    kind, cid, t = conn.recv()
                    if kind == "subscribed":
                        for _ in range(cid):
                            ready.inc()
                    elif cid not in arrived:
                        arrived[cid] = t
                        got.inc()
            except (EOFError, OSError):
                pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        workers.append((proc, parent, reader))
    try:
        if not ready.wait(n, timeout):
            raise SystemExit(f"bare subscribers: only {ready.n}/{n} subscribed within {timeout:g} s")
        with DistrictClient.from_url(url, client_id="bench-district-bare") as district:
            t0 = time.monotonic()
            district.publish(topic, envelope, qos=1, retain=False)
            if not got.wait(n, timeout):
                print(f"bare subscribers: only {got.n}/{n} received the message", file=sys.stderr)
    finally:
        for _proc, conn, _reader in workers:
            try:
                conn.send("stop")
            except OSError:
                pass
        for proc, _conn, reader in workers:
            proc.join(30)
            reader.join(5)
    return [t - t0 for t in arrived.values()]


def bare_round(url: str, n: int, loops: int, topic: str, envelope: bytes, timeout: float) -> list[float]:
    shared = [SharedLoop(name=f"bench-bare-{i}") for i in range(loops)]
    subs, got = Counter(), Counter()
    arrived: dict[str, float] = {}

    def on_msg(b: Bare, t: float) -> None:
        if b.client_id not in arrived:
            arrived[b.client_id] = t
            got.inc()

    clients = [Bare(url, f"bench-bare-{i:04d}", topic, subs.inc, on_msg) for i in range(n)]
    try:
        for i, c in enumerate(clients):
            shared[i % loops].attach(c)
        if not subs.wait(n, timeout):
            raise SystemExit(f"bare subscribers: only {subs.n}/{n} subscribed within {timeout:g} s")
        with DistrictClient.from_url(url, client_id="bench-district-bare") as district:
            t0 = time.monotonic()
            district.publish(topic, envelope, qos=1, retain=False)
            if not got.wait(n, timeout):
                print(f"bare subscribers: only {got.n}/{n} received the message", file=sys.stderr)
    finally:
        for c in clients:
            try:
                c.client.disconnect()
            except Exception:
                pass
        for i, c in enumerate(clients):
            shared[i % loops].detach(c, 1.0)
        for s in shared:
            s.close()
    return [t - t0 for t in arrived.values()]


def fleet_round(url: str, n: int, loops: int, communes: int, workdir: Path, key, rounds: int,
                timeout: float, procs: int = 1) -> tuple[list[list[float]], list[list[float]], float, int]:
    firsts: dict[str, dict[str, float]] = {}
    inbound: dict[str, dict[str, float]] = {}
    got = Counter()
    lock = threading.Lock()

    def on_first_block(fb) -> None:
        if fb.kind != "alert":
            return
        with lock:
            seen = firsts.setdefault(fb.ref, {})
            if fb.station in seen:
                return
            seen[fb.station] = fb.t
            if fb.t_inbound is not None:
                inbound.setdefault(fb.ref, {})[fb.station] = fb.t_inbound
        got.inc()

    opts = FleetOptions(stations=n, communes=communes, broker_url=url, loops=loops)
    if procs > 1:
        fleet = ProcessFleet(opts, workdir, procs=procs, key=key, on_first_block=on_first_block)
    else:
        fleet = Fleet(opts, workdir, key=key, on_first_block=on_first_block)
    t_start = time.monotonic()
    fleet.start()
    try:
        if not fleet.wait(lambda s: s.subscribed >= n, timeout):
            raise SystemExit(f"fleet: only {fleet.summary().subscribed}/{n} stations subscribed")
        ready_s = time.monotonic() - t_start
        scope = Scope(opts.district)
        results, delivered = [], []
        with DistrictClient.from_url(url, client_id="bench-district-fleet") as district:
            for r in range(rounds):
                # the previous alert must have ended: an alert of equal severity queues behind a playing one
                fleet.wait(lambda s: s.alerting == 0, timeout)
                now = fleet.clock.wall()
                alert = build_alert(scope=scope, status="actual", now=now, expires_in=timedelta(minutes=10),
                                    text="Bão số 9 đổ bộ. Benchmark.", severity="severe", headline="fanout",
                                    repeat=1, tone=True)
                t0 = time.monotonic()
                publish_alert(district, alert, key, now)
                if not got.wait(n * (r + 1), timeout):
                    print(f"fleet: only {len(firsts.get(alert.id, {}))}/{n} stations started the alert",
                          file=sys.stderr)
                results.append([t - t0 for t in firsts.get(alert.id, {}).values()])
                delivered.append([t - t0 for t in inbound.get(alert.id, {}).values()])
            district.publish(scope.topic("alert"), b"", qos=1, retain=True)  # clear the retained alert
        faults = fleet.summary().faults
    finally:
        fleet.stop()
    return results, delivered, ready_s, faults


def describe(name: str, xs: list[float], n: int) -> str:
    if not xs:
        return f"{name}: nothing arrived"
    return (f"{name}: {len(xs)}/{n} in  p50 {statistics.median(xs) * 1000:.0f} ms  "
            f"p99 {percentile(xs, 99) * 1000:.0f} ms  max {max(xs) * 1000:.0f} ms")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks fanout", description=__doc__.splitlines()[0])
    p.add_argument("--stations", type=int, default=1000)
    p.add_argument("--communes", type=int, default=20)
    p.add_argument("--loops", type=int, default=os.cpu_count() or 1,
                   help="shared network loops in all (default: one per core)")
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1,
                   help="worker processes for the fleet and for the baseline alike (default: one per core; "
                        "1 runs everything in this process)")
    p.add_argument("--broker", help="an existing broker URL (default: a private mosquitto)")
    p.add_argument("--rounds", type=int, default=1, help="alerts published one after another to the fleet")
    p.add_argument("--timeout", type=float, default=180.0)
    p.add_argument("--no-single", action="store_true", help="skip the one-station-alone comparison")
    p.add_argument("--switch-interval-ms", type=float, default=None,
                   help="sys.setswitchinterval for this run (default: Python's 5 ms)")
    args = p.parse_args(argv)
    if args.switch_interval_ms:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    n = args.stations
    # The daemon logs every accepted alert at WARNING (one line per station): keep the terminal for the table.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    raise_fd_limit(4 * n + 256)
    from firmware.protocol.keys import generate

    key = generate("hv")
    broker = None
    with tempfile.TemporaryDirectory(prefix="loa-fanout-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        try:
            if args.broker:
                url = args.broker
            else:
                broker = Mosquitto(extra_conf="max_connections -1\nmax_inflight_messages 100\n",
                                   persistence=False).start()
                url = broker.url
            scope = Scope("hv")
            sample = build_alert(scope=scope, status="actual", now=__import__("datetime").datetime.now().astimezone(),
                                 expires_in=timedelta(minutes=10), text="Bão số 9 đổ bộ. Benchmark.",
                                 severity="severe", headline="fanout", repeat=1, tone=True)
            envelope = seal(sample.to_bytes(), key)
            if args.procs > 1:
                bare = bare_round_procs(url, n, args.loops, args.procs, scope.topic("alert"), envelope,
                                        args.timeout)
            else:
                bare = bare_round(url, n, args.loops, scope.topic("alert"), envelope, args.timeout)
            fleet_runs, deliveries, ready_s, faults = fleet_round(url, n, args.loops, args.communes, Path(tmp), key,
                                                      args.rounds, args.timeout, args.procs)
            # One station alone, against one bare subscriber alone (median of 5 fresh runs each): what a
            # station adds to the broker's delivery when it has a CPU to itself, as every Pi does.
            one_bare, one_fleet = [], []
            if not args.no_single:
                for i in range(5):
                    one_bare += bare_round(url, 1, 1, scope.topic("alert"), envelope, 30)
                    runs, _, _, _ = fleet_round(url, 1, 1, 1, Path(tmp) / f"one-{i}", key, 1, 30)
                    one_fleet += runs[0]
        finally:
            if broker is not None:
                broker.cleanup()
    print(f"{n} stations, {args.communes} communes, {args.procs} process(es), {args.loops} shared loop(s), "
          f"fleet subscribed in {ready_s:.1f} s, "
          f"{faults} faults")
    print(describe("bare paho subscribers", bare, n))
    worst = 0
    for i, xs in enumerate(fleet_runs):
        print(describe(f"fleet round {i + 1} alert reached the station's link", deliveries[i], n))
        print(describe(f"fleet round {i + 1} first alert block", xs, n))
        if len(xs) < n or len(bare) < n:
            worst = 1
            continue
        row(f"fanout {n} p50", statistics.median(xs), statistics.median(bare), unit="s", peer_name="bare",
            goal=GOAL_RATIO)
        row(f"fanout {n} p99", percentile(xs, 99), percentile(bare, 99), unit="s", peer_name="bare",
            goal=GOAL_RATIO)
        ratio = row(f"fanout {n} last station", max(xs), max(bare), unit="s", peer_name="bare", goal=GOAL_RATIO)
        row(f"fanout {n} last station vs 1 s goal", max(xs), GOAL_S, unit="s", peer_name="limit", goal=1.0)
        if max(xs) > GOAL_S or ratio > GOAL_RATIO:
            worst = 1
    if one_fleet and one_bare:
        one_s, one_b = statistics.median(one_fleet), statistics.median(one_bare)
        print(f"one station alone: first alert block after {one_s * 1000:.1f} ms; one bare subscriber "
              f"{one_b * 1000:.1f} ms (medians of 5)")
        row("fanout 1 station alone", one_s, one_b, unit="s", peer_name="bare", goal=GOAL_RATIO)
        if bare and len(bare) == n:
            # N stations each on its own CPU: the broker's delivery to N subscribers plus one station's own work
            proj = max(bare) + max(0.0, one_s - one_b)
            row(f"fanout {n} projected (one CPU per station)", proj, max(bare), unit="s", peer_name="bare",
                goal=GOAL_RATIO)
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
