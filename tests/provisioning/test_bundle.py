"""`bundle`: the boot-partition files, and the first-boot script run in a sandbox (fake root, no system commands)."""

from __future__ import annotations

import hashlib
import json
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


# ---- every station of an inventory: `bundle --inventory` ---------------------------------------------------

INVENTORY = """commune,station,name,preset
hoa-bac,thon-1,Loa thôn 1,pi-hat-v1
hoa-lien,thon-2,"Loa thôn 2, chợ",relay-board-gpio17
"""


@pytest.fixture
def inventory(district_dir, tmp_path):
    """The inventory, provisioned with `bulk` as the walk-through does; a technician key and a stand-in wheel."""
    inv = tmp_path / "stations.csv"
    inv.write_text(INVENTORY, encoding="utf-8")
    assert cli("bulk", inv, "--district-dir", district_dir) == 0
    key = tmp_path / "tech.pub"
    key.write_text(SSH_PUB)
    wheel = tmp_path / "loa-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    return district_dir, inv, key, wheel


def _bundles(district_dir, inv, out, *extra):
    return cli("bundle", "--district-dir", district_dir, "--inventory", inv, "--out", out, *extra)


def _content(bundle_dir: Path) -> dict[str, bytes]:
    """A bundle's files, without the one thing that differs between two runs: bundle.json's creation time."""
    files = tree_snapshot(bundle_dir)
    manifest = json.loads(files.pop("loa/bundle.json"))
    assert manifest.pop("created")
    return {**files, "loa/bundle.json": json.dumps(manifest, sort_keys=True).encode()}


def test_inventory_bundles_every_station_with_progress_and_summary_and_again_unchanged(inventory, tmp_path, capsys):
    district_dir, inv, key, wheel = inventory
    capsys.readouterr()
    out = tmp_path / "bundles"
    assert _bundles(district_dir, inv, out, "--ssh-key", key, "--wheel", wheel) == 0
    printed = capsys.readouterr().out
    assert "1/2 hoa-bac/thon-1 created" in printed and "2/2 hoa-lien/thon-2 created" in printed
    assert "2 station(s) in" in printed and ": 2 created" in printed
    assert "\r" not in printed  # not a terminal: one plain line per station, as `bulk`
    assert sorted(p.name for p in out.iterdir()) == ["thon-1", "thon-2"]
    assert "LOA_HOSTNAME=loa-thon-2" in (out / "thon-2/loa/bundle.env").read_text()
    first = {s: _content(out / s) for s in ("thon-1", "thon-2")}

    assert _bundles(district_dir, inv, out, "--ssh-key", key, "--wheel", wheel) == 0  # replaced, like one bundle
    assert ": 2 unchanged" in capsys.readouterr().out
    assert {s: _content(out / s) for s in ("thon-1", "thon-2")} == first
    assert sorted(p.name for p in out.iterdir()) == ["thon-1", "thon-2"]  # nothing left aside


def test_each_inventory_bundle_is_exactly_the_single_station_bundle(inventory, tmp_path):
    district_dir, inv, key, wheel = inventory
    assert _bundles(district_dir, inv, tmp_path / "all", "--ssh-key", key, "--wheel", wheel, "--admin-user", "tech") == 0
    for station in ("thon-1", "thon-2"):
        one = tmp_path / "one" / station
        assert cli("bundle", "--district-dir", district_dir, "--station", station, "--out", one,
                   "--ssh-key", key, "--wheel", wheel, "--admin-user", "tech") == 0
        assert _content(tmp_path / "all" / station) == _content(one)


def test_inventory_bundles_share_one_wheel_built_reproducibly_from_this_source_tree(inventory, tmp_path):
    district_dir, inv, _, _ = inventory
    out = tmp_path / "bundles"
    assert _bundles(district_dir, inv, out, "--no-ssh-key") == 0
    wheels = [next((out / s / "loa/dist").glob("loa-*.whl")) for s in ("thon-1", "thon-2")]
    assert wheels[0].read_bytes() == wheels[1].read_bytes()
    entries = zipfile.ZipFile(wheels[0]).infolist()
    assert "firmware/cli.py" in [e.filename for e in entries]
    # no build time in the wheel: re-bundling an unchanged source tree gives the same bundle id, so a card
    # already made stays current (not re-applied by `firstboot.sh --if-changed`)
    assert {e.date_time for e in entries} == {(1980, 1, 1, 0, 0, 0)}


