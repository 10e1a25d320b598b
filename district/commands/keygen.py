"""`loa-district keygen --district D --out DIR`: a new Ed25519 signing key and its trust anchors."""

from __future__ import annotations

import sys
from pathlib import Path

from firmware.cli_support import UsageError
from firmware.protocol.keys import (
    generate,
    public_key_pem,
    signing_key_pem,
    trust_anchor_json,
    write_new_file,
)
from firmware.protocol.topics import TopicError, check_id


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "keygen",
        help="create a district signing key (Ed25519) and its trust anchor files",
        description="Write DIR/<kid>.key (private, 0600: keep it on the alerting workstation only), "
        "DIR/<kid>.pub (public key, PEM) and DIR/<kid>.json (trust anchor restricted to the district). "
        "Stations get the .pub or .json file. Refuses a DIR that already holds a signing key.",
    )
    p.add_argument("--district", required=True, help="district id, e.g. hoa-vang")
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write the key files to")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        check_id(args.district, "district")
    except TopicError as e:
        raise UsageError(str(e)) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = sorted(out.glob("*.key"))
    if existing:
        raise UsageError(f"{out} already holds a signing key ({existing[0].name}); refusing to write another")
    key = generate(args.district)
    anchor = key.anchor()
    files = [
        (out / f"{key.kid}.key", signing_key_pem(key), 0o600),
        (out / f"{key.kid}.pub", public_key_pem(anchor), 0o644),
        (out / f"{key.kid}.json", trust_anchor_json([anchor]), 0o644),
    ]
    for path, data, mode in files:
        try:
            write_new_file(path, data, mode)
        except FileExistsError:
            raise UsageError(f"{path} exists; refusing to overwrite") from None
    print(f"key id:        {key.kid}", file=sys.stderr)
    print(f"signing key:   {files[0][0]} (0600, keep secret)", file=sys.stderr)
    print(f"trust anchors: {files[1][0]}, {files[2][0]} (for stations)", file=sys.stderr)
    print(key.kid)
    return 0
