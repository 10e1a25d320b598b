"""Fixtures for provisioning tests: a district made by the CLI, and the real mosquitto it configures."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from provisioning.cli import main
from simulator.broker import Mosquitto, free_port
from tests.provisioning.mqttprobe import Probe


def cli(*args: str) -> int:
    return main([str(a) for a in args])


@pytest.fixture
def district_dir(tmp_path) -> Path:
    d = tmp_path / "district"
    assert cli("init-district", "--district", "lx", "--out", d) == 0
    return d


def _hand_to_mosquitto(*paths: Path) -> None:
    """mosquitto started as root drops to its own user before reading keys: give it what it must read,
    as the docs tell the district admin to do (`install -o mosquitto -m 0600 server.key`)."""
    if os.geteuid() != 0:
        return
    try:
        pw = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    for p in paths:
        os.chown(p, pw.pw_uid, pw.pw_gid)


class TlsBroker:
    """The district broker as `broker-config` writes it, running on a free loopback port."""

    def __init__(self, district_dir: Path, workdir: Path, acl: str = "file"):
        self.district_dir = district_dir
        self.acl = acl
        self.workdir = workdir
        self.port = free_port()
        self.mosq: Mosquitto | None = None
        self.probes: list[Probe] = []
        self.cond = threading.Condition()

    def start(self) -> TlsBroker:
        conf = self.workdir / "conf"
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        rc = cli(
            "broker-config", "--district-dir", self.district_dir, "--out", conf, "--port", self.port,
            "--bind", "127.0.0.1", "--persistence-dir", f"{data}/", "--log-dest", "stderr", "--acl", self.acl,
        )
        assert rc == 0
        _hand_to_mosquitto(conf / "server.key", data)
        self.mosq = Mosquitto(port=self.port, conf_text=(conf / "mosquitto.conf").read_text(),
                              workdir=self.workdir / "run")
        self.mosq.start()
        return self

    def has_account(self, username: str) -> bool:
        conf = self.workdir / "conf"
        if self.acl == "dynsec":
            doc = json.loads((conf / "dynamic-security.json").read_text())
            return any(c["username"] == username for c in doc["clients"])
        return f"user {username}" in (conf / "acl").read_text().splitlines()

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        for p in self.probes:
            p.close()
        self.probes.clear()
        if self.mosq:
            self.mosq.stop()

    def client(self, cert: Path, key: Path, client_id: str) -> Probe:
        p = Probe(self.port, self.district_dir / "ca/ca.crt", cert, key, client_id, self.cond)
        self.probes.append(p)
        return p

    def station(self, station: str) -> Probe:
        tls = self.district_dir / "stations" / station / "tls"
        return self.client(tls / "station.crt", tls / "station.key", station)

    def account(self, kind: str) -> Probe:
        a = self.district_dir / "accounts"
        return self.client(a / f"{kind}.crt", a / f"{kind}.key", f"{kind}-probe")


def acl_modes() -> list:
    """Both ACL back-ends; the dynamic-security one only where mosquitto ships its plugin."""
    from provisioning.dynsec import PLUGIN_GLOBS

    have_plugin = any(glob.glob(p) for p in PLUGIN_GLOBS)
    return ["file", pytest.param("dynsec", marks=pytest.mark.skipif(not have_plugin, reason="no dynsec plugin"))]


@pytest.fixture(params=acl_modes())
def tls_broker(district_dir, request):
    # Not under pytest's tmp_path: that is 0700 root, and mosquitto (dropped to its own user) must reach its files.
    workdir = Path(tempfile.mkdtemp(prefix="loa-prov-broker-"))
    workdir.chmod(0o755)
    b = TlsBroker(district_dir, workdir, request.param)
    try:
        yield b
    finally:
        b.stop()
        shutil.rmtree(workdir, ignore_errors=True)
