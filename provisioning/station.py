"""One station: its key and client certificate, its `station.toml`, its trust anchors.

    DIR/stations/<id>/station.json   what was asked (commune, name, preset, ...) and the certificate serial
    DIR/stations/<id>/tls/           station.key (0600), station.crt, ca.crt
    DIR/stations/<id>/trust/<kid>.pub district signing keys the station trusts
    DIR/stations/<id>/station.toml   the config, validated by the firmware's own model

Station ids are unique in the district (they are the certificate CN, hence the broker username).
The directory is always rebuilt aside and renamed into place: a station is complete or absent.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from provisioning import pki, tomlw
from provisioning.district import DATA, District, utc_now
from provisioning.errors import ProvisionError
from provisioning.fsutil import replace_dir, staging_dir, tree_snapshot, write_file, write_private

# Where the files live on the Pi (the bundle's first-boot script installs them there).
ETC = "/etc/loa"
DEVICE_CONFIG = f"{ETC}/station.toml"
DEVICE_TLS = f"{ETC}/tls"
DEVICE_TRUST = f"{ETC}/trust"
STATE_DIR = "/var/lib/loa"
DEFAULT_PRESET = "pi-hat-v1"

CREATED, UNCHANGED, REFRESHED, ROTATED = "created", "unchanged", "refreshed", "rotated"


def presets() -> dict[str, dict]:
    data = json.loads((DATA / "presets.json").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


@dataclass(frozen=True)
class StationParams:
    """What the technician (or the inventory row) asks for; comparing two of these decides idempotency."""

    commune: str
    station: str
    name: str = ""
    location: str = ""
    preset: str = DEFAULT_PRESET
    audio_device: str = ""

    def problems(self) -> list[str]:
        from provisioning.ids import id_problem

        out = [p for p in (id_problem("commune", self.commune), id_problem("station", self.station)) if p]
        if self.preset not in presets():
            out.append(f"unknown preset {self.preset!r} (known: {', '.join(sorted(presets()))})")
        for field, value in (("name", self.name), ("location", self.location), ("audio_device", self.audio_device)):
            if len(value) > 200:
                out.append(f"{field} is longer than 200 characters")
            if any(ord(ch) < 32 for ch in value):
                out.append(f"{field} contains control characters")
        return out


def station_dir(district: District, station: str) -> Path:
    return district.root / "stations" / station


def load_record(district: District, station: str) -> dict | None:
    path = station_dir(district, station) / "station.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def params_of(record: dict) -> StationParams:
    return StationParams(**{k: record[k] for k in StationParams.__dataclass_fields__})


def render_config(district: District, p: StationParams) -> str:
    """The station's TOML, validated by the firmware's config model (or by tomllib if it is unavailable)."""
    preset = presets()[p.preset]
    audio = dict(preset.get("audio", {}))
    if p.audio_device:
        audio["device"] = p.audio_device
    audio.setdefault("rate_hz", 48000)
    audio.setdefault("block_ms", 20)
    policy = tomllib.loads(district.default_policy_text())
    try:
        bounds = tomllib.loads(district.policy_bounds_text()) or None  # {} (all commented out): no table
    except tomllib.TOMLDecodeError as e:
        raise ProvisionError(f"{district.root / 'policy_bounds.toml'}: not valid TOML: {e}") from None
    doc = {
        "station": {
            "district": district.id,
            "commune": p.commune,
            "id": p.station,
            "name": p.name,
            "location": p.location,
            "timezone": "Asia/Ho_Chi_Minh",
        },
        "policy": policy,
        "policy_bounds": bounds,
        "audio": audio,
        "gpio": dict(preset["gpio"]),
        "broker": {
            "url": district.broker_url,
            "ca_file": f"{DEVICE_TLS}/ca.crt",
            "cert_file": f"{DEVICE_TLS}/station.crt",
            "key_file": f"{DEVICE_TLS}/station.key",
            "keepalive_s": 30,
        },
        "trust": {"key_files": [f"{DEVICE_TRUST}/{k.kid}.pub" for k in district.trusted_keys()]},
        "paths": {"state_dir": STATE_DIR},
    }
    header = (
        f"# loa station {district.id}/{p.commune}/{p.station}: written by loa-provision (preset {p.preset}).\n"
        f"# Installed as {DEVICE_CONFIG}. Check with: loa-station check-config {DEVICE_CONFIG}\n"
        "# Policy comes from the district's policy.toml: the commune People's Committee sets the real values.\n"
    )
    text = tomlw.dumps(doc, header)
    validate_config(text, f"{p.station}/station.toml")
    return text


def config_validator() -> str:
    try:
        import firmware.config  # noqa: F401
    except ImportError:
        return "tomllib (firmware.config unavailable)"
    return "firmware.config"


def validate_config(text: str, source: str) -> None:
    try:
        from firmware.config import ConfigError, parse_config_text
    except ImportError:  # the firmware model is not importable: at least check it parses as TOML
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ProvisionError(f"{source}: generated TOML does not parse: {e}") from None
        return
    try:
        parse_config_text(text, source)
    except ConfigError as e:
        raise ProvisionError(f"generated config rejected by the firmware: {e}") from None


def _write_derived(district: District, p: StationParams, into: Path) -> None:
    """Everything in a station directory that follows from the district state (not the key)."""
    write_file(into / "tls/ca.crt", district.ca_cert_path.read_bytes())
    for k in district.trusted_keys():
        write_file(into / "trust" / f"{k.kid}.pub", district.public_key_path(k.kid).read_bytes())
    write_file(into / "station.toml", render_config(district, p))


def provision(district: District, p: StationParams, *, rotate: bool = False) -> str:
    """Create the station, or re-issue it with `rotate`; otherwise a re-run changes nothing (or only refreshes
    trust anchors and config after a district change, keeping the key). Returns what happened."""
    problems = p.problems()
    if problems:
        raise ProvisionError(f"station {p.station!r}: " + "; ".join(problems))
    final = station_dir(district, p.station)
    record = load_record(district, p.station)
    if record is not None and not rotate:
        existing = params_of(record)
        if existing != p:
            diff = ", ".join(
                f"{k} {getattr(existing, k)!r} -> {getattr(p, k)!r}"
                for k in StationParams.__dataclass_fields__
                if getattr(existing, k) != getattr(p, k)
            )
            raise ProvisionError(
                f"station {p.station!r} already exists with different settings ({diff}); "
                "use --rotate to re-issue it (new key and certificate; the old certificate is revoked)"
            )
        return refresh(district, p, final)
    with staging_dir(final) as tmp:
        key, cert = pki.issue_client(district.authority(), district.id, p.station, f"station {p.commune}")
        write_private(tmp / "tls/station.key", pki.key_pem(key))
        write_file(tmp / "tls/station.crt", pki.cert_pem(cert))
        _write_derived(district, p, tmp)
        new_record = {**asdict(p), "district": district.id, "serial": str(cert.serial_number), "issued": utc_now()}
        write_file(tmp / "station.json", json.dumps(new_record, indent=2, ensure_ascii=False) + "\n")
        replace_dir(tmp, final)
    if record is not None:
        district.add_revoked(int(record["serial"]), p.station, "superseded")
        return ROTATED
    return CREATED


def refresh(district: District, p: StationParams, final: Path) -> str:
    """Re-render config and trust anchors from the district state, keeping key and certificate."""
    before = tree_snapshot(final)
    with staging_dir(final) as tmp:
        for rel in ("station.json", "tls/station.key", "tls/station.crt"):
            src = final / rel
            (write_private if rel.endswith(".key") else write_file)(tmp / rel, src.read_bytes())
        _write_derived(district, p, tmp)
        if tree_snapshot(tmp) == before:
            return UNCHANGED
        replace_dir(tmp, final)
    return REFRESHED


def revoke(district: District, station: str) -> Path:
    """Revoke the station's certificate (CRL) and move its directory to DIR/revoked/; the next
    `broker-config` leaves it out of the ACL. The station id can then be provisioned again."""
    record = load_record(district, station)
    if record is None:
        raise ProvisionError(f"station {station!r} is not provisioned in district {district.id!r}")
    district.add_revoked(int(record["serial"]), station, "revoked")
    dest = district.root / "revoked" / f"{station}-{int(record['serial']):x}"
    dest.parent.mkdir(exist_ok=True)
    station_dir(district, station).rename(dest)
    return dest


def stations(district: District) -> list[dict]:
    root = district.root / "stations"
    out = []
    for d in sorted(root.iterdir()) if root.exists() else []:
        if d.is_dir() and not d.name.startswith(".") and (d / "station.json").exists():
            out.append(json.loads((d / "station.json").read_text()))
    return out
