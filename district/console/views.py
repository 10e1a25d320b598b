"""Server-rendered HTML of the console. Every visible string comes from the catalogue (`i18n.py`); every value
from the database or a form goes through `esc`. Pages are `Page` objects; the server adds the layout.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from string import Template
from urllib.parse import quote
from zoneinfo import ZoneInfo

from district.console.i18n import Translator
from district.console.service import EXPIRIES, SEVERITIES, Draft, ScopeChoice, StationAck
from district.console.store import AuditEntry, SentAlert, may_send

_LAYOUT = Template(resources.files("district.console").joinpath("templates/layout.html").read_text("utf-8"))


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@dataclass
class Page:
    title: str
    content: str
    nav: str = ""  # which nav entry is highlighted
    status: str = ""  # test | exercise | actual: themed page with a banner
    messages: list[tuple[str, str]] = field(default_factory=list)  # (kind, text)
    code: int = 200


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


def csrf_field(ctx: Ctx) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(ctx.csrf)}">'


def status_banner(ctx: Ctx, status: str) -> str:
    return (f'<div class="banner {status}" id="status-banner" data-status="{status}">'
            f'<span class="big">{esc(ctx.t(f"banner_{status}"))}</span>'
            f'<span class="small">{esc(ctx.t(f"banner_{status}_hint"))}</span></div>')


def tag(ctx: Ctx, status: str) -> str:
    return f'<span class="tag {esc(status)}">{esc(ctx.t(f"status_{status}"))}</span>'


def badge(ctx: Ctx, state: str | None) -> str:
    key = state or "none"
    return f'<span class="badge {esc(key)}">{esc(ctx.t(f"state_{key}", default=key))}</span>'


def render(ctx: Ctx, page: Page) -> str:
    t = ctx.t
    nav = ""
    who = ""
    if ctx.user:
        items = [("fleet", "/", t("nav_fleet")), ("alerts", "/alerts", t("nav_alerts")),
                 ("new", "/alert/new", t("nav_new_alert")), ("audit", "/audit", t("nav_audit"))]
        nav = "".join(f'<a href="{href}" class="{"here" if page.nav == k else ""}" id="nav-{k}">{esc(label)}</a>'
                      for k, href, label in items)
        role = t(f"role_{ctx.role}", default=ctx.role or "")
        who = (f'<span id="who">{esc(t("signed_in_as", user=ctx.user, role=role))}</span>'
               f'<form method="post" action="/logout" class="inline">{csrf_field(ctx)}'
               f'<button class="link" id="logout">{esc(t("logout"))}</button></form>')
    back = quote(ctx.path, safe="/")
    lang_switch = " · ".join(
        f'<a href="/lang/{code}?next={back}" class="{"here" if code == t.lang else ""}" id="lang-{code}">{name}</a>'
        for code, name in (("vi", "Tiếng Việt"), ("en", "English"))
    )
    msgs = "".join(f'<div class="msg {esc(kind)}" role="alert">{esc(text)}</div>' for kind, text in page.messages)
    return _LAYOUT.substitute(
        lang=t.lang, title=esc(page.title), app=esc(t("app_name")),
        body_class=f"status-{page.status}" if page.status else "", nav=nav, lang_switch=lang_switch, who=who,
        banner=status_banner(ctx, page.status) if page.status else "", messages=msgs, content=page.content,
        footer=esc(t("footer")),
    )


# -- login -----------------------------------------------------------------------------------------------------

def login_page(ctx: Ctx, *, login_csrf: str, user: str = "", nxt: str = "/", error: str = "",
               code: int = 200) -> Page:
    t = ctx.t
    content = f"""<form method="post" action="/login" class="login" id="login-form">
