"""`bundle`: the boot-partition files, and the first-boot script run in a sandbox (fake root, no system commands)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from provisioning.fsutil import tree_snapshot
from tests.provisioning.conftest import cli

REPO = Path(__file__).resolve().parents[2]
SSH_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5yQ0Yb1qgkJ7n1f6S3u8kB2oZJm8ZQ8m0sQ4f3m1a tech@district\n"


@pytest.fixture
def provisioned(district_dir, tmp_path):
    assert cli("station", "--district-dir", district_dir, "--commune", "c1", "--station", "s1") == 0
    key = tmp_path / "tech.pub"
    key.write_text(SSH_PUB)
    wheel = tmp_path / "loa-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel: firstboot only installs it outside the sandbox")
    return district_dir, key, wheel


def _bundle(district_dir, out, *extra):
    return cli("bundle", "--district-dir", district_dir, "--station", "s1", "--out", out, *extra)


def _run_firstboot(bundle: Path, root: Path, *args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(bundle / "firstboot.sh"), *args],
        env={**os.environ, "LOA_ROOT": str(root), "LOA_SANDBOX": "1", **env},
        capture_output=True, text=True, timeout=60,
    )


def test_bundle_holds_config_keys_trust_unit_script_and_wheel(provisioned, tmp_path):
    district_dir, key, wheel = provisioned
    out = tmp_path / "bundle"
    assert _bundle(district_dir, out, "--ssh-key", key, "--wheel", wheel) == 0
    b = out / "loa"
    names = {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()}
    kid = next((district_dir / "signing").glob("*.pub")).name
    assert names == {
        "firstboot.sh", "bundle.env", "bundle.json", "SHA256SUMS", "station.toml", "nftables.conf",
        "tls/ca.crt", "tls/station.crt", "tls/station.key", f"trust/{kid}", "systemd/loa-station.service",
        "ssh/authorized_keys", f"dist/{wheel.name}",
    }
    assert stat.S_IMODE((b / "tls/station.key").stat().st_mode) == 0o600
    assert (b / "station.toml").read_bytes() == (district_dir / "stations/s1/station.toml").read_bytes()
    assert "LOA_HOSTNAME=loa-s1" in (b / "bundle.env").read_text()
    assert (b / "ssh/authorized_keys").read_text() == SSH_PUB
    assert "tcp dport 8883 accept" in (b / "nftables.conf").read_text()


def test_the_bundled_unit_is_the_repository_unit():
    assert (REPO / "provisioning/data/loa-station.service").read_text() == (REPO / "config/loa-station.service").read_text()
    unit = (REPO / "config/loa-station.service").read_text()
    for line in (
        "Type=notify", "WatchdogSec=30", "NotifyAccess=main", "Restart=on-failure",
        "ExecStart=/opt/loa/venv/bin/loa-station run --config /etc/loa/station.toml", "StateDirectory=loa",
        "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
        "SupplementaryGroups=audio gpio",
    ):
        assert line in unit.splitlines(), line


def test_unit_passes_systemd_analyze_verify(tmp_path):
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed")
    proc = subprocess.run([exe, "verify", str(REPO / "config/loa-station.service")], capture_output=True, text=True)
    problems = [
        ln for ln in (proc.stdout + proc.stderr).splitlines()
        if ln.strip() and "/opt/loa/venv/bin/loa-station" not in ln  # not installed on this machine
    ]
    assert problems == []


def test_firstboot_script_is_valid_shell():
    script = REPO / "provisioning/data/firstboot.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed")
    proc = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_firewall_ruleset_parses(provisioned, tmp_path):
    district_dir, key, wheel = provisioned
    nft = shutil.which("nft")
    if nft is None or os.geteuid() != 0:
        pytest.skip("nft not installed (or not root)")
    assert _bundle(district_dir, tmp_path / "b", "--ssh-key", key, "--wheel", wheel) == 0
    proc = subprocess.run([nft, "-c", "-f", str(tmp_path / "b/loa/nftables.conf")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_firstboot_installs_everything_once_and_is_idempotent(provisioned, tmp_path):
    district_dir, key, wheel = provisioned
    assert _bundle(district_dir, tmp_path / "b", "--ssh-key", key, "--wheel", wheel) == 0
    b, root = tmp_path / "b/loa", tmp_path / "root"
    first = _run_firstboot(b, root)
    assert first.returncode == 0, first.stdout + first.stderr
    etc = root / "etc"
    assert (etc / "loa/station.toml").read_bytes() == (district_dir / "stations/s1/station.toml").read_bytes()
    assert stat.S_IMODE((etc / "loa/tls/station.key").stat().st_mode) == 0o640
    assert not (b / "tls/station.key").exists()  # removed from the FAT partition once installed
    assert (etc / "hostname").read_text() == "loa-s1\n"
    assert "127.0.1.1\tloa-s1" in (etc / "hosts").read_text()
    assert os.readlink(etc / "localtime") == "/usr/share/zoneinfo/Asia/Ho_Chi_Minh"
    assert "RuntimeWatchdogSec=15" in (etc / "systemd/system.conf.d/loa-watchdog.conf").read_text()
    assert "NTP=0.vn.pool.ntp.org" in (etc / "systemd/timesyncd.conf.d/loa.conf").read_text()
    assert "PasswordAuthentication no" in (etc / "ssh/sshd_config.d/00-loa.conf").read_text()
    assert (root / "home/loa-admin/.ssh/authorized_keys").read_text() == SSH_PUB
    assert (etc / "systemd/system/loa-station.service").exists() and (etc / "nftables.conf").exists()
    log = (root / "var/log/loa-firstboot.log").read_text()
    for cmd in ("systemctl enable loa-station.service", "systemctl enable nftables.service",
                "systemctl enable systemd-timesyncd.service", f"pip install --upgrade {b}/dist/{wheel.name}",
                "systemctl restart loa-station.service", "loa-station check-config /etc/loa/station.toml"):
        assert f"sandbox: {cmd}" in log or cmd in log, cmd
    assert "station s1 configured" in first.stdout  # progress on the terminal too

    hook = (etc / "systemd/system/loa-firstboot.service").read_text()
    assert f"ExecStart=/bin/bash {b}/firstboot.sh --if-changed" in hook
    assert "sandbox: systemctl enable loa-firstboot.service" in log

    before = tree_snapshot(root / "etc")
    log_before = (root / "var/log/loa-firstboot.log").read_text()
    at_boot = _run_firstboot(b, root, "--if-changed")  # what loa-firstboot.service does at every boot
    assert at_boot.returncode == 0 and at_boot.stdout == ""
    assert (root / "var/log/loa-firstboot.log").read_text() == log_before  # applied already: not even a log line
    second = _run_firstboot(b, root)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing changed" in second.stdout
    assert "pip install" not in second.stdout and "restart loa-station" not in second.stdout
    assert tree_snapshot(root / "etc") == before


def test_firstboot_refuses_a_damaged_bundle(provisioned, tmp_path):
    district_dir, key, wheel = provisioned
    assert _bundle(district_dir, tmp_path / "b", "--ssh-key", key, "--wheel", wheel) == 0
    b = tmp_path / "b/loa"
    with open(b / "station.toml", "a") as f:
        f.write("# corrupted on the card\n")
    proc = _run_firstboot(b, tmp_path / "root")
    assert proc.returncode == 1
    assert "bundle files damaged" in proc.stdout
    assert not (tmp_path / "root/etc/loa").exists()


def test_new_trust_anchors_replace_retired_ones_on_reinstall(provisioned, tmp_path):
    district_dir, key, wheel = provisioned
    assert _bundle(district_dir, tmp_path / "b", "--ssh-key", key, "--wheel", wheel) == 0
    root = tmp_path / "root"
    assert _run_firstboot(tmp_path / "b/loa", root).returncode == 0
    old = {p.name for p in (root / "etc/loa/trust").iterdir()}
    for step in ((), ("--activate",), ("--retire",)):
        assert cli("rotate-signing-key", "--district-dir", district_dir, *step) == 0
    assert _bundle(district_dir, tmp_path / "b", "--ssh-key", key, "--wheel", wheel) == 0
    # a newer bundle copied onto the card is applied by the boot hook
    assert _run_firstboot(tmp_path / "b/loa", root, "--if-changed").returncode == 0
    new = {p.name for p in (root / "etc/loa/trust").iterdir()}
    assert len(new) == 1 and new.isdisjoint(old)


def test_bundle_builds_the_wheel_from_this_source_tree(provisioned, tmp_path):
    district_dir, key, _ = provisioned
    assert _bundle(district_dir, tmp_path / "b", "--ssh-key", key) == 0
    wheels = list((tmp_path / "b/loa/dist").glob("loa-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "firmware/cli.py" in names and "provisioning/data/firstboot.sh" in names
    sums = (tmp_path / "b/loa/SHA256SUMS").read_text()
    assert hashlib.sha256(wheels[0].read_bytes()).hexdigest() in sums


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (None, ("--station", "nope"), "not provisioned"),
        ("private", (), "PRIVATE key"),
        ("garbage", (), "not an OpenSSH public key"),
        ("foreign-out", (), "is not a loa bundle"),
    ],
)
def test_bundle_errors_are_clear_and_write_nothing(provisioned, tmp_path, capsys, setup, args, message):
    district_dir, key, wheel = provisioned
    out = tmp_path / "out"
    if setup == "private":
        key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nxxx\n-----END OPENSSH PRIVATE KEY-----\n")
    elif setup == "garbage":
        key.write_text("hello world\n")
    elif setup == "foreign-out":
        out.mkdir()
        (out / "photos.txt").write_text("keep me")
    before_out, before_district = tree_snapshot(out), tree_snapshot(district_dir)
    argv = ["bundle", "--district-dir", district_dir, "--station", "s1", "--out", out, "--ssh-key", key,
            "--wheel", wheel]
    if args:
        argv[argv.index("--station") + 1] = args[1]
    assert cli(*argv) == 1
    assert message in capsys.readouterr().err
    assert tree_snapshot(out) == before_out and tree_snapshot(district_dir) == before_district
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
