"""Identifiers that end up in MQTT topics, certificate names, file names and hostnames.

Protocol v1 says ids are `[a-z0-9-]+`. We also refuse a leading or trailing hyphen and cap the length, so an id
is always a valid hostname label (`loa-{station}` must fit 63 characters) and a safe file name.
"""

from __future__ import annotations

import re

MAX_ID_LEN = 40
_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")

# Broker account names for the district tools. They contain a dot, which no station id can, so a station can
# never be provisioned with the identity (and hence the ACL) of a district tool.
ACCOUNT_KINDS = ("collector", "sender")


def id_problem(kind: str, value: str) -> str | None:
    """None when `value` is a valid id, else a sentence that quotes what was given."""
    if not value:
        return f"{kind} id is empty"
    if len(value) > MAX_ID_LEN:
        return f"{kind} id {value!r} is longer than {MAX_ID_LEN} characters"
    if not _ID.match(value):
        return f"{kind} id {value!r} must be lowercase letters, digits and inner hyphens ([a-z0-9-])"
    return None


def check_id(kind: str, value: str) -> str:
    problem = id_problem(kind, value)
    if problem:
        raise ValueError(problem)
    return value


def account_name(kind: str, instance: str = "") -> str:
    """The file name of a tool account: `collector`, or `collector-2` for a further instance."""
    if kind not in ACCOUNT_KINDS:
        raise ValueError(f"unknown account kind {kind!r} (expected one of {', '.join(ACCOUNT_KINDS)})")
    return f"{kind}-{instance}" if instance else kind


def account_cn(kind: str, district: str, instance: str = "") -> str:
    """The certificate CN (= broker username = MQTT client id) of a district tool account, e.g. `collector.lx`
    or `collector-2.lx`. Each running instance of a tool needs its own (the broker forces client id = CN)."""
    return f"{account_name(kind, instance)}.{district}"