<h1>{esc(t("login_title"))}</h1>
<input type="hidden" name="csrf" value="{esc(login_csrf)}">
<input type="hidden" name="next" value="{esc(nxt)}">
<label for="user">{esc(t("user_name"))}</label>
<input type="text" id="user" name="user" value="{esc(user)}" autocomplete="username" required autofocus>
<label for="password">{esc(t("password"))}</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="login">{esc(t("login"))}</button>
</form>"""
    return Page(t("login_title"), content, messages=[("error", error)] if error else [], code=code)


# -- fleet -----------------------------------------------------------------------------------------------------

def fleet_fragment(ctx: Ctx, fleet: list[dict]) -> str:
    t = ctx.t
    if not fleet:
        return f'<p class="muted" id="no-stations">{esc(t("no_stations"))}</p>'
    online = sum(1 for f in fleet if f["row"].state == "online")
    faulty = sum(1 for f in fleet if f["faults"] or f["failed_7d"] or f["content_missing"])
    out = [f"""<div class="summary">
<div class="card"><b id="count-online">{online}/{len(fleet)}</b>{esc(t("summary_online"))}</div>
<div class="card"><b id="count-offline">{len(fleet) - online}</b>{esc(t("summary_offline"))}</div>
<div class="card"><b id="count-faults">{faulty}</b>{esc(t("summary_faults"))}</div>
</div>"""]
    communes: dict[str, list[dict]] = {}
    for f in fleet:
        communes.setdefault(f"{f['row'].district}/{f['row'].commune}", []).append(f)
    for commune, rows in communes.items():
        n_on = sum(1 for f in rows if f["row"].state == "online")
        out.append(f'<h2>{esc(t("commune"))} {esc(commune)} <span class="muted">'
                   f'({esc(t("n_online", online=n_on, n=len(rows)))})</span></h2>')
        out.append(f"""<table class="fleet"><thead><tr><th>{esc(t("station"))}</th><th>{esc(t("state"))}</th>
