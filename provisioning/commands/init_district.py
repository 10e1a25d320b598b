"""`loa-provision init-district`: a new district directory (CA, signing key, broker and tool certificates)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from firmware.cli_support import UsageError
from provisioning.commands._common import reports_errors
from provisioning.district import init_district
from provisioning.ids import id_problem

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _host_ok(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return 0 < len(host) <= 253 and all(_LABEL.match(label) for label in host.rstrip(".").split("."))


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "init-district",
        help="create a district directory: CA, Ed25519 signing key, broker and tool certificates",
        description="Create the district's root of trust in a new directory. Keep it offline and backed up: "
        "it holds the CA key and the alert signing key.",
    )
    p.add_argument("--district", required=True, help="district id ([a-z0-9-])")
    p.add_argument("--out", required=True, metavar="DIR", help="new (or empty) directory to create")
    p.add_argument(
        "--broker-host",
        action="append",
        metavar="NAME_OR_IP",
        help="a name or IP stations use to reach the broker (repeat; the first is used in station configs); "
        "default: localhost and 127.0.0.1",
    )
    p.add_argument("--broker-port", type=int, default=8883, help="TLS port of the broker (default 8883)")
    p.set_defaults(func=run)


@reports_errors
def run(args) -> int:
    problem = id_problem("district", args.district)
    if problem:
        raise UsageError(problem)
    if not 1 <= args.broker_port <= 65535:
        raise UsageError(f"--broker-port {args.broker_port} is not a TCP port")
    hosts = args.broker_host or ["localhost", "127.0.0.1"]
    bad = [h for h in hosts if not _host_ok(h)]
    if bad:
        raise UsageError(f"--broker-host {bad[0]!r} is neither an IP address nor a DNS name")
    if len(set(hosts)) != len(hosts):
        raise UsageError("--broker-host names repeat")
    d = init_district(Path(args.out), args.district, hosts, args.broker_port)
    kid = d.active_key().kid
    print(f"district {d.id} created in {d.root}")
    print(f"  CA certificate:   {d.ca_cert_path}")
    print(f"  signing key id:   {kid} (trust anchor {d.public_key_path(kid)})")
    print(f"  broker hosts:     {', '.join(hosts)} port {args.broker_port}")
    print("  private keys are mode 0600; keep this directory offline and backed up")
    return 0
