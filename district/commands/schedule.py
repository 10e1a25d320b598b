"""`loa-district schedule push|show`: send a signed schedule to a district, commune or station; show what is retained.

    loa-district schedule push week-48.json --scope hoa-vang/hoa-bac --key keys/ed25519-....key \
        --broker mqtts://broker:8883 --cafile ca.crt --cert sender.crt --cert-key sender.key [--watch 60]
    loa-district schedule show --scope hoa-vang/hoa-bac --broker ... [--trust keys/ed25519-....json]
    loa-district schedule clear --scope hoa-vang/hoa-bac --broker ...

`push` validates the file with the station's own models, sets its `target` to the scope (a file naming another
target is refused), refuses a version that is not greater than the one retained on the scope's topic, signs it
and publishes it retained (QoS 1), then prints what it sent. `--watch SECONDS` then follows the stations'
acks of `schedule-v{N}` like `loa-district watch`. `--dry-run` does everything but publish. `clear` removes the
retained schedule of a scope (stations keep running what they accepted).

Exit status: 0 sent (with --watch: every known station accepted); 1 refused (a bad file, an old version, a
broker error; with --watch: a station rejected it); 2 bad arguments; 3 with --watch: a station stayed silent.
"""

from __future__ import annotations

import sys

from district import schedules
from district.alerts import census
from district.commands.watch import AckPrinter
from district.mqtt import MqttError, add_broker_arguments, client_from_args
from firmware.cli_support import UsageError
from firmware.protocol.keys import KeyFileError, load_signing_key, load_trust_anchors
from firmware.protocol.topics import Scope, TopicError

EXIT_OK, EXIT_BAD, EXIT_SILENT = 0, 1, 3


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "schedule",
        help="push a signed programme schedule to a district, commune or station; show the retained one",
        description="Schedules are signed, published retained on loa/v1/<scope>/schedule, and acked by each "
        "station as schedule-v<version>: accepted, or rejected with every reason.",
    )
    sub = p.add_subparsers(dest="schedule_action", metavar="ACTION", required=True)

    push = sub.add_parser("push", help="validate, sign and publish a schedule file (retained)")
    push.add_argument("file", metavar="FILE", help="schedule JSON (see config/schedule.example.json)")
    push.add_argument("--scope", required=True, help="district, district/commune or district/commune/station")
    push.add_argument("--key", required=True, metavar="KEY", help="district signing key (<kid>.key)")
    push.add_argument("--dry-run", action="store_true",
                      help="validate and sign, check the retained version if --broker is given, publish nothing")
    push.add_argument("--check-against", nargs="+", default=[], metavar="STATION_TOML",
                      help="station configs whose policy (allowed windows, time zone) the schedule must satisfy; "
                      "refuses to push and lists every problem otherwise")
    push.add_argument("--watch", type=float, metavar="SECONDS",
                      help="then wait up to SECONDS for every known station's ack")
    add_broker_arguments(push, required=False)
    push.set_defaults(func=run_push)

    clear = sub.add_parser(
        "clear", help="remove the schedule retained on a scope's topic (stations keep what they run)",
        description="Publishes an empty retained message on loa/v1/<scope>/schedule: stations connecting later "
        "no longer receive it. Stations keep running the schedule they accepted; use it to retire a superseded "
        "schedule (e.g. a commune's old version that every reconnect would otherwise reject again).")
    clear.add_argument("--scope", required=True, help="district, district/commune or district/commune/station")
    add_broker_arguments(clear)
    clear.set_defaults(func=run_clear)

    show = sub.add_parser("show", help="print the schedule retained on a scope's topic")
    show.add_argument("--scope", required=True, help="district, district/commune or district/commune/station")
    show.add_argument("--trust", nargs="+", metavar="ANCHOR",
                      help="trust anchors (<kid>.json / <kid>.pub) to verify the signature with")
    add_broker_arguments(show)
    show.set_defaults(func=run_show)


def _scope(text: str) -> Scope:
    try:
        return Scope.parse(text)
    except TopicError as e:
        raise UsageError(f"--scope: {e}") from None


def _fail(action: str, message: str) -> int:
    print(f"loa-district schedule {action}: {message}", file=sys.stderr)
    return EXIT_BAD