<th>{esc(t("since"))}</th><th>{esc(t("uptime_now"))}</th><th>{esc(t("up_24h"))}</th><th>{esc(t("up_7d"))}</th>
<th>{esc(t("last_played"))}</th><th>{esc(t("faults"))}</th></tr></thead><tbody>""")
        for f in rows:
            s = f["row"]
            last = f["last"]
            last_txt = "-" if last is None else f"{(last[0] or last[1])[:40]} · {when(ctx, last[2])}"
            faults = list(f["faults"])
            if f["failed_7d"]:
                faults.append(t("failed_7d", n=f["failed_7d"]))
            if f["content_missing"]:
                faults.append(t("content_missing", n=f["content_missing"], failed=f["content_failed"]))
            out.append(
                f'<tr data-sid="{esc(s.sid)}"><td><a href="/station/{esc(quote(s.sid))}">{esc(s.station)}</a></td>'
                f"<td>{badge(ctx, s.state or 'unknown')}</td><td>{esc(when(ctx, s.state_since))}</td>"
                f"<td>{esc(duration(ctx, f['uptime_s']))}</td><td>{pct(f['up_24h'])}</td><td>{pct(f['up_7d'])}</td>"
                f"<td>{esc(last_txt)}</td><td>{esc('; '.join(faults) or '-')}</td></tr>"
            )
        out.append("</tbody></table>")
    return "\n".join(out)


def active_strip(ctx: Ctx, active: list[SentAlert]) -> str:
    """Active alerts with their cancel buttons, on the start page: stopping one is never more than a click away."""
    if not active:
        return ""
    rows = "".join(
        f'<tr class="alert-{esc(a.status)}" data-alert="{esc(a.id)}"><td>{tag(ctx, a.status)}</td>'
        f'<td><a href="/alert/{esc(quote(a.id))}">{esc(a.id)}</a></td><td>{esc(a.scope)}</td>'
        f"<td>{esc(a.headline or a.text[:80] or a.audio_url)}</td><td>{cancel_button(ctx, a)}</td></tr>"
        for a in active
    )
    return f'<h2>{esc(ctx.t("active_alerts"))}</h2><table id="active-alerts">{rows}</table>'


def fleet_page(ctx: Ctx, fleet: list[dict], active: list[SentAlert] | None = None) -> Page:
    t = ctx.t
    content = (f'{active_strip(ctx, active or [])}'
               f'<h1>{esc(t("fleet_title"))}</h1><p class="muted">{esc(t("live_hint"))}</p>'
               f'<div id="fleet" data-refresh="/fragment/fleet" data-every="3000">{fleet_fragment(ctx, fleet)}</div>')
    return Page(t("fleet_title"), content, nav="fleet")


# -- station ---------------------------------------------------------------------------------------------------

def uptime_svg(ctx: Ctx, days: list[tuple[float, float | None]]) -> str:
    """Daily uptime bars (0-100 %), oldest on the left; grey where nothing is known."""
    w, h, pad, top = 640, 180, 34, 12
    bw = (w - pad - 8) / max(1, len(days))
    parts = [f'<svg class="chart" id="uptime-chart" viewBox="0 0 {w} {h + 24}" width="{w}" height="{h + 24}" '
             f'role="img" aria-label="{esc(ctx.t("uptime_chart"))}" xmlns="http://www.w3.org/2000/svg">']
    for frac in (0, .5, 1):
        y = top + (1 - frac) * (h - top)
        parts.append(f'<line x1="{pad}" x2="{w - 4}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ccd" stroke-width="1"/>'
                     f'<text x="2" y="{y + 4:.1f}" font-size="11" fill="#555">{int(frac * 100)}%</text>')
    for i, (day, up) in enumerate(days):
        x = pad + i * bw + 2
        label = datetime.fromtimestamp(day, ctx.tz).strftime("%d/%m")
        if up is None:
            parts.append(f'<rect x="{x:.1f}" y="{h - 4}" width="{bw - 4:.1f}" height="4" fill="#bbb"/>')
        else:
            bh = max(1.0, up * (h - top))
            colour = "#2e7d32" if up >= .95 else "#f5a000" if up >= .8 else "#c62828"
            parts.append(f'<rect x="{x:.1f}" y="{h - bh:.1f}" width="{bw - 4:.1f}" height="{bh:.1f}" '
                         f'fill="{colour}"><title>{label}: {pct(up)}</title></rect>')
        if (len(days) - 1 - i) % 2 == 0:  # every other day, today always labelled
            parts.append(f'<text x="{x:.1f}" y="{h + 16}" font-size="11" fill="#333">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def station_page(ctx: Ctx, row, days, playlog: list[tuple], tele, running_s: float | None) -> Page:
    t = ctx.t
    info = [
        (t("state"), badge(ctx, row.state or "unknown")),
        (t("since"), esc(when(ctx, row.state_since))),
        (t("uptime_now"), esc(duration(ctx, running_s))),
        (t("last_seen"), esc(when(ctx, row.last_seen))),
        (t("firmware"), esc(row.fw or "-")),
    ]
    if tele:
        info.append((t("activity"), esc(f"{tele[1]} {tele[2]}".strip())))
    rows = "".join(
        f'<tr class="result-{esc(r[7])}"><td>{esc(when(ctx, r[0]))}</td><td>{esc(t(f"kind_{r[1]}", default=r[1]))}</td>'
        f"<td>{esc(r[2] or r[3])}</td><td>{esc(r[4])}</td><td>{r[5]:.0f} / {r[6]:.0f} s</td>"
        f"<td>{badge(ctx, r[7]) if r[7] in ('failed',) else esc(t(f'result_{r[7]}', default=r[7]))}</td>"
        f"<td>{esc(r[8] or '')}</td></tr>"
        for r in playlog
    )
    content = f"""<h1>{esc(t("station"))} {esc(row.sid)}</h1>
