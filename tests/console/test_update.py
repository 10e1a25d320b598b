"""Updating an active alert from the console: a signed `update` that replaces it (same scope and status), actual
ones confirmed like new ones, never an update of an alert that has ended; and, end to end, a station that stops
the old message and plays the new one."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta

import pytest

from district.alerts import build_alert, publish_alert
from district.mqtt import DistrictClient
from firmware.core import commands as C
from firmware.protocol.topics import Scope
from tests.console.conftest import Browser, multipart, start_console, stop_console
from tests.console.test_outside_alerts import audited, wait_until
from tests.console.test_roles import OP_PASSWORD, OPERATOR
from tests.district.test_alert_cli import payload_of, retained
from tests.scenarios.harness import TZ, config, start_station, write_key


def send(b: Browser, status: str, scope: str, text: str) -> str:
    csrf = b.csrf(f"/alert/new/{status}")
    body, ctype = multipart({"csrf": csrf, "scope": scope, "text": text, "expires": "1h"})
    r, page = b.request("POST", f"/alert/new/{status}", body, {"Content-Type": ctype})
    if status == "actual":
        draft = re.search(r'name="draft" value="([^"]+)"', page).group(1)
        r, _ = b.post("/alert/confirm", {"csrf": csrf, "draft": draft, "typed": scope})
    assert r.status == 303
    return r.getheader("Location").split("/alert/")[1].split("?")[0]


def update(b: Browser, alert_id: str, text: str, **extra):
    r, page = b.get(f"/alert/{alert_id}/update")
    assert r.status == 200, page[:300]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    body, ctype = multipart({"csrf": csrf, "text": text, "expires": "30m", **extra})
    return b.request("POST", f"/alert/{alert_id}/update", body, {"Content-Type": ctype})


def new_id(r) -> str:
    return r.getheader("Location").split("/alert/")[1].split("?")[0]


def test_an_exercise_is_updated_in_place(logged_in, fleet, broker):
    old = send(logged_in, "exercise", "hv/hb", "Nước lên 1 mét")
    _, page = logged_in.get(f"/alert/{old}")
    assert f'href="/alert/{old}/update"' in page
    _, form = logged_in.get(f"/alert/{old}/update")
    assert "Nước lên 1 mét" in form and 'id="scope-fixed"' in form and "hv/hb" in form
    assert 'name="scope"' not in form  # scope and status come from the alert, not from the form
    r, _ = update(logged_in, old, "Nước lên 2 mét, sơ tán", scope="hv")  # a smuggled scope is ignored
    assert r.status == 303
    new = new_id(r)
    a_old, a_new = fleet.store.alert(old), fleet.store.alert(new)
    assert (a_new.status, a_new.scope, a_new.text, a_new.replaces) == ("exercise", "hv/hb", "Nước lên 2 mét, sơ tán", old)
    assert a_old.replaced_by == new and a_old.cancelled_at is not None and not fleet.console.active(a_old)
    # what the stations get: the retained message on the scope's topic is the signed update of the old alert
    [msg] = retained(broker.url, "loa/v1/hv/hb/alert")
    doc = payload_of(msg)
    assert (doc["id"], doc["msg_type"], doc["references"], doc["status"]) == (new, "update", [old], "exercise")
    entry = fleet.store.audit_log()[0]
    assert (entry.action, entry.alert_id) == ("update", new) and f"replaces {old}" in entry.detail
    _, page = logged_in.get(f"/alert/{old}")
    assert f"đã được thay bằng {new}" in page and 'class="cancel"' not in page
    assert logged_in.get(f"/alert/{old}/update")[0].status == 409
    _, page = logged_in.get(f"/alert/{new}")
    assert f'href="/alert/{old}"' in page and 'class="cancel"' in page


def test_an_actual_update_is_confirmed_by_typing_the_scope(logged_in, fleet):
    old = send(logged_in, "actual", "hv/hn", "Bão số 9 đổ bộ chiều nay")
    r, page = update(logged_in, old, "Bão số 9 đổ bộ trong 2 giờ tới")
    assert r.status == 200 and 'id="confirm-form"' in page and f'id="confirm-replaces">{old}<' in page
    assert fleet.store.alert(old).replaced_by is None  # nothing sent yet
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    draft = re.search(r'name="draft" value="([^"]+)"', page).group(1)
    r, page = logged_in.post("/alert/confirm", {"csrf": csrf, "draft": draft, "typed": "hv"})
    assert r.status == 400 and fleet.store.alert(old).replaced_by is None
    r, _ = logged_in.post("/alert/confirm", {"csrf": csrf, "draft": draft, "typed": "hv/hn"})
    assert r.status == 303
    assert fleet.store.alert(old).replaced_by == new_id(r)


def test_no_update_of_an_alert_that_ended_meanwhile(logged_in, fleet):
    old = send(logged_in, "actual", "hv/hb", "Lũ quét")
    r, page = update(logged_in, old, "Lũ quét, sơ tán ngay")
    draft = re.search(r'name="draft" value="([^"]+)"', page).group(1)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    fleet.console.cancel(old, user="khac", ip="127.0.0.1")  # cancelled by someone else before the confirmation
    r, page = logged_in.post("/alert/confirm", {"csrf": csrf, "draft": draft, "typed": "hv/hb"})
    assert "không còn hiệu lực" in page
    assert [a.id for a in fleet.store.alerts()] == [old]  # nothing new recorded, so nothing was sent
    r, page = logged_in.get(f"/alert/{old}/update")
    assert r.status == 409


@pytest.mark.parametrize("bad, message", [({"text": " "}, "Hãy nhập nội dung"),
                                          ({"expires": "99y"}, "Thời gian hiệu lực không hợp lệ")])
def test_bad_update_input_shows_the_update_form_again(logged_in, fleet, bad, message):
    old = send(logged_in, "test", "hv", "Kiểm tra")
    r, page = update(logged_in, old, **{"text": "x", **bad})
    assert r.status == 400 and message in page and f'action="/alert/{old}/update"' in page
    assert fleet.store.alert(old).replaced_by is None


def test_an_operator_updates_an_exercise_but_not_an_actual_alert(logged_in, fleet):
    from district.console.accounts import hash_password

    actual = send(logged_in, "actual", "hv/hb", "Cháy rừng")
    exercise = send(logged_in, "exercise", "hv/hn", "Diễn tập")
    fleet.store.add_user(OPERATOR, hash_password(OP_PASSWORD))
    op = Browser(fleet.url)
    assert op.login(OPERATOR, OP_PASSWORD)[0].status == 303
    _, page = op.get(f"/alert/{actual}")
    assert "/update" not in page and 'class="cancel"' in page
    assert op.get(f"/alert/{actual}/update")[0].status == 403
    csrf = op.csrf("/alert/new/test")
    body, ctype = multipart({"csrf": csrf, "text": "x"})
    assert op.request("POST", f"/alert/{actual}/update", body, {"Content-Type": ctype})[0].status == 403
    assert fleet.store.audit_log()[0].action == "alert-forbidden"
    r, _ = update(op, exercise, "Diễn tập, lần 2")
    assert r.status == 303 and fleet.store.alert(new_id(r)).sent_by == OPERATOR


def test_an_update_sent_outside_the_console_replaces_the_alert_it_lists(fleet, broker):
    old = fleet.console.send(fleet.console.draft(status="exercise", scope="hv/hb", text="Một"), user="can-bo",
                             ip="127.0.0.1")
    now = datetime.now().astimezone()
    upd = build_alert(scope=Scope.parse("hv/hb"), status="exercise", now=now, expires_in=timedelta(minutes=30),
                      text="Hai", updates=old)
    with DistrictClient.from_url(broker.url) as c:  # e.g. `loa-district alert --cap` with msgType Update
        publish_alert(c, upd, fleet.console.key, now)
    assert wait_until(lambda: audited(fleet, "alert-heard", upd.id))
    assert fleet.store.alert(upd.id).replaces == old and fleet.store.alert(upd.id).sent_by == ""
    assert fleet.store.alert(old).replaced_by == upd.id


def test_the_station_stops_the_old_message_and_plays_the_update(broker, tmp_path):
    key = write_key(tmp_path)
    (tmp_path / "s1").mkdir()
    shutil.copy(tmp_path / "trust.json", tmp_path / "s1" / "trust.json")
    app, sink, rec = start_station(config(tmp_path / "s1", broker_url=broker.url), at=datetime.now(TZ))
    console = start_console(broker.url, tmp_path, key)
    try:
        assert wait_until(lambda: console.console.station("hv/hb/s1") is not None)
        b = Browser(console.url)
        assert b.login()[0].status == 303
        old = send(b, "exercise", "hv/hb/s1", "Nước sông đang lên, chuẩn bị sơ tán. " * 4)

        def states(alert_id):
            return [x.states for x in console.console.acks(console.store.alert(alert_id))][0]

        assert wait_until(lambda: "playing" in states(old), 20), states(old)  # the village hears it
        r, _ = update(b, old, "Sơ tán ngay.")
        new = new_id(r)
        assert wait_until(lambda: "done" in states(new), 60), states(new)
        [old_ack] = console.console.acks(console.store.alert(old))
        assert old_ack.state == "done" and f"updated by {new}" in old_ack.reason
        played = [p.ref for p in rec.of(C.Play) if p.kind == "alert"]
        assert played[0] == old and new in played
    finally:
        stop_console(console)
        app.stop()
    # the village heard the old message cut, then the new one, whose play-log entry is complete
    entries = {e.ref: e for e in rec.reports() if e.kind == "alert"}
    assert entries[old].result == "partial" and entries[old].played_s > 0, entries[old]
    assert f"updated by {new}" in entries[old].reason
    assert entries[new].result == "played"