def run_push(args) -> int:
    scope = _scope(args.scope)
    if not args.broker and not args.dry_run:
        raise UsageError("--broker URL is required (or --dry-run to only check and sign)")
    if args.watch is not None and (args.watch <= 0 or args.dry_run):
        raise UsageError("--watch needs a positive number of seconds, and no --dry-run")
    try:
        prepared = schedules.prepare(schedules.read_file(args.file), scope, args.file)
        key = load_signing_key(args.key)
        envelope = schedules.seal_checked(prepared, key)
    except schedules.ScheduleFileError as e:
        print(f"loa-district schedule push: {e.source}: refused, {len(e.problems)} problem(s):", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_BAD
    except KeyFileError as e:
        return _fail("push", str(e))
    doc = prepared.doc
    refused = _check_against(doc, args.check_against)
    if refused is not None:
        return refused
    ref = schedules.ack_ref(doc.version)
    topic = scope.topic("schedule")
    if not args.broker:
        _print_sent(doc, topic, key.kid, len(envelope), dry_run=True)
        return EXIT_OK
    try:
        with client_from_args(args) as client:
            printer = None
            if args.watch:
                # Listen first: acks are not retained, and a connected station answers within milliseconds.
                printer = AckPrinter(schedules.ScheduleAckTracker(ref=ref, scope=scope))
                client.subscribe([scope.station_filter("ack")], printer.on_message)
            retained = schedules.retained_schedule(client, scope)
            problem = _version_problem(retained, doc.version)
            if problem:
                return _fail("push", problem)
            if args.dry_run:
                _print_sent(doc, topic, key.kid, len(envelope), dry_run=True)
                return EXIT_OK
            schedules.publish(client, scope, envelope)
            _print_sent(doc, topic, key.kid, len(envelope), dry_run=False)
            if printer is None:
                return EXIT_OK
            stations = census(client, scope)
            with printer.cond:
                printer.tracker.expected = set(stations)
            print(f"watching {ref} in {scope}: {len(stations)} stations known, goal accepted", file=sys.stderr)
            return printer.wait(args.watch)
    except MqttError as e:
        return _fail("push", str(e))


def _check_against(doc, config_paths: list[str]) -> int | None:
    """Exit status when a station config refuses the schedule (or cannot be read), else None."""
    from firmware.config import ConfigError, load_config

    bad = False
    for path in config_paths:
        try:
            cfg = load_config(path)
        except ConfigError as e:
            print(f"loa-district schedule push: {e}", file=sys.stderr)
            return EXIT_BAD
        problems = schedules.policy_problems(doc, cfg)
        if problems:
            bad = True
            ident = cfg.station
            print(f"loa-district schedule push: station {ident.district}/{ident.commune}/{ident.id} ({path}) "
                  f"would reject it, {len(problems)} problem(s):", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
    return EXIT_BAD if bad else None


def _version_problem(retained: schedules.Retained | None, version: int) -> str:
    if retained is None:
        return ""
    if retained.version is None:
        print(f"warning: the message retained on {retained.topic} has no readable version ({retained.problem}); "
              "replacing it", file=sys.stderr)
        return ""
    if version <= retained.version:
        return (f"version {version} is not greater than version {retained.version} retained on "
                f"{retained.topic}: stations accept only a strictly newer version; set \"version\" to "
                f"{retained.version + 1} or more")
    return ""


def _print_sent(doc, topic: str, kid: str, size: int, *, dry_run: bool) -> None:
    verb = "would publish" if dry_run else "published"
    print(f"schedule v{doc.version} for {doc.target}: {len(doc.programmes)} programme(s), signed by {kid}, "
          f"{size} bytes")
    for line in schedules.describe(doc):
        print(line)
    tail = "" if dry_run else " (broker acknowledged)"
    print(f"{verb} retained to {topic}{tail}; stations ack it as {schedules.ack_ref(doc.version)}",
          file=sys.stderr)


def run_clear(args) -> int:
    scope = _scope(args.scope)
    try:
        with client_from_args(args) as client:
            retained = schedules.retained_schedule(client, scope)
            topic = schedules.publish(client, scope, b"")
    except MqttError as e:
        return _fail("clear", str(e))
    was = f"schedule v{retained.version}" if retained and retained.version is not None else "nothing"
    print(f"cleared {topic} (was: {was}); stations keep the schedule they run")
    return EXIT_OK


def run_show(args) -> int:
    scope = _scope(args.scope)
    trusted = None
    if args.trust:
        try:
            trusted = load_trust_anchors(*args.trust)
        except (KeyFileError, OSError) as e:
            return _fail("show", str(e))
    try:
        with client_from_args(args) as client:
            retained = schedules.retained_schedule(client, scope, trusted_keys=trusted)
    except MqttError as e:
        return _fail("show", str(e))
    topic = scope.topic("schedule")
    if retained is None:
        print(f"no schedule retained on {topic}", file=sys.stderr)
        return EXIT_BAD
    sig = {None: "not checked (give --trust)", True: "verified", False: f"NOT VERIFIED ({retained.problem})"}
    print(f"{topic}: schedule v{retained.version if retained.version is not None else '?'}, signed by "
          f"{retained.kid or '?'}, signature {sig[retained.verified]}")
    if retained.doc is None:
        print(f"  unreadable: {retained.problem}")
        return EXIT_BAD
    doc = retained.doc
    print(f"target {doc.target}, timezone {doc.timezone}, {len(doc.programmes)} programme(s)")
    for line in schedules.describe(doc):
        print(line)
    return EXIT_BAD if retained.verified is False else EXIT_OK