<table class="info">{"".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in info)}</table>
<h2>{esc(t("uptime_chart"))}</h2>
{uptime_svg(ctx, days)}
<h2>{esc(t("playlog"))}</h2>
<table id="playlog"><thead><tr><th>{esc(t("time"))}</th><th>{esc(t("kind"))}</th><th>{esc(t("item"))}</th>
<th>{esc(t("level"))}</th><th>{esc(t("played"))}</th><th>{esc(t("result"))}</th><th>{esc(t("reason"))}</th></tr>
</thead><tbody>{rows or f'<tr><td colspan="7" class="muted">{esc(t("no_playlog"))}</td></tr>'}</tbody></table>"""
    return Page(f"{t('station')} {row.sid}", content, nav="fleet")


# -- alerts ----------------------------------------------------------------------------------------------------

def cancel_button(ctx: Ctx, a: SentAlert) -> str:
    return (f'<form method="post" action="/alert/{esc(quote(a.id))}/cancel" class="inline cancel-form">'
            f'{csrf_field(ctx)}<button type="submit" class="cancel" data-alert="{esc(a.id)}">'
            f'{esc(ctx.t("cancel_now"))}</button></form>')


def sender(ctx: Ctx, a: SentAlert) -> str:
    """The account that sent it, or "outside the console" for one heard on the broker (CLI, another console)."""
    return a.sent_by or ctx.t("sent_outside")


def alert_state(ctx: Ctx, a: SentAlert, now: float) -> str:
    if a.replaced_by is not None:
        return (f'<span class="badge cancelled">{esc(ctx.t("alert_replaced", id=a.replaced_by, when=when(ctx, a.cancelled_at)))}'
                "</span>")
    if a.cancelled_at is not None:
        return f'<span class="badge cancelled">{esc(ctx.t("alert_cancelled", when=when(ctx, a.cancelled_at)))}</span>'
    if a.expires <= now:
        return f'<span class="badge none">{esc(ctx.t("alert_expired"))}</span>'
    return f'<span class="badge playing">{esc(ctx.t("alert_active"))}</span>'


def alert_choices(ctx: Ctx) -> str:
    """The three ways to send; one the account's role may not use is shown, greyed, with the reason."""
    t = ctx.t
    out = []
    for s in ("test", "exercise", "actual"):
        if may_send(ctx.role, s):
            out.append(f'<a class="choice {s}" href="/alert/new/{s}" id="new-{s}">{esc(t(f"new_{s}"))}'
                       f'<small>{esc(t(f"new_{s}_hint"))}</small></a>')
        else:
            out.append(f'<span class="choice {s} disabled" id="new-{s}" aria-disabled="true">{esc(t(f"new_{s}"))}'
                       f'<small>{esc(t("role_may_not_send"))}</small></span>')
    return "".join(out)


def alerts_page(ctx: Ctx, items: list[SentAlert], now: float) -> Page:
    t = ctx.t
    active = [a for a in items if a.active(now)]
    choices = alert_choices(ctx)

    def row(a: SentAlert) -> str:
        action = cancel_button(ctx, a) if a.active(now) else ""
        return (f'<tr class="alert-{esc(a.status)}" data-alert="{esc(a.id)}"><td>{tag(ctx, a.status)}</td>'
                f'<td><a href="/alert/{esc(quote(a.id))}">{esc(a.id)}</a></td><td>{esc(a.scope)}</td>'
                f"<td>{esc(a.headline or a.text[:80] or a.audio_url)}</td><td>{esc(when(ctx, a.issued))}</td>"
                f"<td>{esc(sender(ctx, a))}</td><td>{alert_state(ctx, a, now)}</td><td>{action}</td></tr>")

    head = (f"<thead><tr><th>{esc(t('status'))}</th><th>{esc(t('alert_id'))}</th><th>{esc(t('scope'))}</th>"
            f"<th>{esc(t('message'))}</th><th>{esc(t('issued'))}</th><th>{esc(t('sent_by'))}</th>"
            f"<th>{esc(t('state'))}</th><th></th></tr></thead>")
    active_html = (f'<table id="active-alerts">{head}<tbody>{"".join(row(a) for a in active)}</tbody></table>'
                   if active else f'<p class="muted" id="no-active">{esc(t("no_active_alerts"))}</p>')
    content = f"""<h1>{esc(t("alerts_title"))}</h1>
<h2>{esc(t("active_alerts"))}</h2>
{active_html}
<h2>{esc(t("new_alert"))}</h2>
<div class="choices">{choices}</div>
<h2>{esc(t("recent_alerts"))}</h2>
<table id="recent-alerts">{head}<tbody>{"".join(row(a) for a in items)}</tbody></table>"""
    return Page(t("alerts_title"), content, nav="alerts")


def choose_page(ctx: Ctx) -> Page:
    t = ctx.t
    choices = alert_choices(ctx)
    return Page(t("new_alert"), f'<h1>{esc(t("new_alert"))}</h1><div class="choices">{choices}</div>', nav="new")


