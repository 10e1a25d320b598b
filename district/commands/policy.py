"""`loa-district policy push|check|show`: the commune's policy (broadcast hours, caps, sessions) as a signed document.

    loa-district policy check hoa-bac.json [--scope hoa-vang/hoa-bac] [--bounds DIR/policy_bounds.toml]
    loa-district policy push hoa-bac.json --scope hoa-vang/hoa-bac --key keys/ed25519-....key \
        --broker mqtts://broker:8883 [--bounds DIR/policy_bounds.toml] [--watch 60]
    loa-district policy show --scope hoa-vang/hoa-bac --broker ... [--trust keys/ed25519-....json]

`check` validates offline (the station's own models; with `--bounds`, the district's bounds). `push` also sets
the `target` to the scope (a file naming another target is refused) and `issued` to now when the file has
none, refuses a version not greater than the retained one, signs and publishes retained (QoS 1) on
loa/v1/<scope>/policy. Stations ack `policy-v<version>`: accepted, or rejected naming the bound and value.

Exit status: 0 valid / sent (with --watch: every known station accepted); 1 refused (every problem listed, with
its key path); 2 bad arguments; 3 with --watch: a station stayed silent.
"""

from __future__ import annotations

import json
import sys
import tomllib
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from district import policies
from district.alerts import census
from district.commands.watch import AckPrinter
from district.mqtt import MqttError, add_broker_arguments, client_from_args
from firmware.cli_support import UsageError
from firmware.core.policydoc import PolicyBounds
from firmware.core.validation import format_validation_error
from firmware.protocol.keys import KeyFileError, load_signing_key, load_trust_anchors
from firmware.protocol.topics import Scope, TopicError

EXIT_OK, EXIT_BAD, EXIT_SILENT = 0, 1, 3


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "policy",
        help="push the commune's policy (allowed hours, caps, sessions) as a signed document; check; show",
        description="A policy is signed, published retained on loa/v1/<scope>/policy, and acked by each station "
        "as policy-v<version>: accepted, or rejected with the reason (a bound broken, an older version, ...).",
    )
    sub = p.add_subparsers(dest="policy_action", metavar="ACTION", required=True)

    check = sub.add_parser("check", help="validate a policy file offline")
    check.add_argument("file", metavar="FILE", help="policy JSON (see docs/protocol.md, Policies)")
    check.add_argument("--scope", help="the scope it is meant for (checks the file's target)")
    check.add_argument("--bounds", metavar="TOML", help="the district's policy_bounds.toml to hold it to")
    check.set_defaults(func=run_check)

    push = sub.add_parser("push", help="validate, sign and publish a policy file (retained)")
    push.add_argument("file", metavar="FILE", help="policy JSON")
    push.add_argument("--scope", required=True, help="district, district/commune or district/commune/station")
    push.add_argument("--key", required=True, metavar="KEY", help="district signing key (<kid>.key)")
    push.add_argument("--bounds", metavar="TOML", help="the district's policy_bounds.toml to hold it to first")
    push.add_argument("--dry-run", action="store_true", help="validate and sign, publish nothing")
    push.add_argument("--watch", type=float, metavar="SECONDS",
                      help="then wait up to SECONDS for every known station's ack")
    add_broker_arguments(push, required=False)
    push.set_defaults(func=run_push)

    show = sub.add_parser("show", help="print the policy retained on a scope's topic")
    show.add_argument("--scope", required=True, help="district, district/commune or district/commune/station")
    show.add_argument("--trust", nargs="+", metavar="ANCHOR", help="trust anchors to verify the signature with")
    add_broker_arguments(show)
    show.set_defaults(func=run_show)


def _scope(text: str | None) -> Scope | None:
    if text is None:
        return None
    try:
        return Scope.parse(text)
    except TopicError as e:
        raise UsageError(f"--scope: {e}") from None


def _fail(action: str, message: str) -> int:
    print(f"loa-district policy {action}: {message}", file=sys.stderr)
    return EXIT_BAD


def _refused(action: str, e: policies.PolicyFileError) -> int:
    print(f"loa-district policy {action}: {e.source}: refused, {len(e.problems)} problem(s):", file=sys.stderr)
    for problem in e.problems:
        print(f"  {problem}", file=sys.stderr)
    return EXIT_BAD


