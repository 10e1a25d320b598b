"""Start a private mosquitto on a free loopback port: for tests, the demo and the fleet simulator.

The Debian package may also run a system broker on :1883; we never touch it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerError(f"mosquitto exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            # Poll the port, not sleep-and-hope: connect attempts are the condition we wait on.
            time.sleep(0.02)
    raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{port} within {timeout_s} s")


class Mosquitto:
    """A mosquitto process with its own config and data directory.

    `extra_conf` lines are appended to a minimal config (anonymous clients allowed on the plain listener
    unless the extra config says otherwise). Use as a context manager, or call start()/stop().
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        extra_conf: str = "",
        conf_text: str | None = None,
        workdir: str | os.PathLike | None = None,
        persistence: bool = True,
    ):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        self.exe = exe
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="loa-mosq-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf_path = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        if conf_text is None:
            conf_text = "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    f"persistence {'true' if persistence else 'false'}",
                    f"persistence_location {self.dir}/",
                    # As root, mosquitto drops to user "mosquitto", which cannot write persistence into our
                    # root-owned temp dir ("Error: Permission denied"): sessions were lost on every restart.
                    "user root" if os.geteuid() == 0 else "",
                    "max_queued_messages 100000",
                    # Alerts are small messages that must not wait: without this, Nagle's algorithm on the
                    # broker's socket held about one alert in two back by ~40 ms (measured, preempt_latency).
                    "set_tcp_nodelay true",
                    "log_type error",
                    "log_type warning",
                    extra_conf,
                    "",
                ]
            )
        self.conf_path.write_text(conf_text)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> Mosquitto:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.exe, "-c", str(self.conf_path)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        _wait_listening(self.port, self.proc, timeout_s)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Crash the broker (SIGKILL): no clean shutdown, no persistence flush."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()
