"""`loa-provision broker-config`: mosquitto.conf + ACL + certificates for the district broker."""

from __future__ import annotations

from pathlib import Path

from firmware.cli_support import UsageError
from provisioning.broker import BrokerOptions, write_broker_config
from provisioning.commands._common import add_district_dir, open_district, reports_errors
from provisioning.dynsec import find_plugin


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "broker-config",
        help="write mosquitto.conf, the ACL and certificates for the district broker",
        description="Write the broker's files into DIR (replaced as a whole). Re-run after provisioning, "
        "revoking or rotating stations, then restart mosquitto.",
    )
    add_district_dir(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (owned by this tool)")
    p.add_argument("--port", type=int, default=None, help="TLS listener port (default: the district's, 8883)")
    p.add_argument("--bind", default="", help="address to listen on (default: all)")
    p.add_argument("--conf-dir", default="",
                   help="where these files will live on the broker host, e.g. /etc/mosquitto/loa "
                   "(default: the output directory)")
    p.add_argument("--persistence-dir", default="/var/lib/mosquitto/", help="mosquitto persistence_location")
    p.add_argument("--local-port", type=int, default=None,
                   help="also open a plain, read-only, loopback-only listener on this port for local tools")
    p.add_argument("--acl", choices=("file", "dynsec"), default="file",
                   help="file: mosquitto acl_file (default); dynsec: the dynamic-security plugin, which also "
                   "refuses unauthorised SUBSCRIBEs in the SUBACK")
    p.add_argument("--dynsec-plugin", default="", metavar="PATH",
                   help="path of mosquitto_dynamic_security.so on the broker host (default: found here, "
                   "else the Debian arm64 path)")
    p.add_argument("--log-dest", default="syslog", help="mosquitto log_dest (default syslog)")
    p.set_defaults(func=run)


@reports_errors
def run(args) -> int:
    district = open_district(args)
    port = args.port if args.port is not None else district.broker_port
    for name, value in (("--port", port), ("--local-port", args.local_port)):
        if value is not None and not 1 <= value <= 65535:
            raise UsageError(f"{name} {value} is not a TCP port")
    if args.local_port is not None and args.local_port == port:
        raise UsageError("--local-port must differ from --port")
    opts = BrokerOptions(
        port=port, bind=args.bind, conf_dir=args.conf_dir, persistence_dir=args.persistence_dir,
        local_port=args.local_port, log_dest=args.log_dest, acl=args.acl,
        dynsec_plugin=args.dynsec_plugin or find_plugin(),
    )
    with district.locked():
        names = write_broker_config(district, Path(args.out), opts)
    print(f"broker config for district {district.id} written to {args.out}: {', '.join(names)}")
    return 0