def load_bounds(path: str | None) -> PolicyBounds | None:
    """The bounds in a policy_bounds.toml (the district's, or a `[policy_bounds]` table of a station.toml)."""
    if path is None:
        return None
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise policies.PolicyFileError(path, [f"cannot read it: {e.strerror}"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise policies.PolicyFileError(path, [f"not valid TOML: {e}"]) from None
    if "station" in data or "policy_bounds" in data:  # a station.toml (or a [policy_bounds] table): its bounds
        data = data.get("policy_bounds", {})
    try:
        return PolicyBounds.model_validate(data)
    except ValidationError as e:
        raise policies.PolicyFileError(path, format_validation_error(e, PolicyBounds)) from None


def _target_of(raw: bytes) -> Scope:
    try:
        target = json.loads(raw).get("target")
        return Scope.parse(target) if isinstance(target, str) else Scope("any")
    except (ValueError, AttributeError, TopicError, RecursionError):
        return Scope("any")  # the file's own problem is reported by prepare()


def run_check(args) -> int:
    scope = _scope(args.scope)
    try:
        bounds = load_bounds(args.bounds)
        raw = policies.read_file(args.file)
        if scope is None:  # no --scope: hold the file to its own target (or any scope when it names none)
            scope = _target_of(raw)
        prepared = policies.prepare(raw, scope, args.file, bounds=bounds, issued=datetime.now().astimezone())
    except policies.PolicyFileError as e:
        return _refused("check", e)
    doc = prepared.doc
    print(f"{args.file}: policy v{doc.version} ({doc.id}) is valid"
          + (f", inside the bounds ({bounds.describe()})" if bounds else " (no bounds given: firmware limits only)"))
    for line in policies.describe(doc):
        print(line)
    return EXIT_OK


def run_push(args) -> int:
    scope = _scope(args.scope)
    if not args.broker and not args.dry_run:
        raise UsageError("--broker URL is required (or --dry-run to only check and sign)")
    if args.watch is not None and (args.watch <= 0 or args.dry_run):
        raise UsageError("--watch needs a positive number of seconds, and no --dry-run")
    try:
        bounds = load_bounds(args.bounds)
        prepared = policies.prepare(policies.read_file(args.file), scope, args.file, bounds=bounds,
                                    issued=datetime.now().astimezone())
        key = load_signing_key(args.key)
        envelope = policies.seal_checked(prepared, key)
    except policies.PolicyFileError as e:
        return _refused("push", e)
    except KeyFileError as e:
        return _fail("push", str(e))
    doc = prepared.doc
    ref = policies.ack_ref(doc.version)
    topic = scope.topic("policy")
    if not args.broker:
        _print_sent(doc, topic, key.kid, len(envelope), dry_run=True)
        return EXIT_OK
    try:
        with client_from_args(args) as client:
            printer = None
            if args.watch:
                printer = AckPrinter(policies.PolicyAckTracker(ref=ref, scope=scope))
                client.subscribe([scope.station_filter("ack")], printer.on_message)
            problem = policies.version_problem(policies.retained_policy(client, scope), doc.version)
            if problem:
                return _fail("push", problem)
            if args.dry_run:
                _print_sent(doc, topic, key.kid, len(envelope), dry_run=True)
                return EXIT_OK
            policies.publish(client, scope, envelope)
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


def _print_sent(doc, topic: str, kid: str, size: int, *, dry_run: bool) -> None:
    verb = "would publish" if dry_run else "published"
    print(f"policy v{doc.version} ({doc.id}) for {doc.target}: {len(doc.policy.windows)} window(s), signed by "
          f"{kid}, {size} bytes")
    for line in policies.describe(doc):
        print(line)
    tail = "" if dry_run else " (broker acknowledged)"
    print(f"{verb} retained to {topic}{tail}; stations ack it as {policies.ack_ref(doc.version)}", file=sys.stderr)


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
            retained = policies.retained_policy(client, scope, trusted_keys=trusted)
    except MqttError as e:
        return _fail("show", str(e))
    topic = scope.topic("policy")
    if retained is None:
        print(f"no policy retained on {topic}", file=sys.stderr)
        return EXIT_BAD
    sig = {None: "not checked (give --trust)", True: "verified", False: f"NOT VERIFIED ({retained.problem})"}
    print(f"{topic}: policy v{retained.version if retained.version is not None else '?'}, "
          f"signature {sig[retained.verified]}")
    if retained.doc is None:
        print(f"  unreadable: {retained.problem}")
        return EXIT_BAD
    for line in policies.describe(retained.doc):
        print(line)
    return EXIT_BAD if retained.verified is False else EXIT_OK
