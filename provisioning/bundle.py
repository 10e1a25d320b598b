"""The SD-card bundle: everything a freshly written Raspberry Pi OS needs to become one station.

    OUT/loa/firstboot.sh          idempotent installer (run once on the Pi as root; logs to /var/log/)
    OUT/loa/bundle.env            what firstboot.sh needs to know (station, hostname, admin user, NTP, ...)
    OUT/loa/station.toml          -> /etc/loa/station.toml
    OUT/loa/tls/                  ca.crt, station.crt, station.key -> /etc/loa/tls/ (the key is removed from
                                  the FAT boot partition once installed)
    OUT/loa/trust/<kid>.pub       -> /etc/loa/trust/ (district signing keys)
    OUT/loa/systemd/loa-station.service
    OUT/loa/nftables.conf         -> /etc/nftables.conf
    OUT/loa/ssh/authorized_keys   the technicians' keys for the admin user (SSH by key only)
    OUT/loa/dist/loa-*.whl        the station software
    OUT/loa/SHA256SUMS            checked by firstboot.sh (FAT cards do get corrupted)
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from provisioning.district import DATA, District, utc_now
from provisioning.errors import ProvisionError
from provisioning.fsutil import PRIVATE, replace_dir, staging_dir, write_file
from provisioning.ids import id_problem
from provisioning.station import load_record, params_of, refresh, station_dir

DEFAULT_ADMIN = "loa-admin"
DEFAULT_NTP = "0.vn.pool.ntp.org 1.vn.pool.ntp.org 0.asia.pool.ntp.org 1.asia.pool.ntp.org"
MARK = "loa/bundle.json"
SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-")
# Zip timestamps of the built wheel: fixed, so that the same source gives the same wheel, hence the same
# LOA_BUNDLE_ID, and re-making a bundle does not make `firstboot.sh --if-changed` re-install an unchanged station.
WHEEL_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip file can hold


def project_root() -> Path | None:
    """The source tree this tool runs from, when it runs from one (editable install or checkout)."""
    root = Path(__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "loa"' in pyproject.read_text():
        return root
    return None


def build_wheel(dest: Path) -> Path:
    """`pip wheel --no-deps` of the source tree, built from a clean copy (nothing written into the tree)."""
    root = project_root()
    if root is None:
        raise ProvisionError("no loa source tree next to this tool to build the station wheel from: pass --wheel FILE")
    with tempfile.TemporaryDirectory(prefix="loa-wheel-") as tmp:
        src = Path(tmp) / "src"
        ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build", "tests", ".*cache")
        shutil.copytree(root, src, ignore=ignore)
        out = Path(tmp) / "dist"
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)],
            capture_output=True, text=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", WHEEL_EPOCH)},
        )
        wheels = sorted(out.glob("loa-*.whl")) if out.exists() else []
        if proc.returncode != 0 or not wheels:
            raise ProvisionError(f"building the loa wheel failed (pass --wheel FILE instead):\n{proc.stderr[-2000:]}")
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheels[0], dest / wheels[0].name))


def read_ssh_keys(path: Path) -> str:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ProvisionError(f"--ssh-key {path}: cannot read ({e})") from None
    if "PRIVATE KEY" in text:
        raise ProvisionError(f"--ssh-key {path} is a PRIVATE key: give the public key (.pub) or an authorized_keys file")
    keys, problems = [], []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2 or not fields[0].startswith(SSH_KEY_TYPES):
            problems.append(f"line {n}: not an OpenSSH public key ({fields[0][:20]!r}...)")
        else:
            keys.append(line)
    if problems:
        raise ProvisionError(f"--ssh-key {path}: " + "; ".join(problems))
    if not keys:
        raise ProvisionError(f"--ssh-key {path}: no public key in it")
    return "\n".join(keys) + "\n"


def _env_file(values: dict[str, str]) -> str:
    lines = ["# written by loa-provision bundle; read by firstboot.sh"]
    lines += [f"{k}={shlex.quote(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def check_options(*, wheel: Path | None, admin_user: str) -> None:
    """The options every bundle of one run shares; checked before anything is written."""
    problem = id_problem("admin user", admin_user)
    if problem or admin_user[0].isdigit():
        raise ProvisionError(problem or f"admin user {admin_user!r} must start with a letter")
    if wheel is not None and (not Path(wheel).is_file() or not Path(wheel).name.endswith(".whl")):
        raise ProvisionError(f"--wheel {wheel}: not a wheel file")


def out_problem(out: Path) -> str | None:
    """Why `out` cannot receive a bundle, if it cannot: an existing bundle is replaced, anything else is kept."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARK).exists())):
        return f"{out} exists and is not a loa bundle: refusing to replace it"
    return None