def _scope_select(ctx: Ctx, choices: list[ScopeChoice], selected: str) -> str:
    t = ctx.t
    opts = [f'<option value="">{esc(t("choose_scope"))}</option>']
    for c in choices:
        indent = {"district": "", "commune": "\u00a0\u00a0", "station": "\u00a0\u00a0\u00a0\u00a0"}[c.level]
        label = f"{indent}{t('level_' + c.level)} {c.scope} ({t('n_stations', n=c.stations, online=c.online)})"
        sel = " selected" if c.scope == selected else ""
        opts.append(f'<option value="{esc(c.scope)}" data-count="{c.stations}" data-online="{c.online}"{sel}>'
                    f"{esc(label)}</option>")
    return f'<select id="scope" name="scope" required>{"".join(opts)}</select>'


def alert_form(ctx: Ctx, status: str, choices: list[ScopeChoice], *, values: dict | None = None,
               error: str = "", audio_enabled: bool = False, max_upload_mb: float = 0,
               updates: SentAlert | None = None) -> Page:
    """The form of a new alert of `status`; with `updates`, of an update of that alert (scope and status fixed)."""
    t = ctx.t
    v = values or {}
    scope = updates.scope if updates is not None else v.get("scope", "")
    n = next((c for c in choices if c.scope == scope), None)
    count_text = (t("scope_count", n=n.stations, online=n.online, scope=n.scope) if n else t("scope_none"))
    severity = "".join(
        f'<option value="{s}"{" selected" if v.get("severity", "unknown") == s else ""}>'
        f'{esc(t("severity_" + s))}</option>' for s in SEVERITIES)
    expires = "".join(
        f'<option value="{e}"{" selected" if v.get("expires", "30m") == e else ""}>{esc(t("expires_" + e))}</option>'
        for e in EXPIRIES)
    audio = (f'<div class="wide"><label for="audio">{esc(t("audio_file"))}</label>'
             f'<input type="file" id="audio" name="audio" accept="audio/*">'
             f'<p class="hint">{esc(t("audio_hint", mb=f"{max_upload_mb:g}"))}</p></div>'
             if audio_enabled else f'<p class="hint">{esc(t("audio_disabled"))}</p>')
    count = (f'<div class="scope-count" id="scope-count" data-template="{esc(t("scope_count_js"))}" '
             f'data-none="{esc(t("scope_none"))}">{esc(count_text)}</div>')
    scope_field = (f'<p class="fixed-scope" id="scope-fixed">{esc(scope)} · {esc(count_text)}</p>'
                   if updates is not None else f"{_scope_select(ctx, choices, scope)}\n{count}")
    fields = f"""<div class="wide"><label for="scope">{esc(t("scope"))}</label>{scope_field}</div>
<div><label for="headline">{esc(t("headline"))}</label>
<input type="text" id="headline" name="headline" maxlength="200" value="{esc(v.get("headline", ""))}"></div>
<div><label for="severity">{esc(t("severity"))}</label><select id="severity" name="severity">{severity}</select>
<label for="expires">{esc(t("expires"))}</label><select id="expires" name="expires">{expires}</select></div>
<div class="wide"><label for="text">{esc(t("text"))}</label>
<textarea id="text" name="text" maxlength="2000">{esc(v.get("text", ""))}</textarea>
<p class="hint">{esc(t("text_hint"))}</p></div>
{audio}"""
    submit = f'<button type="submit" class="send {status}" id="send">{esc(t(f"send_{status}"))}</button>'
    action = f"/alert/{quote(updates.id)}/update" if updates is not None else f"/alert/new/{status}"
    form_open = (f'<form method="post" action="{esc(action)}" enctype="multipart/form-data" '
                 f'class="alert-form form-{status}" id="alert-form">{csrf_field(ctx)}')
    if updates is not None:
        # the banner of the status (from the page's `status`) stays: an update of a test is still a test
        intro = (f'<div class="wide"><h1>{esc(t("title_update", id=updates.id))}</h1>'
                 f'<p>{esc(t("intro_update"))}</p></div>')
        warn = f'<div class="warning">{esc(t("warning_actual"))}</div>' if status == "actual" else ""
        body = f"{form_open}{warn}{intro}{fields}<div class=\"wide\">{submit}</div></form>"
        return Page(t("title_update", id=updates.id), body, nav="alerts", status=status,
                    messages=[("error", error)] if error else [], code=400 if error else 200)
    if status == "test":
        body = f'{form_open}<h1>{esc(t("title_test"))}</h1><p>{esc(t("intro_test"))}</p>{fields}{submit}</form>'
    elif status == "exercise":
        body = (f'{form_open}<div class="wide"><h1>{esc(t("title_exercise"))}</h1><p>{esc(t("intro_exercise"))}</p>'
                f'</div>{fields}<div class="wide">{submit}</div></form>')
    else:
        body = (f'{form_open}<div class="warning">{esc(t("warning_actual"))}</div><h1>{esc(t("title_actual"))}</h1>'
                f'<p>{esc(t("intro_actual"))}</p>{fields}{submit}<p class="hint">{esc(t("actual_step_hint"))}</p>'
                "</form>")
    return Page(t(f"title_{status}"), body, nav="new", status=status,
                messages=[("error", error)] if error else [], code=400 if error else 200)


