"""`loa-district collect`: store every station's status, telemetry, play log, daily reports and acks.

    loa-district collect --broker mqtts://broker:8883 --cafile ca.crt --cert c.crt --cert-key c.key \
        --db district.sqlite [--group NAME]

Runs until SIGTERM or Ctrl-C. The session is persistent, so a restarted collector receives what it missed.
Several collectors with the same `--group` share the load (MQTT 5 shared subscriptions; see
`district.collector` for what mosquitto 2.0 loses in that mode when the broker itself restarts).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from district.collector import Collector
from district.db import DistrictDb
from district.mqtt import MqttError, add_broker_arguments, parse_broker_url
from firmware.cli_support import UsageError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "collect",
        help="collect station status, telemetry and reports into an SQLite database (runs until stopped)",
        description="Subscribe to every station's status/telemetry/report/ack (persistent session, QoS 1; plain "
        "subscriptions, or shared ones with --group) and store them with deduplication by report id.",
    )
    add_broker_arguments(p)
    p.add_argument("--db", required=True, metavar="FILE", help="district SQLite database (created if missing)")
    p.add_argument(
        "--group",
        help="share the load with other collectors of this group (MQTT 5 shared subscription); default: one "
        "collector with plain subscriptions, which (unlike shared ones on mosquitto 2.0) survive a broker restart",
    )
    p.add_argument("--client-id", help="MQTT client id (default loa-collector-<group>-<host>); keep it stable")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="S", help="give up after S seconds")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        url = parse_broker_url(args.broker)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.group is not None and (not args.group or any(ch in args.group for ch in "/+#")):
        raise UsageError(f"--group {args.group!r}: must be non-empty without '/', '+' or '#'")
    db = DistrictDb(args.db)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    collector = Collector(
        db, url=url, group=args.group, client_id=args.client_id, cafile=args.cafile, cert=args.cert, key=args.cert_key
    )
    try:
        collector.start(timeout_s=args.connect_timeout)
    except (ConnectionError, MqttError, OSError) as e:
        print(f"loa-district collect: {e}", file=sys.stderr)
        db.close()
        return 1
    mode = f"group {args.group}" if args.group else "single collector"
    print(f"collecting from {url} into {args.db} ({mode}); Ctrl-C to stop", flush=True)
    try:
        stop.wait()
    finally:
        collector.stop()
        db.close()
        log.info("collector stopped: stored %s, duplicates %s, rejected %s",
                 dict(collector.stored), dict(collector.duplicates), dict(collector.rejected))
    return 0
