"""The district directory: the district office's root of trust, kept offline on the provisioning laptop.

    DIR/district.json          marker and metadata (district id, broker hosts/port, signing key ids and states)
    DIR/policy.toml            default broadcast policy copied into new station configs (edit per commune)
    DIR/policy_bounds.toml     the district's bounds on any commune policy (earliest start, latest end, loudest
                               cap), copied into new station configs as [policy_bounds]; optional
    DIR/ca/ca.key, ca.crt      district CA (EC P-256) for broker and station TLS
    DIR/ca/revoked.json        revoked certificates; DIR/ca/crl.pem is regenerated from it
    DIR/signing/<kid>.key/.pub Ed25519 keys that sign alerts, schedules and commands
    DIR/broker/server.*        broker server certificate
    DIR/accounts/<kind>[-<n>].* client certificates of the district tools (collector, sender), one per instance
    DIR/stations/<id>/         one directory per provisioned station (see provisioning.station)
    DIR/revoked/<id>-<serial>/ stations whose certificate was revoked
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from provisioning import pki, signing
from provisioning.errors import ProvisionError
from provisioning.fsutil import replace_dir, staging_dir, write_file, write_private
from provisioning.ids import ACCOUNT_KINDS, account_cn, account_name

MARKER = "district.json"
KIND = "loa-district"
FORMAT = 1
DATA = Path(__file__).parent / "data"

# Signing key states. Stations trust every key that is not retired.
NEXT, ACTIVE, PREVIOUS, RETIRED = "next", "active", "previous", "retired"


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    state: str
    created: str


class District:
    """An opened, checked district directory."""

    def __init__(self, root: Path, meta: dict):
        self.root = Path(root)
        self.meta = meta

    # ---- opening -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike) -> District:
        root = Path(root)
        marker = root / MARKER
        if not root.is_dir():
            raise ProvisionError(f"{root}: no such directory (create a district with `loa-provision init-district`)")
        if not marker.is_file():
            raise ProvisionError(
                f"{root} is not a loa district directory (no {MARKER}); create one with `loa-provision init-district`"
            )
        try:
            meta = json.loads(marker.read_text())
        except (OSError, ValueError) as e:
            raise ProvisionError(f"{marker}: unreadable ({e})") from None
        if not isinstance(meta, dict) or meta.get("kind") != KIND:
            raise ProvisionError(f"{marker}: not a loa district marker (kind is not {KIND!r})")
        if meta.get("format") != FORMAT:
            raise ProvisionError(f"{marker}: format {meta.get('format')!r} not supported (this tool writes {FORMAT})")
        missing = [p for p in ("ca/ca.key", "ca/ca.crt") if not (root / p).is_file()]
        if missing:
            raise ProvisionError(f"{root}: district directory is incomplete, missing {', '.join(missing)}")
        return cls(root, meta)

    @contextlib.contextmanager
    def locked(self) -> Iterator[District]:
        """Serialise changes: two technicians' shells on one laptop must not interleave writes."""
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                # re-read: another process may have changed the metadata while we waited
                self.meta = json.loads((self.root / MARKER).read_text())
                yield self
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def save_meta(self) -> None:
        write_file(self.root / MARKER, json.dumps(self.meta, indent=2, ensure_ascii=False) + "\n")

    # ---- facts ---------------------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.meta["district"]

    @property
    def broker_hosts(self) -> list[str]:
        return list(self.meta["broker"]["hosts"])

    @property
    def broker_port(self) -> int:
        return int(self.meta["broker"]["port"])

    @property
    def broker_url(self) -> str:
        return f"mqtts://{self.broker_hosts[0]}:{self.broker_port}"

    def authority(self) -> pki.Authority:
        return pki.Authority(
            pki.load_key((self.root / "ca/ca.key").read_bytes()), pki.load_cert((self.root / "ca/ca.crt").read_bytes())
        )

    @property
    def ca_cert_path(self) -> Path:
        return self.root / "ca/ca.crt"

    @property
    def crl_path(self) -> Path:
        return self.root / "ca/crl.pem"

    def signing_keys(self) -> list[SigningKey]:
        return [SigningKey(k["kid"], k["state"], k["created"]) for k in self.meta["signing_keys"]]

    def trusted_keys(self) -> list[SigningKey]:
        """Keys stations must trust now: the active one plus any in an overlap (next, previous)."""
        return [k for k in self.signing_keys() if k.state != RETIRED]

    def active_key(self) -> SigningKey:
        return next(k for k in self.signing_keys() if k.state == ACTIVE)

    def public_key_path(self, kid: str) -> Path:
        return self.root / "signing" / f"{kid}.pub"

    def private_key_path(self, kid: str) -> Path:
        return self.root / "signing" / f"{kid}.key"

    def account_paths(self, kind: str, instance: str = "") -> tuple[Path, Path]:
        name = account_name(kind, instance)
        return self.root / "accounts" / f"{name}.crt", self.root / "accounts" / f"{name}.key"

    def tool_accounts(self) -> list[tuple[str, str]]:
        """(kind, CN) of every tool certificate in DIR/accounts/, read from the certificates themselves."""
        out = []
        for crt in sorted((self.root / "accounts").glob("*.crt")):
            cert = pki.load_cert(crt.read_bytes())
            out.append((pki.unit_of(cert), pki.cn_of(cert)))
        return out

    def issue_account(self, kind: str, instance: str) -> tuple[Path, Path]:
        crt, key_path = self.account_paths(kind, instance)
        if crt.exists():
            raise ProvisionError(f"account {crt.stem} already exists ({crt})")
        key, cert = pki.issue_client(self.authority(), self.id, account_cn(kind, self.id, instance), kind)
        write_private(key_path, pki.key_pem(key))
        write_file(crt, pki.cert_pem(cert))
        return crt, key_path

    def default_policy_text(self) -> str:
        return (self.root / "policy.toml").read_text()

    def policy_bounds_text(self) -> str:
        """The district's `policy_bounds.toml` ("" when there is none: firmware limits only)."""
        path = self.root / "policy_bounds.toml"
        return path.read_text() if path.is_file() else ""

    # ---- revocation ------------------------------------------------------------------------------------------
    def revoked(self) -> list[dict]:
        path = self.root / "ca/revoked.json"
        return json.loads(path.read_text()) if path.exists() else []

    def add_revoked(self, serial: int, cn: str, reason: str) -> None:
        """Record a revoked certificate and re-sign the CRL the broker loads (`crlfile`)."""
        entries = self.revoked()
        if not any(e["serial"] == str(serial) for e in entries):
            entries.append({"serial": str(serial), "cn": cn, "reason": reason, "revoked_at": utc_now()})
        write_file(self.root / "ca/revoked.json", json.dumps(entries, indent=2) + "\n")
        self.write_crl(entries)

    def write_crl(self, entries: list[dict] | None = None) -> None:
        entries = self.revoked() if entries is None else entries
        crl = pki.build_crl(
            self.authority(), [(int(e["serial"]), dt.datetime.fromisoformat(e["revoked_at"])) for e in entries]
        )
        write_file(self.crl_path, pki.crl_pem(crl))


