"""`loa-district cmd ACTION --scope d/c/s`: a signed remote command to one station, and its outcome.

    loa-district cmd gain --offset-db -6 --scope hoa-vang/hoa-bac/tram-01 --key keys/ed25519-....key \
        --broker mqtts://broker:8883 --cafile ca.crt --cert sender.crt --cert-key sender.key
    loa-district cmd mute|unmute|selftest|fetch|telemetry --scope ... --key ... --broker ... [--wait 30]

`gain`: offset in dB added to every scheduled programme's gain, still under the policy caps (-40..+20);
`mute`/`unmute`: scheduled audio only (alerts always play); `selftest`: run the station's quick self-test;
`fetch`: fetch the schedule's missing content now; `telemetry`: send telemetry now.

The command is published on the station's `cmd` topic (QoS 1, not retained); the tool then waits for the
station's ack of that command id and prints it. Exit status: 0 done; 1 failed or rejected (or a broker
error); 2 bad arguments; 3 no answer within --wait seconds (the station may be offline: a command is not
queued for later).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from pydantic import ValidationError

from district import commands_lib
from district.mqtt import MqttError, add_broker_arguments, client_from_args
from firmware.cli_support import UsageError
from firmware.protocol.keys import KeyFileError, load_signing_key
from firmware.protocol.topics import Scope, TopicError

EXIT_OK, EXIT_BAD, EXIT_SILENT = 0, 1, 3

ACTIONS = {
    "gain": "set the gain offset of scheduled audio (dB, still under the policy caps)",
    "mute": "mute scheduled audio (alerts still play)",
    "unmute": "unmute scheduled audio",
    "selftest": "run the station's quick self-test and report the result",
    "fetch": "fetch the schedule's missing content now",
    "telemetry": "send telemetry now",
}


def register(subparsers) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--scope", required=True, help="the station: district/commune/station")
    common.add_argument("--key", required=True, metavar="KEY", help="district signing key (<kid>.key)")
    common.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                        help="how long to wait for the station's answer (default 30)")
    add_broker_arguments(common)

    p = subparsers.add_parser(
        "cmd", help="send a signed remote command to one station and print its outcome",
        description="Remote commands: " + "; ".join(f"{k}: {v}" for k, v in ACTIONS.items()) + ".",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in ACTIONS.items():
        a = sub.add_parser(name, help=text, description=text, parents=[common])
        if name == "gain":
            a.add_argument("--offset-db", dest="offset_db", type=float, required=True, metavar="DB",
                           help="offset in dB, -40..+20 (0 undoes an earlier offset)")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        scope = Scope.parse(args.scope)
    except TopicError as e:
        raise UsageError(f"--scope: {e}") from None
    if scope.station is None:
        raise UsageError(f"--scope {scope}: a command goes to one station (district/commune/station)")
    if not args.wait > 0:
        raise UsageError("--wait must be a positive number of seconds")
    try:
        command = commands_lib.build_command(scope, args.action, datetime.now().astimezone(),
                                             offset_db=getattr(args, "offset_db", None))
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise UsageError(problems.replace("offset_db", "--offset-db")) from None
    try:
        key = load_signing_key(args.key)
    except KeyFileError as e:
        print(f"loa-district cmd: {e}", file=sys.stderr)
        return EXIT_BAD
    waiter = commands_lib.OutcomeWaiter(command.id, scope)
    try:
        with client_from_args(args) as client:
            # Listen before sending: acks are not retained and a connected station answers at once.
            client.subscribe([scope.topic("ack")], waiter.on_message)
            topic = commands_lib.send(client, command, key)
            print(f"{command.cmd} {command.id} published to {topic} (broker acknowledged); waiting up to "
                  f"{args.wait:g} s for the station", file=sys.stderr)
            ack = waiter.wait(args.wait)
    except MqttError as e:
        print(f"loa-district cmd: {e}", file=sys.stderr)
        return EXIT_BAD
    if ack is None:
        print(f"{command.id}: no answer from {scope} within {args.wait:g} s (offline? commands are not queued)")
        return EXIT_SILENT
    reason = f": {ack.reason}" if ack.reason else ""
    if waiter.anonymous:
        reason += " (the station could not verify the message, so its ack names no command id)"
    print(f"{command.id}: {ack.state}{reason}")
    return EXIT_OK if ack.state == "done" else EXIT_BAD
