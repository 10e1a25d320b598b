"""`loa-district library add|list|remove`: the content library (Thư viện âm thanh) from the command line.

    loa-district library add tin-sang.m4a --title "Bản tin sáng" --category tin --uploader lan \
        --db district.sqlite --content-dir content/ [--target-lufs -16]
    loa-district library list --db district.sqlite --content-dir content/
    loa-district library remove <sha256 or its first 12+ characters> --db ... --content-dir ... \
        [--schedule week-48.json ...]

`add` decodes the file end to end, measures it (BS.1770 integrated loudness and true peak) and stores it by
sha256 with the gain that brings it to the target loudness. `remove` refuses an item that one of the given
schedule files uses, naming them. Exit status: 0 done; 1 refused (the reason on one line); 2 bad arguments.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from district.library import TARGET_LUFS, Library, LibraryError, safe_filename


def register(subparsers) -> None:
    p = subparsers.add_parser("library", help="content library: add (decode, measure loudness), list, remove",
                              description="Audio items stored by sha256, measured by ITU-R BS.1770.")
    sub = p.add_subparsers(dest="library_action", metavar="ACTION", required=True)

    def where(q) -> None:
        q.add_argument("--db", required=True, help="district SQLite database")
        q.add_argument("--content-dir", required=True, help="the content directory the content server serves")
        q.add_argument("--target-lufs", type=float, default=TARGET_LUFS, help="target loudness (default -16)")

    add = sub.add_parser("add", help="decode, measure and store an audio file")
    add.add_argument("file", metavar="FILE")
    add.add_argument("--title", required=True)
    add.add_argument("--category", default="")
    add.add_argument("--uploader", default="cli")
    where(add)
    add.set_defaults(func=run_add)
    ls = sub.add_parser("list", help="list the items")
    ls.add_argument("--category")
    where(ls)
    ls.set_defaults(func=run_list)
    rm = sub.add_parser("remove", help="remove an item no schedule uses")
    rm.add_argument("sha", metavar="SHA256")
    rm.add_argument("--schedule", nargs="*", default=[], metavar="JSON", help="schedule files to check first")
    where(rm)
    rm.set_defaults(func=run_remove)


def _fail(action: str, message: str) -> int:
    print(f"loa-district library {action}: {message}", file=sys.stderr)
    return 1


def _open(args) -> Library:
    return Library(args.db, args.content_dir, target_lufs=args.target_lufs)


def _line(i) -> str:
    note = f"  {i.note}" if i.note else ""
    return (f"{i.sha256[:12]}  {i.title}  [{i.category or '-'}]  {i.duration_s:.1f} s  "
            f"{i.integrated_lufs:.1f} LUFS  peak {i.true_peak_dbtp:.1f} dBTP  gain {i.gain_db:+.1f} dB  "
            f"{i.uploader}  {i.format}{note}")


def run_add(args) -> int:
    try:
        with _open(args) as lib:
            item = lib.ingest(Path(args.file), safe_filename(Path(args.file).name), title=args.title,
                              category=args.category, uploader=args.uploader)
    except (LibraryError, OSError) as e:
        return _fail("add", f"{safe_filename(args.file)}: {e}")
    print(_line(item))
    return 0


def run_list(args) -> int:
    try:
        with _open(args) as lib:
            items = lib.list(args.category)
    except (LibraryError, OSError) as e:
        return _fail("list", str(e))
    for i in items:
        print(_line(i))
    print(f"{len(items)} item(s)", file=sys.stderr)
    return 0


def run_remove(args) -> int:
    try:
        docs = [json.loads(Path(p).read_bytes()) for p in args.schedule]
    except (OSError, ValueError) as e:
        return _fail("remove", f"cannot read the schedules: {e}")
    try:
        with _open(args) as lib:
            matches = [i for i in lib.list() if i.sha256.startswith(args.sha.lower())]
            if len(args.sha) < 12 or len(matches) != 1:
                return _fail("remove", f"{args.sha!r} names {len(matches)} items: give 12 or more characters")
            item = lib.remove(matches[0].sha256, docs)
    except (LibraryError, OSError) as e:
        return _fail("remove", str(e))
    print(f"removed {item.sha256[:12]} ({item.title})")
    return 0
