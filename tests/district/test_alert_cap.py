"""CAP 1.2 XML -> alert payload: what maps, and what is refused with a reason."""

from __future__ import annotations

import pytest

from district.cap import CapError, parse_cap

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


def cap(
    *, status="Actual", msg_type="Alert", references="", infos=None, identifier="VN-2026-1", extra=""
) -> bytes:
    if infos is None:
        infos = [info("vi-VN", "Lũ quét")]
    refs = f"<references>{references}</references>" if references else ""
    return (
        HEAD
        + '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        + f"<identifier>{identifier}</identifier><sender>kttv</sender><sent>2026-11-26T10:30:00+07:00</sent>"
        + f"<status>{status}</status><msgType>{msg_type}</msgType><scope>Public</scope>{refs}{extra}"
        + "".join(infos)
        + "</alert>"
    ).encode()


def info(
    lang: str | None, headline: str, *, severity="Extreme", expires="2026-11-26T16:30:00+07:00", resource=""
):
    lang_el = f"<language>{lang}</language>" if lang else ""
    return (
        f"<info>{lang_el}<category>Met</category><event>Flood</event><urgency>Immediate</urgency>"
        f"<severity>{severity}</severity><certainty>Observed</certainty><expires>{expires}</expires>"
        f"<headline>{headline}</headline><description>Mô tả</description><instruction>Sơ tán</instruction>"
        f"{resource}</info>"
    )


def test_a_vietnamese_cap_alert_maps_field_by_field():
    a = parse_cap(cap())
    assert (a.identifier, a.status, a.msg_type, a.severity, a.headline) == (
        "VN-2026-1",
        "actual",
        "alert",
        "extreme",
        "Lũ quét",
    )
    assert a.text == "Mô tả\nSơ tán"
    assert a.sent.isoformat() == "2026-11-26T10:30:00+07:00"
    assert a.expires.isoformat() == "2026-11-26T16:30:00+07:00"


def test_vietnamese_info_is_preferred_over_english_and_the_choice_is_reported():
    a = parse_cap(cap(infos=[info("en-US", "Flash flood"), info("vi-VN", "Lũ quét")]))
    assert a.headline == "Lũ quét"
    assert a.notes == ["picked the vi-VN <info> of 2 (en-US, vi-VN)"]


def test_english_is_the_fallback_language():
    assert parse_cap(cap(infos=[info("fr-FR", "Crue"), info("en-GB", "Flood")])).headline == "Flood"


def test_references_become_the_referenced_identifiers():
    a = parse_cap(cap(msg_type="Cancel", references="kttv,VN-2026-0,2026-11-26T10:00:00+07:00"))
    assert a.msg_type == "cancel" and a.references == ["VN-2026-0"]


def test_audio_resources_are_listed_not_trusted():
    res = "<resource><resourceDesc>audio</resourceDesc><mimeType>audio/mpeg</mimeType><uri>http://x/a.mp3</uri></resource>"
    assert parse_cap(cap(infos=[info("vi", "Lũ", resource=res)])).audio_uris == ["http://x/a.mp3"]


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (cap(status="Draft"), "status Draft cannot be sent"),
        (cap(status="System"), "status System cannot be sent"),
        (cap(msg_type="Ack"), "msgType Ack is not"),
        (cap(msg_type="Error"), "msgType Error is not"),
        (cap(msg_type="Update"), "without references"),
        (cap(infos=[]), "no <info>"),
        (cap(infos=[info("fr-FR", "Crue"), info("de-DE", "Flut")]), "none in Vietnamese or English"),
        (cap(identifier="has space"), "cannot be an alert id"),
        (cap(infos=[info("vi", "x", severity="Apocalyptic")]), "not a CAP 1.2 severity"),
        (cap(infos=[info("vi", "x", expires="tomorrow")]), "not a CAP date-time"),
        (cap(references="just-an-id", msg_type="Cancel"), "not sender,identifier,sent"),
        (b"<alert>not cap</alert>", "expected <alert> in namespace"),
        (b"<alert", "not well-formed"),
        (
            HEAD.encode() + b'<!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&x;</alert>',
            "DOCTYPE",
        ),
        (
            b'<!DOCTYPE a [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><a>&b;</a>',
            "DOCTYPE",
        ),
    ],
)
def test_what_cannot_be_mapped_is_refused_saying_why(document, why):
    with pytest.raises(CapError, match=why):
        parse_cap(document)
