"""`loa-district console`: the district web console (fleet, stations, alerts, acks, audit log).

    loa-district console --db district.sqlite --broker mqtts://broker:8883 --cafile ca.crt --cert c.crt \
        --cert-key c.key --key keys/ed25519-....key [--bind 127.0.0.1] [--port 8080] [--lang vi|en] \
        [--content-dir /srv/loa/content --content-base-url https://content.example/loa] [--trusted-proxy IP ...]

Staff accounts come from `loa-district user add NAME --db ...`. Runs until SIGTERM or Ctrl-C (uvicorn serves
the Starlette app on a background thread, see district/console/server.py). Serve it on loopback and put a TLS
reverse proxy in front for anything else (then add --secure-cookie); see docs/console.md.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from district.console.accounts import parse_trusted_proxies
from district.console.i18n import LANGS
from district.console.server import ConsoleServer, Settings
from district.console.service import Console
from district.console.store import ConsoleStore
from district.db import DistrictDb
from district.mqtt import MqttError, add_broker_arguments, client_from_args
from firmware.cli_support import UsageError
from firmware.protocol.keys import KeyFileError, load_signing_key

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "console",
        help="web console for district staff: fleet, stations, alerts with acks, audit log",
        description="Serve the district console over HTTP (server-rendered pages, Vietnamese by default).",
    )
    p.add_argument("--db", required=True, metavar="FILE", help="district SQLite database (shared with `collect`)")
    p.add_argument("--key", required=True, metavar="KEY", help="district signing key (<kid>.key) for alerts")
    add_broker_arguments(p)
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    p.add_argument("--lang", choices=LANGS, default="vi", help="default interface language (default vi)")
    p.add_argument("--tz", default="Asia/Ho_Chi_Minh", help="time zone for displayed times")
    p.add_argument("--content-dir", metavar="DIR", help="served directory where uploaded alert audio is stored")
    p.add_argument("--content-base-url", metavar="URL", help="base URL of --content-dir as stations see it")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest audio upload (default 20 MB)")
    p.add_argument("--secure-cookie", action="store_true", help="mark cookies Secure (behind an HTTPS proxy)")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="IP",
                   help="address (or network) of a reverse proxy whose X-Forwarded-For is believed; repeatable")
    p.add_argument("--session-hours", type=float, default=12.0, help="session lifetime (default 12 h)")
    p.set_defaults(func=run)


def run(args) -> int:
    if bool(args.content_dir) != bool(args.content_base_url):
        raise UsageError("--content-dir and --content-base-url go together")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a port")
    if not 0 < args.max_upload_mb <= 500:
        raise UsageError("--max-upload-mb must be in (0, 500]")
    if not 0 < args.session_hours <= 24 * 7:
        raise UsageError("--session-hours must be in (0, 168]")
    try:
        trusted = parse_trusted_proxies(args.trusted_proxy)
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        key = load_signing_key(args.key)
    except KeyFileError as e:
        raise UsageError(str(e)) from None
    from district.commands.status import zone

    zone(args.tz)
    db = DistrictDb(args.db)
    store = ConsoleStore(args.db)
    try:
        client = client_from_args(args, client_id=None).connect()
    except MqttError as e:
        print(f"loa-district console: {e}", file=sys.stderr)
        db.close()
        store.close()
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    console = Console(db, store, key, client, content_dir=args.content_dir, content_base_url=args.content_base_url)
    settings = Settings(lang=args.lang, tz=args.tz, max_upload_bytes=int(args.max_upload_mb * 1e6),
                        secure_cookie=args.secure_cookie, session_s=args.session_hours * 3600)
    try:
        console.follow_stations()
        server = ConsoleServer(console, store, settings, bind=args.bind, port=args.port,
                               trusted_proxies=args.trusted_proxy).start()
    except (MqttError, OSError) as e:
        print(f"loa-district console: {e}", file=sys.stderr)
        client.close()
        db.close()
        store.close()
        return 1
    if not store.users():
        print(f"no staff account yet: create one with `loa-district user add NAME --db {args.db}`", file=sys.stderr)
    if trusted:
        print("believing X-Forwarded-For from " + ", ".join(map(str, trusted)), file=sys.stderr)
    if args.bind not in ("127.0.0.1", "::1", "localhost") and not args.secure_cookie:
        print("warning: serving beyond loopback without --secure-cookie; put it behind HTTPS", file=sys.stderr)
    print(f"console on {server.url} (broker {client.url}, key {key.kid}); Ctrl-C to stop", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
        client.close()
        db.close()
        store.close()
    return 0