def confirm_page(ctx: Ctx, token: str, d: Draft, *, error: str = "") -> Page:
    t = ctx.t
    online = sum(1 for s in d.stations if s.state == "online")
    what = d.text or t("audio_named", name=d.audio_name)
    replaces = (f'<tr><th>{esc(t("replaces"))}</th><td id="confirm-replaces">{esc(d.updates)}</td></tr>'
                if d.updates else "")
    content = f"""<form method="post" action="/alert/confirm" class="alert-form form-actual" id="confirm-form">
{csrf_field(ctx)}<input type="hidden" name="draft" value="{esc(token)}">
<div class="warning">{esc(t("warning_actual"))}</div>
<h1>{esc(t("confirm_title"))}</h1>
<p class="scope-count" id="scope-count">{esc(t("confirm_count", n=len(d.stations), online=online,
                                              offline=len(d.stations) - online))}</p>
<table class="info">{replaces}<tr><th>{esc(t("scope"))}</th><td><span class="confirm-scope">{esc(d.scope)}</span></td></tr>
<tr><th>{esc(t("headline"))}</th><td>{esc(d.headline or "-")}</td></tr>
<tr><th>{esc(t("severity"))}</th><td>{esc(t("severity_" + d.severity))}</td></tr>
<tr><th>{esc(t("message"))}</th><td>{esc(what)}</td></tr></table>
<label for="typed">{esc(t("type_scope", scope=str(d.scope)))}</label>
<input type="text" id="typed" name="typed" autocomplete="off" required>
<button type="submit" class="send actual" id="send">{esc(t("send_actual_final"))}</button>
<a class="button" href="/alerts" id="abort">{esc(t("abort"))}</a>
</form>"""
    return Page(t("confirm_title"), content, nav="new", status="actual",
                messages=[("error", error)] if error else [], code=400 if error else 200)


def acks_fragment(ctx: Ctx, a: SentAlert, acks: list[StationAck]) -> str:
    t = ctx.t
    goal = "received" if a.status == "test" else "done"
    counts = {s: sum(1 for x in acks if s in x.states) for s in ("received", "playing", "done", "failed", "rejected")}
    reached = sum(1 for x in acks if (x.state in ("received", "playing", "done") if goal == "received"
                                      else "done" in x.states))
    summary = "".join(f'<span id="acks-{s}">{esc(t(f"state_{s}"))}: <b>{n}</b></span>' for s, n in counts.items())
    rows = "".join(
        f'<tr data-sid="{esc(x.sid)}" data-state="{esc(x.state or "")}"><td>{esc(x.sid)}</td>'
        f"<td>{badge(ctx, x.state)}</td>"
        f"<td>{esc(' → '.join(t(f'state_{s}', default=s) for s in x.states) or '-')}</td>"
        f"<td>{esc(x.reason or '')}</td></tr>"
        for x in acks
    )
    return (f'<p class="progress-goal" id="acks-goal">{esc(t("ack_goal_" + goal, n=reached, total=len(acks)))}</p>'
            f'<div class="progress">{summary}</div>'
            f'<table id="acks-table"><thead><tr><th>{esc(t("station"))}</th><th>{esc(t("state"))}</th>'
            f"<th>{esc(t('ack_history'))}</th><th>{esc(t('reason'))}</th></tr></thead><tbody>{rows}</tbody></table>")


