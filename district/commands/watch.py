"""`loa-district watch ID --scope S --broker URL [--timeout 60]`: acks per station, live.

Expected stations are those with a retained status under the scope, plus any station that acks. The goal is
`done` for alerts that play, `received` for test alerts (they play nothing); it is read from the alert still
retained on the scope's topic, or set with `--expect`. Acks are not retained: start watching right after
sending (or before).

Exit status: 0 every station reached the goal; 1 a station answered failed or rejected; 3 some stayed silent
until the timeout (or no station is known in the scope).
"""

from __future__ import annotations

import sys
import threading

from district import alerts
from district.mqtt import Message, MqttError, add_broker_arguments, client_from_args
from firmware.cli_support import UsageError
from firmware.protocol.topics import Scope, TopicError

EXIT_OK, EXIT_BAD, EXIT_SILENT = 0, 1, 3


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "watch", help="show acks of an alert per station until all answered or a timeout"
    )
    p.add_argument("id", metavar="ID", help="alert id")
    p.add_argument("--scope", required=True, help="the scope the alert was sent to")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    p.add_argument(
        "--expect", choices=("done", "received"), help="goal per station (default: from the alert)"
    )
    add_broker_arguments(p)
    p.set_defaults(func=run)


class AckPrinter:
    """Feeds acks from paho's thread into the tracker, prints them, and wakes the waiter."""

    def __init__(self, tracker: alerts.AckTracker, out=None):
        self.tracker = tracker
        self.out = out
        self.cond = threading.Condition()

    def on_message(self, msg: Message) -> None:
        ack = alerts.parse_ack_message(msg)
        if ack is None:
            return
        with self.cond:
            if self.tracker.add(ack):
                reason = f"  ({ack.reason})" if ack.reason else ""
                line = f"{ack.at.isoformat(timespec='seconds')}  {ack.station:40s} {ack.state}{reason}"
                print(line, file=self.out or sys.stdout, flush=True)
                self.cond.notify_all()

    def wait(self, timeout_s: float) -> int:
        """Block until every station reached the goal or answered badly, or the timeout; the exit status."""
        with self.cond:
            self.cond.wait_for(self.tracker.finished, timeout=timeout_s)
            return summarize(self.tracker, self.out or sys.stdout)


def summarize(tracker: alerts.AckTracker, out) -> int:
    stations = sorted(tracker.everyone())
    ok = [s for s in stations if tracker.reached_goal(s)]
    bad = tracker.bad()
    silent = tracker.silent()
    print(f"{len(ok)}/{len(stations)} stations {tracker.goal}", file=out)
    for s in bad:
        print(f"  {tracker.last(s)}: {s}  {tracker.reasons.get(s, '')}", file=out)
    for s in silent:
        print(f"  silent: {s} (last: {tracker.last(s) or 'nothing'})", file=out)
    if bad:
        return EXIT_BAD
    if silent or not stations:
        if not stations:
            print("  no station known in this scope", file=out)
        return EXIT_SILENT
    return EXIT_OK


def run(args) -> int:
    try:
        scope = Scope.parse(args.scope)
    except TopicError as e:
        raise UsageError(f"--scope: {e}") from None
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    tracker = alerts.AckTracker(ref=args.id, scope=scope, goal=args.expect or "done")
    printer = AckPrinter(tracker)
    try:
        with client_from_args(args) as client:
            # Listen for acks first so none is missed while we look up the stations and the alert; the tracker
            # keeps every state, so learning the expected stations and the goal afterwards loses nothing.
            client.subscribe([scope.station_filter("ack")], printer.on_message)
            stations = alerts.census(client, scope)
            goal = args.expect
            if not goal:
                retained = alerts.retained_alert(client, scope)
                test = retained and retained.get("id") == args.id and retained.get("status") == "test"
                goal = "received" if test else "done"
            with printer.cond:
                tracker.expected = set(stations)
                tracker.goal = goal
            print(
                f"watching {args.id} in {scope}: {len(stations)} stations known, goal {goal}", file=sys.stderr
            )
            return printer.wait(args.timeout)
    except MqttError as e:
        print(f"loa-district watch: {e}", file=sys.stderr)
        return 1
