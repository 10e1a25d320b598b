"""The district broker's mosquitto config and ACL, generated from the district directory.

Identity: every client presents a certificate from the district CA; with `use_identity_as_username` its CN is
the MQTT username, and with `use_username_as_clientid` also its client id. A station's CN is its id (unique in the
district); the district tools are `collector.{d}`, `sender.{d}` and further instances `collector-2.{d}`... (a dot:
never a station id). One certificate per running tool instance: two connections with one CN share a client id.

Authorisation: one explicit `user` block per station rather than `pattern` lines. A pattern can only substitute
the whole username (`%u`), and the station's topic prefix needs both its commune and its id; a pattern such as
`loa/v1/{d}/+/%u/status` would let a station write under any commune. Explicit blocks grant exactly
`loa/v1/{d}/{c}/{s}/...` and nothing else, and a revoked station simply has no block.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provisioning.district import District
from provisioning.errors import ProvisionError
from provisioning.fsutil import PRIVATE, replace_dir, staging_dir, write_file
from provisioning.station import stations

CONF_HEADER = "# mosquitto config for the loa district broker of"
STATION_WRITES = ("status", "telemetry", "report", "ack")
STATION_READS_OWN = ("alert", "schedule", "policy", "cmd")
SCOPE_READS = ("alert", "schedule", "policy")


@dataclass(frozen=True)
class BrokerOptions:
    port: int
    bind: str = ""  # "" = all interfaces
    conf_dir: str = ""  # where the files will live on the broker host; "" = the output directory itself
    persistence_dir: str = "/var/lib/mosquitto/"
    local_port: int | None = None  # plain loopback listener for local read-only tools; None = none
    log_dest: str = "syslog"
    acl: str = "file"  # "file": acl_file; "dynsec": the dynamic-security plugin (also checks SUBSCRIBE)
    dynsec_plugin: str = ""


@dataclass(frozen=True)
class Account:
    """A broker username and the topics (filters, `+`/`#` allowed) it may write and read."""

    username: str
    writes: tuple[str, ...]
    reads: tuple[str, ...]
    kind: str = "station"


def station_account(d: str, c: str, s: str) -> Account:
    own = f"loa/v1/{d}/{c}/{s}"
    return Account(
        s,
        writes=tuple(f"{own}/{t}" for t in STATION_WRITES),
        reads=tuple(
            [f"loa/v1/{d}/{t}" for t in SCOPE_READS]
            + [f"loa/v1/{d}/{c}/{t}" for t in SCOPE_READS]
            + [f"{own}/{t}" for t in STATION_READS_OWN]
        ),
    )


def collector_account(d: str, username: str) -> Account:
    # mosquitto's acl_file checks a shared subscription ($share/<group>/<filter>) as <filter>, so this also
    # covers `$share/collectors/...` for a pool of collectors (tested).
    return Account(username, writes=(), reads=(f"loa/v1/{d}/#",), kind="collector")


def sender_account(d: str, username: str) -> Account:
    return Account(
        username,
        kind="sender",
        writes=tuple(
            [f"loa/v1/{d}/{t}" for t in SCOPE_READS]
            + [f"loa/v1/{d}/+/{t}" for t in SCOPE_READS]
            + [f"loa/v1/{d}/+/+/{t}" for t in STATION_READS_OWN]
        ),
        reads=tuple(f"loa/v1/{d}/+/+/{t}" for t in ("status", "ack")),
    )


def accounts(district: District) -> list[Account]:
    d = district.id
    tools = {"collector": collector_account, "sender": sender_account}
    out = [tools[kind](d, cn) for kind, cn in district.tool_accounts() if kind in tools]
    out += [station_account(d, rec["commune"], rec["station"]) for rec in stations(district)]
    return out


def render_acl(district: District) -> str:
    blocks = [
        f"# loa ACL for district {district.id}: written by loa-provision broker-config; regenerate, do not edit.\n"
        "# No lines before the first `user`: anonymous clients get nothing."
    ]
    for a in accounts(district):
        lines = [f"user {a.username}"]
        lines += [f"topic write {t}" for t in a.writes]
        lines += [f"topic read {t}" for t in a.reads]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render_local_acl(district: District) -> str:
    return (
        "# Plain loopback listener: anonymous local tools may only watch the district, never publish.\n"
        f"topic read loa/v1/{district.id}/#\n"
    )


def render_conf(district: District, opts: BrokerOptions, conf_dir: str, has_crl: bool) -> str:
    c = conf_dir.rstrip("/")
    bind = f" {opts.bind}" if opts.bind else ""
    lines = [
        f"{CONF_HEADER} {district.id}: written by loa-provision broker-config.",
        "# Every client authenticates with a certificate of the district CA; its CN is its username.",
        "per_listener_settings true",
        "persistence true",
        f"persistence_location {opts.persistence_dir}",
        "autosave_interval 60",
        "# Alerts and schedules are small; a larger packet is an attack or a bug.",
        "max_packet_size 262144",
        "max_queued_messages 1000",
        "max_inflight_messages 20",
        "# An alert must not wait for Nagle's algorithm: measured ~40 ms on one delivery in two without it.",
        "set_tcp_nodelay true",
        f"log_dest {opts.log_dest}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
        "",
        f"listener {opts.port}{bind}",
        "protocol mqtt",
        "allow_anonymous false",
        *(
            [f"plugin {opts.dynsec_plugin}", f"plugin_opt_config_file {c}/dynamic-security.json"]
            if opts.acl == "dynsec"
            else [f"acl_file {c}/acl"]
        ),
        f"cafile {c}/ca.crt",
        f"certfile {c}/server.crt",
        f"keyfile {c}/server.key",
        "tls_version tlsv1.2",
        "require_certificate true",
        "use_identity_as_username true",
        "# The client id is forced to the username: a stolen station key cannot connect as another station's",
        "# client id and so knock it offline or take over its session.",
        "use_username_as_clientid true",
    ]
    if has_crl:
        lines.append(f"crlfile {c}/crl.pem")
    if opts.local_port:
        lines += [
            "",
            "# Loopback only, no TLS: for tools on the broker host itself (read-only, see acl-local).",
            f"listener {opts.local_port} 127.0.0.1",
            "protocol mqtt",
            "allow_anonymous true",
            f"acl_file {c}/acl-local",
        ]
    return "\n".join(lines) + "\n"


def _is_ours(out: Path) -> bool:
    conf = out / "mosquitto.conf"
    return conf.is_file() and conf.read_text(errors="replace").startswith(CONF_HEADER)


def write_broker_config(district: District, out: Path, opts: BrokerOptions) -> list[str]:
    """Write mosquitto.conf, acl, certificates (and crl.pem, acl-local) into `out`, replacing it whole."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _is_ours(out))):
        raise ProvisionError(
            f"{out} exists and was not written by broker-config: refusing to replace it (give an empty or new directory)"
        )
    conf_dir = opts.conf_dir or str(out.resolve())
    if district.revoked():
        # Re-sign so the CRL is fresh: OpenSSL refuses every client once a CRL's nextUpdate has passed.
        district.write_crl()
    has_crl = district.crl_path.exists()
    with staging_dir(out) as tmp:
        tmp.chmod(0o755)  # mosquitto drops to its own user after start; it must reach the ACL and certificates
        write_file(tmp / "mosquitto.conf", render_conf(district, opts, conf_dir, has_crl))
        if opts.acl == "dynsec":
            from provisioning.dynsec import render_dynsec

            write_file(tmp / "dynamic-security.json", render_dynsec(district))
        else:
            write_file(tmp / "acl", render_acl(district))
        write_file(tmp / "ca.crt", district.ca_cert_path.read_bytes())
        write_file(tmp / "server.crt", (district.root / "broker/server.crt").read_bytes())
        # 0600: install it owned by the mosquitto user (see docs/provisioning.md)
        write_file(tmp / "server.key", (district.root / "broker/server.key").read_bytes(), PRIVATE)
        if has_crl:
            write_file(tmp / "crl.pem", district.crl_path.read_bytes())
        if opts.local_port:
            write_file(tmp / "acl-local", render_local_acl(district))
        names = sorted(p.name for p in tmp.iterdir())
        replace_dir(tmp, out)
    return names