def alert_page(ctx: Ctx, a: SentAlert, acks: list[StationAck], now: float, *, sent: bool = False) -> Page:
    t = ctx.t
    cancel = cancel_button(ctx, a) if a.active(now) else ""
    if a.active(now) and may_send(ctx.role, a.status):
        cancel += (f' <a class="button update" id="update" href="/alert/{esc(quote(a.id))}/update">'
                   f'{esc(t("update_button"))}</a>')
    links = "".join(
        f'<tr><th>{esc(t(key))}</th><td><a id="{key}" href="/alert/{esc(quote(other))}">{esc(other)}</a></td></tr>'
        for key, other in (("replaces", a.replaces), ("replaced_by", a.replaced_by)) if other)
    content = f"""<h1>{tag(ctx, a.status)} {esc(t("alert"))} <span id="alert-id">{esc(a.id)}</span></h1>
<div class="cancel-box">{cancel}</div>
<table class="info">
<tr><th>{esc(t("state"))}</th><td id="alert-state">{alert_state(ctx, a, now)}</td></tr>{links}
<tr><th>{esc(t("scope"))}</th><td>{esc(a.scope)}</td></tr>
<tr><th>{esc(t("headline"))}</th><td>{esc(a.headline or "-")}</td></tr>
<tr><th>{esc(t("message"))}</th><td>{esc(a.text or a.audio_url)}</td></tr>
<tr><th>{esc(t("issued"))}</th><td>{esc(when(ctx, a.issued))} · {esc(sender(ctx, a))}</td></tr>
<tr><th>{esc(t("expires_at"))}</th><td>{esc(when(ctx, a.expires))}</td></tr>
</table>
<h2>{esc(t("acks_title"))}</h2>
<div id="acks" data-refresh="/fragment/acks/{esc(quote(a.id))}" data-every="1500">{acks_fragment(ctx, a, acks)}</div>"""
    msgs = [("ok", t("sent_ok", id=a.id))] if sent else []
    return Page(f"{t('alert')} {a.id}", content, nav="alerts", status=a.status, messages=msgs)


# -- audit -----------------------------------------------------------------------------------------------------

def audit_page(ctx: Ctx, entries: list[AuditEntry]) -> Page:
    t = ctx.t
    rows = "".join(
        f'<tr data-action="{esc(e.action)}" data-alert="{esc(e.alert_id)}"><td>{esc(when(ctx, e.at))}</td>'
        f"<td>{esc(e.user or t('sent_outside'))}</td><td>{esc(t(f'action_{e.action}', default=e.action))}</td>"
        f"<td>{tag(ctx, e.status) if e.status else ''}</td><td>{esc(e.scope)}</td>"
        f'<td>{f"""<a href="/alert/{esc(quote(e.alert_id))}">{esc(e.alert_id)}</a>""" if e.alert_id else ""}</td>'
        f"<td>{esc(e.detail)}</td><td>{esc(e.ip)}</td></tr>"
        for e in entries
    )
    content = f"""<h1>{esc(t("audit_title"))}</h1><p class="muted">{esc(t("audit_hint"))}</p>
<table id="audit"><thead><tr><th>{esc(t("time"))}</th><th>{esc(t("user_name"))}</th><th>{esc(t("action"))}</th>
<th>{esc(t("status"))}</th><th>{esc(t("scope"))}</th><th>{esc(t("alert_id"))}</th><th>{esc(t("detail"))}</th>
<th>{esc(t("address"))}</th></tr></thead><tbody>{rows}</tbody></table>"""
    return Page(t("audit_title"), content, nav="audit")


def error_page(ctx: Ctx, code: int, key: str) -> Page:
    return Page(ctx.t(key), f'<h1>{esc(ctx.t(key))}</h1><p><a href="/">{esc(ctx.t("back_home"))}</a></p>', code=code)