def init_district(out: Path, district: str, hosts: list[str], port: int) -> District:
    """Create a district directory at `out` (which must not exist or be empty), built aside then moved in."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ProvisionError(f"{out} already exists and is not empty; refusing to overwrite a district")
    with staging_dir(out) as tmp:
        tmp.chmod(0o700)
        ca = pki.create_ca(district)
        write_private(tmp / "ca/ca.key", pki.key_pem(ca.key))
        write_file(tmp / "ca/ca.crt", pki.cert_pem(ca.cert))
        key, cert = pki.issue_server(ca, district, hosts)
        write_private(tmp / "broker/server.key", pki.key_pem(key))
        write_file(tmp / "broker/server.crt", pki.cert_pem(cert))
        for kind in ACCOUNT_KINDS:
            key, cert = pki.issue_client(ca, district, account_cn(kind, district), kind)
            write_private(tmp / f"accounts/{kind}.key", pki.key_pem(key))
            write_file(tmp / f"accounts/{kind}.crt", pki.cert_pem(cert))
        kid = signing.write_signing_key(signing.generate(), tmp / "signing")
        write_file(tmp / "policy.toml", (DATA / "policy.default.toml").read_text())
        write_file(tmp / "policy_bounds.toml", (DATA / "policy_bounds.default.toml").read_text())
        (tmp / "stations").mkdir()
        meta = {
            "kind": KIND,
            "format": FORMAT,
            "district": district,
            "created": utc_now(),
            "broker": {"hosts": hosts, "port": port},
            "signing_keys": [{"kid": kid, "state": ACTIVE, "created": utc_now()}],
            "signing_backend": signing.backend(),
        }
        write_file(tmp / MARKER, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        if out.exists():
            out.rmdir()  # empty, checked above
        replace_dir(tmp, out)
    return District.open(out)
