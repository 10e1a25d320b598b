"""`python -m benchmarks` runs every benchmark; `python -m benchmarks NAME [ARGS]` runs benchmarks/NAME.py."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("benchmarks:", ", ".join(names()))
        return 0
    if argv:
        name, rest = argv[0], argv[1:]
        if name not in names():
            print(f"no benchmark {name!r} (have: {', '.join(names())})", file=sys.stderr)
            return 2
        return int(importlib.import_module(f"benchmarks.{name}").main(rest) or 0)
    worst = 0
    for name in names():
        print(f"== {name}", flush=True)
        try:
            worst = max(worst, int(importlib.import_module(f"benchmarks.{name}").main([]) or 0))
        except SystemExit as e:  # a benchmark that exits (e.g. a missing tool) must not end the table
            if e.code not in (0, None):
                print(f"{name}: stopped: {e.code}", flush=True)
                worst = max(worst, 1)
        except Exception as e:  # one broken benchmark must not hide the others' figures
            print(f"{name}: failed: {type(e).__name__}: {e}", flush=True)
            worst = max(worst, 1)
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
