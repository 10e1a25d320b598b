"""The view-model layer of the console: what each page shows, as plain values for its Jinja2 template
(`templates/*.html`, each extending `layout.html`). Every visible string comes from the catalogue (`i18n.py`,
`t` in the templates); every value from the database or a form is escaped by Jinja2's autoescaping, never by
hand. Pages are `Page` objects; `render` puts them in the layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from district.console.i18n import Translator
from district.console.service import EXPIRIES, SEVERITIES, Draft, ScopeChoice, StationAck
from district.console.store import AuditEntry, SentAlert, may_send

_ENV = Environment(loader=PackageLoader("district.console", "templates"), autoescape=True,
                   undefined=StrictUndefined, auto_reload=False, keep_trailing_newline=False)
_ENV.filters["q"] = lambda value: quote(str(value))  # a value inside a URL path or query (then autoescaped)
_ENV.globals["may_send"] = may_send


@dataclass
class Page:
    template: str
    title: str
    nav: str = ""  # which nav entry is highlighted
    status: str = ""  # test | exercise | actual: themed page with a banner
    messages: list[tuple[str, str]] = field(default_factory=list)  # (kind, text)
    code: int = 200
    values: dict[str, Any] = field(default_factory=dict)  # what the template shows


@dataclass
class Ctx:
    """What every page needs: the translator, the user (None on the login page), the CSRF token, the time zone."""

    t: Translator
    user: str | None
    csrf: str
    tz: ZoneInfo
    path: str = "/"
    role: str | None = None  # the account's role (store.ROLES), None on the login page


def when(ctx: Ctx, ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, ctx.tz).strftime("%Y-%m-%d %H:%M:%S")


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def duration(ctx: Ctx, s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    return ctx.t("dur_dhm", d=d, h=h, m=m) if d else ctx.t("dur_hm", h=h, m=m)


def wait_text(t: Translator, seconds: float) -> str:
    """A wait as a person says it: "3 giây", "5 phút" (never "300 giây"); rounded up."""
    s = max(1, math.ceil(seconds))
    if s < 60:
        return t("wait_one_second") if s == 1 else t("wait_seconds", n=s)
    m = math.ceil(s / 60)
    return t("wait_one_minute") if m == 1 else t("wait_minutes", n=m)


def _render(ctx: Ctx, template: str, **values) -> str:
    return _ENV.get_template(template).render(
        ctx=ctx, t=ctx.t, when=lambda ts: when(ctx, ts), pct=pct, duration=lambda s: duration(ctx, s), **values)


def render(ctx: Ctx, page: Page) -> str:
    return _render(ctx, page.template, page=page, **page.values)


def _messages(error: str) -> list[tuple[str, str]]:
    return [("error", error)] if error else []


# -- login -----------------------------------------------------------------------------------------------------

def login_page(ctx: Ctx, *, login_csrf: str, user: str = "", nxt: str = "/", error: str = "",
               code: int = 200) -> Page:
    return Page("login.html", ctx.t("login_title"), messages=_messages(error), code=code,
                values={"login_csrf": login_csrf, "user": user, "nxt": nxt})


# -- fleet -----------------------------------------------------------------------------------------------------

def fleet_fragment(ctx: Ctx, fleet: list[dict]) -> str:
    t = ctx.t
    communes: dict[str, list[dict]] = {}
    for f in fleet:
        s = f["row"]
        last = f["last"]
        faults = list(f["faults"])
        if f["failed_7d"]:
            faults.append(t("failed_7d", n=f["failed_7d"]))
        if f["content_missing"]:
            faults.append(t("content_missing", n=f["content_missing"], failed=f["content_failed"]))
        communes.setdefault(f"{s.district}/{s.commune}", []).append({
            "sid": s.sid, "station": s.station, "state": s.state or "unknown", "online": s.state == "online",
            "since": when(ctx, s.state_since), "uptime": duration(ctx, f["uptime_s"]),
            "up_24h": pct(f["up_24h"]), "up_7d": pct(f["up_7d"]),
            "last": "-" if last is None else f"{(last[0] or last[1])[:40]} · {when(ctx, last[2])}",
            "faults": "; ".join(faults) or "-",
        })
    return _render(ctx, "_fleet.html",
                   communes=[(c, rows, sum(1 for r in rows if r["online"])) for c, rows in communes.items()],
                   total=len(fleet), online=sum(1 for f in fleet if f["row"].state == "online"),
                   faulty=sum(1 for f in fleet if f["faults"] or f["failed_7d"] or f["content_missing"]))


def fleet_page(ctx: Ctx, fleet: list[dict], active: list[SentAlert] | None = None) -> Page:
    return Page("fleet.html", ctx.t("fleet_title"), nav="fleet",
                values={"active": active or [], "fleet_html": Markup(fleet_fragment(ctx, fleet))})


# -- station ---------------------------------------------------------------------------------------------------

def uptime_chart(ctx: Ctx, days: list[tuple[float, float | None]]) -> dict:
    """Daily uptime bars (0-100 %), oldest on the left; grey where nothing is known."""
    w, h, pad, top = 640, 180, 34, 12
    bw = (w - pad - 8) / max(1, len(days))
    grid = [{"y": f"{top + (1 - frac) * (h - top):.1f}", "ty": f"{top + (1 - frac) * (h - top) + 4:.1f}",
             "label": int(frac * 100)} for frac in (0, .5, 1)]
    bars = []
    for i, (day, up) in enumerate(days):
        bh = None if up is None else max(1.0, up * (h - top))
        bars.append({
            "x": f"{pad + i * bw + 2:.1f}", "w": f"{bw - 4:.1f}", "up": up,
            "label": datetime.fromtimestamp(day, ctx.tz).strftime("%d/%m"),
            "y": None if bh is None else f"{h - bh:.1f}", "h": None if bh is None else f"{bh:.1f}",
            "colour": None if up is None else "#2e7d32" if up >= .95 else "#f5a000" if up >= .8 else "#c62828",
            "labelled": (len(days) - 1 - i) % 2 == 0,  # every other day, today always labelled
        })
    return {"w": w, "h": h, "pad": pad, "grid": grid, "bars": bars}


def station_page(ctx: Ctx, row, days, playlog: list[tuple], tele, running_s: float | None) -> Page:
    return Page("station.html", f"{ctx.t('station')} {row.sid}", nav="fleet", values={
        "row": row, "running_s": running_s, "playlog": playlog, "chart": uptime_chart(ctx, days),
        "activity": f"{tele[1]} {tele[2]}".strip() if tele else None,
    })


# -- alerts ----------------------------------------------------------------------------------------------------

def alerts_page(ctx: Ctx, items: list[SentAlert], now: float) -> Page:
    return Page("alerts.html", ctx.t("alerts_title"), nav="alerts",
                values={"items": items, "active": [a for a in items if a.active(now)], "now": now})


def choose_page(ctx: Ctx) -> Page:
    return Page("choose.html", ctx.t("new_alert"), nav="new")


def _scope_options(ctx: Ctx, choices: list[ScopeChoice], selected: str) -> list[dict]:
    t = ctx.t
    out = []
    for c in choices:
        indent = {"district": "", "commune": "\u00a0\u00a0", "station": "\u00a0\u00a0\u00a0\u00a0"}[c.level]
        out.append({"scope": c.scope, "stations": c.stations, "online": c.online, "selected": c.scope == selected,
                    "label": f"{indent}{t('level_' + c.level)} {c.scope} "
                             f"({t('n_stations', n=c.stations, online=c.online)})"})
    return out


def alert_form(ctx: Ctx, status: str, choices: list[ScopeChoice], *, values: dict | None = None,
               error: str = "", audio_enabled: bool = False, max_upload_mb: float = 0,
               updates: SentAlert | None = None) -> Page:
    """The form of a new alert of `status`; with `updates`, of an update of that alert (scope and status fixed)."""
    t = ctx.t
    v = values or {}
    scope = updates.scope if updates is not None else v.get("scope", "")
    n = next((c for c in choices if c.scope == scope), None)
    count_text = t("scope_count", n=n.stations, online=n.online, scope=n.scope) if n else t("scope_none")
    action = f"/alert/{quote(updates.id)}/update" if updates is not None else f"/alert/new/{status}"
    title = t("title_update", id=updates.id) if updates is not None else t(f"title_{status}")
    # the banner of the status (from the page's `status`) stays on an update: an update of a test is still a test
    return Page("alert_form.html", title, nav="alerts" if updates is not None else "new", status=status,
                messages=_messages(error), code=400 if error else 200, values={
                    "status": status, "v": v, "scope": scope, "count_text": count_text, "updates": updates,
                    "scope_options": _scope_options(ctx, choices, scope), "action": action,
                    "severities": SEVERITIES, "expiries": EXPIRIES, "audio_enabled": audio_enabled,
                    "max_upload_mb": f"{max_upload_mb:g}"})


def confirm_page(ctx: Ctx, token: str, d: Draft, *, error: str = "") -> Page:
    return Page("confirm.html", ctx.t("confirm_title"), nav="new", status="actual", messages=_messages(error),
                code=400 if error else 200,
                values={"token": token, "d": d, "online": sum(1 for s in d.stations if s.state == "online")})


def acks_fragment(ctx: Ctx, a: SentAlert, acks: list[StationAck]) -> str:
    t = ctx.t
    goal = "received" if a.status == "test" else "done"
    counts = [(s, sum(1 for x in acks if s in x.states)) for s in ("received", "playing", "done", "failed", "rejected")]
    reached = sum(1 for x in acks if (x.state in ("received", "playing", "done") if goal == "received"
                                      else "done" in x.states))
    return _render(ctx, "_acks.html", goal=goal, counts=counts, reached=reached, acks=acks,
                   history=lambda x: " → ".join(t(f"state_{s}", default=s) for s in x.states) or "-")


def alert_page(ctx: Ctx, a: SentAlert, acks: list[StationAck], now: float, *, sent: bool = False) -> Page:
    msgs = [("ok", ctx.t("sent_ok", id=a.id))] if sent else []
    return Page("alert.html", f"{ctx.t('alert')} {a.id}", nav="alerts", status=a.status, messages=msgs,
                values={"a": a, "now": now, "acks_html": Markup(acks_fragment(ctx, a, acks))})


# -- audit -----------------------------------------------------------------------------------------------------

def audit_page(ctx: Ctx, entries: list[AuditEntry]) -> Page:
    return Page("audit.html", ctx.t("audit_title"), nav="audit", values={"entries": entries})


def error_page(ctx: Ctx, code: int, key: str) -> Page:
    return Page("error.html", ctx.t(key), code=code)
