"""A tiny station for the kill -9 test: writes play-log reports to its outbox and sends them.

    python -m tests.reporting.station_child --broker URL --outbox PATH --first N --count M

Prints `loaded <depth>` once the outbox opened, `written <id>` after each report is durably in the outbox,
and `drained` when the outbox is empty (then exits, or with `--stay` waits to be killed). The parent kills it with SIGKILL at a random moment.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid

from firmware.adapters.mqtt import station_link
from firmware.protocol.reports import StationIds, encode, playlog_from_entry
from firmware.reporting.outbox import Outbox
from firmware.reporting.sender import Sender
from tests.reporting.helpers import RealClock, entry

IDS = StationIds("hoa-vang", "hoa-bac", "kill-me")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--broker", required=True)
    p.add_argument("--outbox", required=True)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--stay", action="store_true", help="keep running after draining (until killed)")
    args = p.parse_args()
    outbox = Outbox(args.outbox)
    print(f"loaded {outbox.depth()}", flush=True)
    link = station_link(args.broker, IDS, fw="t", boot_id=uuid.uuid4().hex, config_hash="", wall=RealClock().wall,
                        reconnect_min_s=0.2, reconnect_max_s=1)
    sender = Sender(link, outbox, window=5, poll_s=0.05)
    link.start()
    sender.start()
    for i in range(args.first, args.first + args.count):
        report = playlog_from_entry(entry(f"e{i}"), IDS.station)
        outbox.put(report.id, "playlog", IDS.topic("report"), encode(report))
        print(f"written {report.id}", flush=True)
        sender.wake()
    while outbox.depth():
        time.sleep(0.01)
    print("drained", flush=True)
    if args.stay:
        threading.Event().wait()  # until SIGKILL
    sender.stop()
    link.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
