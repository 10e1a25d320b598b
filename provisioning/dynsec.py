"""The same accounts as the ACL file, for mosquitto's dynamic-security plugin (`broker-config --acl dynsec`).

Why offer it: mosquitto 2.0's `acl_file` does not check SUBSCRIBE (the SUBACK grants anything; the ACL is
applied when messages are delivered). The plugin checks subscriptions too and answers 0x87 in the SUBACK, so a
station that asks for another station's topics is told no. Delivery is limited the same way in both modes.

Clients have no password: with `use_identity_as_username` the certificate is the authentication, and the
plugin only authorises. No client is given the `$CONTROL` topics, so nothing can change the rules at run time.
"""

from __future__ import annotations

import glob
import json

from provisioning.broker import Account, accounts
from provisioning.district import District

PLUGIN_GLOBS = ("/usr/lib/*-linux-gnu/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so",
                "/usr/local/lib/mosquitto_dynamic_security.so")
DEFAULT_PLUGIN = "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so"  # Debian/Raspberry Pi OS arm64


def find_plugin() -> str:
    for pattern in PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return DEFAULT_PLUGIN


def _has_wildcard(topic: str) -> bool:
    return "+" in topic.split("/") or "#" in topic.split("/")


def _acls(a: Account, district: str) -> list[dict]:
    acls = [{"acltype": "publishClientSend", "topic": t, "allow": True} for t in a.writes]
    for t in a.reads:
        kind = "subscribePattern" if _has_wildcard(t) else "subscribeLiteral"
        acls.append({"acltype": kind, "topic": t, "allow": True})
        acls.append({"acltype": "publishClientReceive", "topic": t, "allow": True})
    if a.kind == "collector":
        # The plugin checks `$share/<group>/<filter>` as written, and district/collector.py subscribes with
        # `loa/v1/+/+/+/<kind>`: let the collector subscribe to any loa filter (shared or not); what it
        # receives is still only its district (publishClientReceive above).
        acls += [
            {"acltype": "subscribePattern", "topic": "loa/v1/#", "allow": True},
            {"acltype": "subscribePattern", "topic": "$share/+/loa/v1/#", "allow": True},
        ]
    return acls


def render_dynsec(district: District) -> str:
    accts = accounts(district)
    doc = {
        "defaultACLAccess": {
            "publishClientSend": False, "publishClientReceive": False, "subscribe": False, "unsubscribe": True,
        },
        "clients": [{"username": a.username, "roles": [{"rolename": a.username}]} for a in accts],
        "groups": [],
        "roles": [{"rolename": a.username, "acls": _acls(a, district.id)} for a in accts],
    }
    return json.dumps(doc, indent=2) + "\n"
