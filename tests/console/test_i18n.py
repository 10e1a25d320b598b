"""The catalogues: Vietnamese and English have the same keys and placeholders, and every key the console uses
(literal or built from a known family) exists in both."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from district.console import i18n
from district.console.service import EXPIRIES, SEVERITIES, STATUSES
from district.console.store import ROLES
from firmware.protocol.ack import ACK_STATES

HERE = Path(i18n.__file__).parent
SOURCES = [HERE / name for name in ("views.py", "server.py", "service.py")] + sorted((HERE / "templates").glob("*.html"))


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in SOURCES:
        src = path.read_text("utf-8")
        keys |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_-]+)["']\s*[,)]""", src))  # families: below
        keys |= set(re.findall(r"""FormError\(\s*["']([a-z0-9_-]+)["']""", src))
        keys |= {f"action_{a}" for a in re.findall(r"""audit\([^,]+,\s*["']([a-z-]+)["']""", src)}
    for s in STATUSES:
        keys |= {f"banner_{s}", f"banner_{s}_hint", f"status_{s}", f"new_{s}", f"new_{s}_hint", f"title_{s}",
                 f"intro_{s}", f"send_{s}"}
    keys |= {f"state_{s}" for s in (*ACK_STATES, "online", "offline", "unknown", "none")}
    keys |= {f"level_{x}" for x in ("district", "commune", "station")}
    keys |= {f"severity_{x}" for x in SEVERITIES} | {f"expires_{x}" for x in EXPIRIES}
    keys |= {f"kind_{x}" for x in ("programme", "alert")}
    keys |= {f"result_{x}" for x in ("played", "partial", "missed", "refused", "failed")}
    keys |= {"ack_goal_received", "ack_goal_done"}
    keys |= {f"role_{r}" for r in ROLES}
    return keys


def test_both_languages_have_the_same_keys():
    vi, en = set(i18n.VI), set(i18n.EN)
    assert vi - en == set(), f"missing in English: {sorted(vi - en)}"
    assert en - vi == set(), f"missing in Vietnamese: {sorted(en - vi)}"


@pytest.mark.parametrize("key", sorted(i18n.VI))
def test_placeholders_agree(key):
    assert placeholders(i18n.VI[key]) == placeholders(i18n.EN[key])


def test_every_key_the_console_uses_exists_in_every_language():
    keys = used_keys()
    assert len(keys) > 100  # the extraction found the views' strings
    for lang, cat in i18n.CATALOGUES.items():
        missing = sorted(keys - set(cat))
        assert not missing, f"{lang}: {missing}"


def test_no_empty_strings_and_vietnamese_is_really_vietnamese():
    for lang, cat in i18n.CATALOGUES.items():
        assert all(v.strip() for v in cat.values()), lang
    assert "KIỂM TRA" in i18n.VI["banner_test"] and "THẬT" in i18n.VI["banner_actual"]
    assert i18n.DEFAULT_LANG == "vi"


def test_a_missing_key_or_placeholder_never_raises():
    t = i18n.Translator("en")
    assert t("no_such_key") == "no_such_key"
    assert t("no_such_key", default="x") == "x"
    assert t("n_online", online=1) == i18n.EN["n_online"]  # {n} missing: the raw text, no KeyError
    assert i18n.Translator("fr").lang == "vi"
