"""`loa-provision station`: key, client certificate, config and trust anchors for one station."""

from __future__ import annotations

from firmware.cli_support import UsageError
from provisioning.commands._common import add_district_dir, open_district, reports_errors
from provisioning.station import DEFAULT_PRESET, StationParams, provision, station_dir


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "station",
        help="provision one station (idempotent; --rotate re-issues its key)",
        description="Create a station's key, client certificate (CN = station id), station.toml and trust "
        "anchors in DIR/stations/<id>/. Running it again with the same settings changes nothing.",
    )
    add_district_dir(p)
    p.add_argument("--commune", required=True, help="commune id ([a-z0-9-])")
    p.add_argument("--station", required=True, help="station id, unique in the district ([a-z0-9-])")
    p.add_argument("--name", default="", help="human name, e.g. 'Loa thôn 1'")
    p.add_argument("--location", default="", help="where it hangs, e.g. 'Nhà văn hóa thôn 1'")
    p.add_argument("--preset", default=DEFAULT_PRESET, help=f"hardware preset (default {DEFAULT_PRESET}); "
                   "see `loa-provision presets`")
    p.add_argument("--audio-device", default="", help="sound device name substring (overrides the preset)")
    p.add_argument("--rotate", action="store_true",
                   help="re-issue: new key and certificate, new settings; the old certificate is revoked")
    p.set_defaults(func=run)


@reports_errors
def run(args) -> int:
    params = StationParams(
        commune=args.commune, station=args.station, name=args.name, location=args.location,
        preset=args.preset, audio_device=args.audio_device,
    )
    problems = params.problems()
    if problems:
        raise UsageError("; ".join(problems))
    district = open_district(args)
    with district.locked():
        outcome = provision(district, params, rotate=args.rotate)
    print(f"station {args.station}: {outcome} ({station_dir(district, args.station)})")
    return 0