def bundle_id(out: Path) -> str | None:
    """The id of the bundle in `out` (what firstboot.sh compares to decide whether to apply it), if any."""
    try:
        return json.loads((Path(out) / MARK).read_text())["bundle_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def build_bundle(
    district: District,
    station: str,
    out: Path,
    *,
    wheel: Path | None,
    ssh_keys: str | None,
    admin_user: str = DEFAULT_ADMIN,
    ntp_servers: str = DEFAULT_NTP,
) -> Path:
    record = load_record(district, station)
    if record is None:
        raise ProvisionError(
            f"station {station!r} is not provisioned in district {district.id!r}: run `loa-provision station` first"
        )
    check_options(wheel=wheel, admin_user=admin_user)
    out = Path(out)
    problem = out_problem(out)
    if problem:
        raise ProvisionError(problem)
    refresh(district, params_of(record), station_dir(district, station))  # config and trust anchors up to date
    src = station_dir(district, station)
    with staging_dir(out) as tmp:
        tmp.chmod(0o755)
        b = tmp / "loa"
        shutil.copytree(src / "tls", b / "tls")
        (b / "tls/station.key").chmod(PRIVATE)
        shutil.copytree(src / "trust", b / "trust")
        shutil.copy2(src / "station.toml", b / "station.toml")
        write_file(b / "systemd/loa-station.service", (DATA / "loa-station.service").read_text())
        nft = (DATA / "nftables.nft").read_text().replace("@BROKER_PORT@", str(district.broker_port))
        write_file(b / "nftables.conf", nft)
        write_file(b / "firstboot.sh", (DATA / "firstboot.sh").read_text(), 0o755)
        if ssh_keys:
            write_file(b / "ssh/authorized_keys", ssh_keys)
        (b / "dist").mkdir()
        wheel_path = Path(shutil.copy2(wheel, b / "dist" / Path(wheel).name)) if wheel else build_wheel(b / "dist")
        bundle_id = hashlib.sha256(
            b"".join(p.read_bytes() for p in sorted(b.rglob("*")) if p.is_file())
        ).hexdigest()[:16]
        env = {
            "LOA_STATION": station,
            "LOA_DISTRICT": district.id,
            "LOA_COMMUNE": record["commune"],
            "LOA_HOSTNAME": f"loa-{station}",
            "LOA_ADMIN_USER": admin_user,
            "LOA_TIMEZONE": "Asia/Ho_Chi_Minh",
            "LOA_NTP_SERVERS": ntp_servers,
            "LOA_WHEEL": f"dist/{wheel_path.name}",
            "LOA_BUNDLE_ID": bundle_id,
        }
        write_file(b / "bundle.env", _env_file(env))
        manifest = {
            "kind": "loa-bundle", "district": district.id, "commune": record["commune"], "station": station,
            "certificate_serial": record["serial"], "bundle_id": bundle_id, "created": utc_now(),
            "trusted_keys": [k.kid for k in district.trusted_keys()], "ssh_keys": bool(ssh_keys),
        }
        write_file(b / "bundle.json", json.dumps(manifest, indent=2) + "\n")
        sums = [
            f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(b)}"
            for p in sorted(b.rglob("*"))
            if p.is_file() and p.name != "SHA256SUMS"
        ]
        write_file(b / "SHA256SUMS", "\n".join(sums) + "\n")
        replace_dir(tmp, out)
    return out / "loa"
