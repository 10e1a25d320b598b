"""`loa-district cancel ID --scope S --key KEY --broker URL`: stop an alert everywhere in its scope, at once.

The cancel (msg_type cancel, references [ID]) is published retained on the same alert topic, replacing the
retained alert: a station that connects later gets the cancel, not the alert. No confirmation is asked:
stopping a false alert must never wait for anybody (Hawaii 2018 took 38 minutes). Prints the elapsed time.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime

from district import alerts
from district.mqtt import MqttError, add_broker_arguments, client_from_args
from firmware.cli_support import UsageError
from firmware.protocol.keys import KeyFileError, load_signing_key
from firmware.protocol.topics import Scope, TopicError


def register(subparsers) -> None:
    p = subparsers.add_parser("cancel", help="cancel an alert (retained, replaces it on its topic)")
    p.add_argument("id", metavar="ID", help="id of the alert to cancel")
    p.add_argument("--scope", required=True, help="the scope the alert was sent to")
    p.add_argument(
        "--status",
        choices=("test", "exercise", "actual"),
        default="actual",
        help="status of the cancel message; use the alert's own status (default actual)",
    )
    p.add_argument("--text", default="", help="optional text of the cancellation notice")
    p.add_argument("--expires", default="1h", help="how long the retained cancel stays (default 1h)")
    p.add_argument("--key", required=True, metavar="KEY", help="district signing key (<kid>.key)")
    add_broker_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    started = time.monotonic()
    try:
        scope = Scope.parse(args.scope)
    except TopicError as e:
        raise UsageError(f"--scope: {e}") from None
    try:
        key = load_signing_key(args.key)
        expires_in = alerts.parse_duration(args.expires)
        now = datetime.now().astimezone()
        payload = alerts.build_cancel(
            args.id, scope=scope, status=args.status, now=now, expires_in=expires_in, text=args.text
        )
    except (KeyFileError, ValueError) as e:
        raise UsageError(str(e)) from None
    try:
        with client_from_args(args) as client:
            topic = alerts.publish_alert(client, payload, key, now)
            elapsed = time.monotonic() - started
    except MqttError as e:
        print(f"loa-district cancel: {e}", file=sys.stderr)
        return 1
    print(
        f"cancel {payload.id} for alert {args.id} published to {topic} in {elapsed:.3f} s (broker acknowledged)",
        file=sys.stderr,
    )
    print(payload.id)
    return 0