def _assert_nothing_written(tmp_path, out, district_dir, district_before):
    assert not out.exists()
    assert tree_snapshot(district_dir) == district_before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "commune,station,preset\nhoa-bac,thon-1,pi-hat-v9\nhoa-bac,thon-1,\nhoa-bac,Thon 3\n",
            ["line 2: unknown preset 'pi-hat-v9'", "line 3: station 'thon-1' already on line 2",
             "line 4: 2 field(s), expected 3"],
        ),
        ("commune,statoin\nhoa-bac,thon-1\n", ["line 1: unknown column(s) statoin", "line 1: missing required column(s) station"]),
    ],
)
def test_a_bad_inventory_is_reported_whole_with_line_numbers_and_nothing_is_written(
    inventory, tmp_path, capsys, text, expected
):
    district_dir, _, key, wheel = inventory
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    out, before = tmp_path / "bundles", tree_snapshot(district_dir)
    capsys.readouterr()
    assert _bundles(district_dir, bad, out, "--ssh-key", key, "--wheel", wheel) == 1
    err = capsys.readouterr().err
    for e in expected:
        assert e in err, err
    assert len([ln for ln in err.splitlines() if ln.startswith("  ")]) == len(expected), err
    _assert_nothing_written(tmp_path, out, district_dir, before)


def test_a_station_not_provisioned_yet_is_named_and_no_bundle_is_written(inventory, tmp_path, capsys):
    district_dir, inv, key, wheel = inventory
    with open(inv, "a", encoding="utf-8") as f:
        f.write("hoa-lien,thon-3,Loa thôn 3,no-gpio\n")  # added to the sheet after `bulk` ran
    out, before = tmp_path / "bundles", tree_snapshot(district_dir)
    capsys.readouterr()
    assert _bundles(district_dir, inv, out, "--ssh-key", key, "--wheel", wheel) == 1
    err = capsys.readouterr().err
    assert "line 4: station 'thon-3' is not provisioned yet" in err and "run `loa-provision bulk`" in err
    _assert_nothing_written(tmp_path, out, district_dir, before)
    assert cli("bulk", inv, "--district-dir", district_dir) == 0
    assert _bundles(district_dir, inv, out, "--ssh-key", key, "--wheel", wheel) == 0
    assert sorted(p.name for p in out.iterdir()) == ["thon-1", "thon-2", "thon-3"]


def test_a_station_provisioned_with_other_settings_than_its_line_is_refused(inventory, tmp_path, capsys):
    district_dir, inv, key, wheel = inventory
    inv.write_text(INVENTORY.replace("Loa thôn 1,pi-hat-v1", "Loa thôn một,no-gpio"), encoding="utf-8")
    out, before = tmp_path / "bundles", tree_snapshot(district_dir)
    capsys.readouterr()
    assert _bundles(district_dir, inv, out, "--ssh-key", key, "--wheel", wheel) == 1
    assert "line 2: station 'thon-1' was provisioned with other settings (name, preset differ)" in capsys.readouterr().err
    _assert_nothing_written(tmp_path, out, district_dir, before)


def test_a_folder_in_the_way_of_one_bundle_stops_them_all(inventory, tmp_path, capsys):
    district_dir, inv, key, wheel = inventory
    out = tmp_path / "bundles"
    (out / "thon-2").mkdir(parents=True)
    (out / "thon-2/photos.txt").write_text("keep me")
    before_out, before_district = tree_snapshot(out), tree_snapshot(district_dir)
    capsys.readouterr()
    assert _bundles(district_dir, inv, out, "--ssh-key", key, "--wheel", wheel) == 1
    assert f"line 3: {out / 'thon-2'} exists and is not a loa bundle" in capsys.readouterr().err
    assert tree_snapshot(out) == before_out and tree_snapshot(district_dir) == before_district
    assert not (out / "thon-1").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--station", "thon-1", "--inventory", "stations.csv"), "not allowed with argument"),
        ((), "one of the arguments --station --inventory is required"),
        (("--inventory", "missing.csv"), "--inventory missing.csv: no such file"),
    ],
)
def test_wrong_arguments_exit_2_with_a_clear_message(inventory, tmp_path, capsys, monkeypatch, args, message):
    district_dir, _, key, wheel = inventory
    monkeypatch.chdir(tmp_path)
    before = tree_snapshot(district_dir)
    with pytest.raises(SystemExit) as e:
        cli("bundle", "--district-dir", district_dir, *args, "--out", "bundles", "--ssh-key", key, "--wheel", wheel)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bundles").exists() and tree_snapshot(district_dir) == before
