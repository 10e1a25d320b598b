"""`loa-district content serve DIR` and `loa-district content add FILE --dir DIR`."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess

from firmware.cli_support import UsageError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser("content", help="serve programme audio to stations; add files to a served directory")
    sub = p.add_subparsers(dest="content_command", metavar="ACTION", required=True)

    serve = sub.add_parser("serve", help="quick-start HTTP server with Range support (production: nginx)")
    serve.add_argument("dir", metavar="DIR", help="directory of <sha256>.<ext> files")
    serve.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 picks a free one)")
    serve.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.set_defaults(func=run_serve)

    add = sub.add_parser("add", help="copy FILE into DIR as <sha256>.<ext>; print url, sha256, size")
    add.add_argument("file", metavar="FILE")
    add.add_argument("--dir", required=True, metavar="DIR", help="the served directory")
    add.add_argument("--base-url", default="http://127.0.0.1:8080",
                     help="base URL the stations fetch DIR from (default http://127.0.0.1:8080)")
    add.add_argument("--json", action="store_true", help="print one JSON object instead of TOML lines")
    add.set_defaults(func=run_add)


def run_serve(args) -> int:
    from district.content import ContentServer

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    try:
        server = ContentServer(args.dir, bind=args.bind, port=args.port)
    except (NotADirectoryError, OSError) as e:
        raise UsageError(str(e)) from e
    print(f"serving {server.root} at {server.url}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


def run_add(args) -> int:
    from district.content import add_file

    try:
        dest, sha, size = add_file(args.file, args.dir)
    except (FileNotFoundError, OSError) as e:
        raise UsageError(str(e)) from e
    url = f"{args.base_url.rstrip('/')}/{dest.name}"
    duration = _duration_s(dest)
    if args.json:
        print(json.dumps({"url": url, "sha256": sha, "size": size, "duration_s": duration}))
    else:
        print(f'url = "{url}"')
        print(f'sha256 = "{sha}"')
        print(f"size = {size}")
        if duration is not None:
            print(f"duration_s = {duration:.1f}")
        else:
            print(f"# warning: ffprobe could not read {dest.name} as audio")
    return 0


def _duration_s(path) -> float | None:
    """The audio duration by ffprobe, or None (not audio, or ffprobe missing): a hint, not a check."""
    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
            capture_output=True, text=True, timeout=30, check=False,
        )
        return float(out.stdout.strip())
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
