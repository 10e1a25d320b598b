"""CAP 1.2 XML (urn:oasis:names:tc:emergency:cap:1.2) -> our alert payload, refusing what cannot be mapped.

Mapping: identifier -> id; sent -> issued; status Actual/Exercise/Test -> actual/exercise/test (System and Draft
are refused: they are not for the public); msgType Alert/Update/Cancel (Ack and Error are refused); references
("sender,identifier,sent" triples) -> the identifiers. From one `info` block, chosen by language: Vietnamese
(`vi*`) first, then English (`en*`), else the only block: headline, description + instruction -> text,
severity, expires. `resource` digests are SHA-1 while stations verify sha256, so an audio resource is not
used: the officer passes the file with `--audio` (the choice is reported as a note).

Parsed with the standard library after refusing any DOCTYPE (no entities, no external references, no
"billion laughs").
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime

from firmware.protocol.alert import ALERT_ID_PATTERN

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
MAX_CAP_BYTES = 256 * 1024
_STATUS = {"Actual": "actual", "Exercise": "exercise", "Test": "test"}
_MSG_TYPE = {"Alert": "alert", "Update": "update", "Cancel": "cancel"}
_SEVERITY = {
    "Extreme": "extreme",
    "Severe": "severe",
    "Moderate": "moderate",
    "Minor": "minor",
    "Unknown": "unknown",
}


class CapError(ValueError):
    """A CAP document we refuse, with the reason."""


@dataclass
class CapAlert:
    identifier: str
    sent: datetime
    status: str
    msg_type: str
    references: list[str]
    headline: str = ""
    text: str = ""
    severity: str = "unknown"
    expires: datetime | None = None
    language: str = ""
    audio_uris: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _q(name: str) -> str:
    return f"{{{CAP_NS}}}{name}"


def _text(el: ET.Element, name: str) -> str:
    child = el.find(_q(name))
    return (child.text or "").strip() if child is not None else ""


def _time(value: str, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise CapError(f"{what} {value!r} is not a CAP date-time (e.g. 2026-11-26T10:30:00+07:00)") from None
    if t.tzinfo is None:
        raise CapError(f"{what} {value!r} has no time zone offset")
    return t


def _parse_xml(data: bytes) -> ET.Element:
    if len(data) > MAX_CAP_BYTES:
        raise CapError(f"CAP file is {len(data)} bytes, limit {MAX_CAP_BYTES}")
    lowered = data.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise CapError(
            "CAP file has a DOCTYPE/ENTITY declaration; refused (CAP needs none, and entities are unsafe)"
        )
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise CapError(f"CAP file is not well-formed XML: {e}") from None


def _choose_info(infos: list[ET.Element], notes: list[str]) -> ET.Element:
    if not infos:
        raise CapError("CAP alert has no <info> block: nothing to say")
    langs = [(_text(i, "language") or "en-US") for i in infos]
    if len(infos) == 1:
        return infos[0]
    for prefix in ("vi", "en"):
        for info, lang in zip(infos, langs, strict=True):
            if lang.lower() == prefix or lang.lower().startswith(prefix + "-"):
                notes.append(f"picked the {lang} <info> of {len(infos)} ({', '.join(langs)})")
                return info
    raise CapError(
        f"CAP alert has {len(infos)} <info> blocks in {', '.join(langs)}: none in Vietnamese or English"
    )


def parse_cap(data: bytes) -> CapAlert:
    """Parse and check a CAP 1.2 alert. Raises CapError saying what cannot be mapped."""
    root = _parse_xml(data)
    if root.tag != _q("alert"):
        raise CapError(f"root element is {root.tag}, expected <alert> in namespace {CAP_NS}")
    identifier = _text(root, "identifier")
    if not identifier:
        raise CapError("CAP alert has no identifier")
    if not re.match(ALERT_ID_PATTERN, identifier):
        raise CapError(
            f"identifier {identifier!r} cannot be an alert id (letters, digits and . _ : @ -, at most 128 characters)"
        )
    status_cap = _text(root, "status")
    if status_cap not in _STATUS:
        raise CapError(
            f"status {status_cap or '(missing)'} cannot be sent to speakers (only Actual, Exercise, Test)"
        )
    msg_type_cap = _text(root, "msgType")
    if msg_type_cap not in _MSG_TYPE:
        raise CapError(f"msgType {msg_type_cap or '(missing)'} is not an alert, update or cancel")
    sent = _time(_text(root, "sent"), "sent")
    references = []
    for triple in _text(root, "references").split():
        parts = triple.split(",")
        if len(parts) != 3 or not parts[1]:
            raise CapError(f"reference {triple!r} is not sender,identifier,sent")
        references.append(parts[1])
    msg_type = _MSG_TYPE[msg_type_cap]
    if msg_type in ("update", "cancel") and not references:
        raise CapError(f"msgType {msg_type_cap} without references: which alert does it {msg_type}?")
    notes: list[str] = []
    info = _choose_info(root.findall(_q("info")), notes)
    severity_cap = _text(info, "severity") or "Unknown"
    if severity_cap not in _SEVERITY:
        raise CapError(f"severity {severity_cap!r} is not a CAP 1.2 severity")
    text = "\n".join(t for t in (_text(info, "description"), _text(info, "instruction")) if t)
    expires_text = _text(info, "expires")
    audio_uris = []
    for res in info.findall(_q("resource")):
        mime = _text(res, "mimeType")
        uri = _text(res, "uri")
        if mime.startswith("audio/") and uri:
            audio_uris.append(uri)
    return CapAlert(
        identifier=identifier,
        sent=sent,
        status=_STATUS[status_cap],
        msg_type=msg_type,
        references=references,
        headline=_text(info, "headline"),
        text=text,
        severity=_SEVERITY[severity_cap],
        expires=_time(expires_text, "expires") if expires_text else None,
        language=_text(info, "language") or "en-US",
        audio_uris=audio_uris,
        notes=notes,
    )
