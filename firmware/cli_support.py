"""Command-line plumbing shared by loa-station, loa-sim, loa-district and loa-provision.

Each command lives in its own module inside a `commands` package and exposes
`register(subparsers) -> None`, which adds one sub-parser with `set_defaults(func=run)`; `run(args) -> int`
returns the exit code. Modules are discovered, so adding a command never edits a shared file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence


class UsageError(Exception):
    """A wrong argument: printed as `prog: error: ...`, exit 2."""


def load_schedule_or_report(path: str):
    """For commands taking `--schedule FILE`: the document, or None after printing every problem to stderr
    (the caller exits 1). A file that cannot be read is a usage error (exit 2) naming the file."""
    from pathlib import Path

    from firmware.core.schedule import ScheduleError, parse_schedule

    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"--schedule {path}: {e.strerror or e}") from None
    try:
        return parse_schedule(raw, path)
    except ScheduleError as e:
        print(str(e), file=sys.stderr)
        return None


def build_parser(prog: str, description: str, package: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def run_main(prog: str, description: str, package: str, argv: Sequence[str] | None = None) -> int:
    parser = build_parser(prog, description, package)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        parser.exit(2, f"{prog}: error: {e}\n")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `loa-station ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0
