"""startup: `loa-station run` from process start to systemd's READY=1, on a station config with no GPIO and
a WAV sink (no hardware here). Goal (issue 3): <= 1 s. Printed beside the limit, with the bare interpreter's
own start-up (`python -c pass`) for scale, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import row


def _config(d: Path) -> Path:
    from firmware.protocol.keys import generate, trust_anchor_json

    (d / "trust.json").write_bytes(trust_anchor_json([generate("sb").anchor()]))
    cfg = d / "station.toml"
    cfg.write_text(f"""
[station]
district = "sb"
commune = "sc"
id = "ss"
[[policy.windows]]
start = "05:30"
end = "07:00"
[audio]
wav_out = "{d / 'out.wav'}"
[gpio]
enabled = false
[trust]
key_files = ["{d / 'trust.json'}"]
[paths]
state_dir = "{d / 'state'}"
""")
    return cfg


def once(cfg: Path, d: Path, i: int) -> float:
    sock_path = str(d / f"notify-{i}.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(sock_path)
    srv.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": sock_path}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            msg = srv.recv(4096).decode()
            if msg.startswith("READY=1"):
                return time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        srv.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks startup", description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    d = Path(tempfile.mkdtemp(prefix="loa-startup-"))
    cfg = _config(d)
    once(cfg, d, -1)  # warm the page cache and .pyc files, not measured
    times = [once(cfg, d, i) for i in range(args.runs)]
    bare = []
    for _ in range(args.runs):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.monotonic() - t0)
    med = statistics.median(times)
    print(f"startup: {args.runs} runs, process start -> READY=1: median {med:.3f} s, max {max(times):.3f} s; "
          f"bare interpreter {statistics.median(bare):.3f} s")
    row("process start -> READY (median)", med, 1.0, unit="s", peer_name="limit", goal=1.0)
    row("process start -> READY (worst)", max(times), 1.0, unit="s", peer_name="limit", goal=1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
