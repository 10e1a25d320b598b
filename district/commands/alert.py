"""`loa-district alert`: build, sign and publish an emergency alert (retained, expiring with the alert).

    loa-district alert --scope hoa-vang/hoa-bac --status exercise --text "Diễn tập..." --expires 30m \
        --key keys/ed25519-....key --broker mqtts://broker:8883 --cafile ca.crt --cert sender.crt --cert-key sender.key

An `actual` alert first shows how many stations are in scope and asks the officer to type the scope back
(`--yes-actual` for scripts; without a terminal and without the flag it refuses). `--update ID` sends an update
that replaces the active alert ID (same scope and status): refused unless ID is the alert retained on the
scope's topic now, since a station that no longer has ID would play the update as a new alert. The alert id is printed on
stdout (everything else goes to stderr), so `ID=$(loa-district alert ...)` works.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from district import alerts
from district.cap import CapError, parse_cap
from district.mqtt import MqttError, add_broker_arguments, client_from_args
from firmware.cli_support import UsageError
from firmware.protocol.alert import AlertPayload, AudioRef, describe_errors, new_alert_payload
from firmware.protocol.keys import KeyFileError, SigningKey, load_signing_key
from firmware.protocol.topics import Scope, TopicError

SEVERITIES = ("extreme", "severe", "moderate", "minor", "unknown")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "alert",
        help="send a signed emergency alert (test / exercise / actual) to a district, commune or station",
        description="Publish a signed alert, retained with MQTT 5 message expiry equal to the alert's expiry. "
        "Audio: --audio FILE with --audio-url URL (already served there) or with --content-dir DIR "
        "--content-base-url URL (copied into the served directory as <sha256>.<ext>).",
    )
    p.add_argument("--scope", required=True, help="district, district/commune or district/commune/station")
    p.add_argument("--status", choices=("test", "exercise", "actual"), help="required unless --cap gives it")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="message spoken by the stations (Vietnamese TTS)")
    what.add_argument("--audio", metavar="FILE", help="audio file to play")
    what.add_argument("--cap", metavar="FILE", help="a CAP 1.2 XML alert to convert")
    p.add_argument("--audio-url", metavar="URL", help="where the stations fetch --audio from")
    p.add_argument("--content-dir", metavar="DIR", help="served directory to copy --audio into")
    p.add_argument("--content-base-url", metavar="URL", help="base URL of --content-dir as stations see it")
    p.add_argument("--severity", choices=SEVERITIES, help="CAP severity (default unknown, or the CAP's)")
    p.add_argument("--headline", help="short title for logs and dashboards")
    p.add_argument("--expires", default=None, help="lifetime: 90s, 30m, 2h, 1d (default 30m, or the CAP's)")
    p.add_argument("--repeat", type=int, default=3, help="times the message is played, 1-10 (default 3)")
    p.add_argument("--no-tone", action="store_true", help="no attention signal before the message")
    p.add_argument("--key", required=True, metavar="KEY", help="district signing key (<kid>.key)")
    p.add_argument("--yes-actual", action="store_true", help="send an actual alert without asking (scripts)")
    p.add_argument("--update", metavar="ID",
                   help="replace the active alert ID with this message (msg_type update; same --scope and --status)")
    add_broker_arguments(p)
    p.set_defaults(func=run)


def _audio(args) -> AudioRef | None:
    if not args.audio:
        if args.audio_url or args.content_dir or args.content_base_url:
            raise UsageError("--audio-url/--content-dir/--content-base-url go with --audio FILE")
        return None
    try:
        return alerts.audio_ref(
            args.audio,
            audio_url=args.audio_url,
            content_dir=args.content_dir,
            content_base_url=args.content_base_url,
        )
    except (ValueError, OSError) as e:
        raise UsageError(str(e)) from None


def _payload(args, scope: Scope, audio: AudioRef | None, now: datetime, alert_id: str | None) -> AlertPayload:
    """Build (and validate) the payload at `now`; called once before connecting and again just before sending."""
    expires_in = alerts.parse_duration(args.expires or "30m")
    if args.cap:
        return _cap_payload(args, scope, now)
    return alerts.build_alert(
        scope=scope,
        status=args.status,
        now=now,
        expires_in=expires_in,
        text=args.text or "",
        audio=audio,
        severity=args.severity or "unknown",
        headline=args.headline or "",
        repeat=args.repeat,
        tone=not args.no_tone,
        alert_id=alert_id,
        updates=args.update,
    )


def check_update_target(held: dict | None, alert_id: str, status: str, topic: str) -> str | None:
    """Why an update of `alert_id` must not be sent, given the (unverified) payload retained on the scope's
    alert topic; None when it may."""
    if held is None:
        return f"no alert is retained on {topic} (expired or never sent there): nothing to update"
    if held.get("msg_type") == "cancel" and alert_id in (held.get("references") or []):
        return f"alert {alert_id} was cancelled ({held.get('id')}): send a new alert instead"
    if held.get("id") != alert_id:
        return (f"alert {alert_id} is not the one active on {topic} (that is {held.get('msg_type')} "
                f"{held.get('id')}): update that one, or send a new alert")
    if held.get("status") != status:
        return f"alert {alert_id} is {held.get('status')}, not {status}: an update keeps the status"
    return None


def _cap_payload(args, scope: Scope, now: datetime) -> AlertPayload:
    try:
        cap = parse_cap(Path(args.cap).read_bytes())
    except OSError as e:
        raise UsageError(f"--cap {args.cap}: {e.strerror}") from None
    except CapError as e:
        raise UsageError(f"--cap {args.cap}: {e}") from None
    if args.status and args.status != cap.status:
        raise UsageError(f"--status {args.status} contradicts the CAP status {cap.status}")
    expires = cap.expires or cap.sent + alerts.parse_duration(args.expires or "30m")
    if args.expires and cap.expires:
        raise UsageError("--expires contradicts the CAP <expires>; leave it out")
    if expires <= now:
        raise UsageError(f"--cap {args.cap}: the CAP alert expired at {expires.isoformat()}")
    if cap.sent > now + timedelta(minutes=5):
        raise UsageError(f"--cap {args.cap}: sent {cap.sent.isoformat()} is in the future")
    for note in cap.notes:
        print(f"note: {note}", file=sys.stderr)
    for uri in cap.audio_uris:
        print(
            f"note: audio resource {uri} not used (CAP digests are SHA-1, stations verify sha256); "
            "the text is spoken instead",
            file=sys.stderr,
        )
    return new_alert_payload(
        id=cap.identifier,
        issued=cap.sent,
        expires=expires,
        status=cap.status,
        msg_type=cap.msg_type,
        target=str(scope),
        references=cap.references,
        severity=args.severity or cap.severity,
        headline=args.headline or cap.headline,
        text=cap.text,
        repeat=args.repeat,
        tone=not args.no_tone,
    )


def confirm_actual(scope: Scope, stations: dict[str, str], payload: AlertPayload, *, yes: bool) -> bool:
    online = sum(1 for s in stations.values() if s == "online")
    print(
        f"ACTUAL ALERT (not a test) for {scope.level} {scope}: {len(stations)} stations known in scope, "
        f"{online} online, {len(stations) - online} not online.",
        file=sys.stderr,
    )
    print(f"  severity {payload.severity}; headline: {payload.headline or '-'}", file=sys.stderr)
    print(f"  text: {payload.text[:200] or '(audio)'}", file=sys.stderr)
    if yes:
        print("  --yes-actual given: sending without asking.", file=sys.stderr)
        return True
    if not sys.stdin or not sys.stdin.isatty():
        print(
            "refusing to send an actual alert: no terminal to confirm on (use --yes-actual in scripts)",
            file=sys.stderr,
        )
        return False
    print(f"Type the scope ({scope}) to send it, anything else aborts: ", end="", file=sys.stderr, flush=True)
    typed = sys.stdin.readline().strip()
    if typed != str(scope):
        print(f"aborted: you typed {typed!r}, not {str(scope)!r}. Nothing was sent.", file=sys.stderr)
        return False
    return True


def run(args) -> int:
    try:
        scope = Scope.parse(args.scope)
    except TopicError as e:
        raise UsageError(f"--scope: {e}") from None
    if not args.cap and not args.status:
        raise UsageError("--status test|exercise|actual is required")
    if args.cap and args.update:
        raise UsageError("--update goes with --text/--audio; a CAP update names what it updates in <references>")
    if not 1 <= args.repeat <= 10:
        raise UsageError(f"--repeat must be 1-10, got {args.repeat}")
    try:
        key: SigningKey = load_signing_key(args.key)
    except KeyFileError as e:
        raise UsageError(str(e)) from None
    audio = _audio(args)
    try:
        draft = _payload(args, scope, audio, datetime.now().astimezone(), None)
    except ValueError as e:  # bad duration, or the payload model refused it
        detail = describe_errors(e) if isinstance(e, ValidationError) else str(e)
        raise UsageError(f"cannot build the alert: {detail}") from None
    try:
        with client_from_args(args) as client:
            if args.update:
                problem = check_update_target(alerts.retained_alert(client, scope), args.update, draft.status,
                                              scope.topic("alert"))
                if problem:
                    print(f"loa-district alert: not sent: {problem}", file=sys.stderr)
                    return 1
            if draft.status == "actual":
                stations = alerts.census(client, scope)
                if not confirm_actual(scope, stations, draft, yes=args.yes_actual):
                    return 1
            # Issued now, after any confirmation; a CAP alert keeps its own id and times.
            now = datetime.now().astimezone()
            payload = draft if args.cap else _payload(args, scope, audio, now, draft.id)
            topic = alerts.publish_alert(client, payload, key, now)
    except MqttError as e:
        print(f"loa-district alert: {e}", file=sys.stderr)
        return 1
    print(
        f"sent {payload.status} {payload.msg_type} {payload.id} to {topic} (retained, expires "
        f"{payload.expires.isoformat(timespec='seconds')}, key {key.kid})",
        file=sys.stderr,
    )
    print(payload.id)
    return 0
