"""firmware/core must stay a pure function of events and time: no clocks, threads or I/O."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "firmware" / "core"
FORBIDDEN_MODULES = {"time", "threading", "socket", "subprocess", "asyncio", "os", "sqlite3", "paho", "gpiozero",
                     "pyaudio", "requests", "urllib", "http", "random", "uuid", "shutil", "pathlib", "io",
                     "tomllib", "logging", "firmware.adapters", "firmware.audio", "firmware.config"}
FORBIDDEN_CALLS = {"now", "today", "utcnow", "monotonic", "perf_counter", "sleep", "open"}  # datetime.time() is pure


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for n in names:
            if any(n == m or n.startswith(m + ".") for m in FORBIDDEN_MODULES):
                out.append(f"{path.name}:{node.lineno} imports {n}")
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name in FORBIDDEN_CALLS:
                out.append(f"{path.name}:{node.lineno} calls {name}()")
    return out


def test_core_imports_no_clock_thread_or_io_module():
    files = sorted(CORE.glob("*.py"))
    assert len(files) >= 8
    problems = [v for f in files for v in _violations(f)]
    assert problems == []


def test_the_checker_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom datetime import datetime\nx = datetime.now()\nimport paho.mqtt.client\n")
    assert len(_violations(bad)) == 3  # two imports and one clock read
