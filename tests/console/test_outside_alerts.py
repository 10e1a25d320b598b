"""Alerts sent or cancelled outside the console (the `loa-district` CLI, another console) are listed with their
cancel button, and ones ended elsewhere stop offering it: every active alert of the district can be cancelled
from this page, whoever sent it."""

from __future__ import annotations

import re

from district.cli import main as district_main
from firmware.protocol.keys import generate, signing_key_pem
from tests import waiting
from tests.console.conftest import USER, Browser, multipart, seed_station, start_console, stop_console


def wait_until(predicate, timeout: float = 10.0) -> bool:
    """The console stores what it hears on paho's thread; nothing signals it."""
    return waiting.wait_until(predicate, timeout)


def audited(r, action: str, alert_id: str) -> bool:
    """The console writes the alert, then its audit entry: wait for the latter to know both are done."""
    return any(e.action == action and e.alert_id == alert_id for e in r.store.audit_log())


def cli_alert(fleet, broker, capsys, *args: str, key: str | None = None) -> str:
    capsys.readouterr()
    assert district_main(["alert", *args, "--key", key or str(fleet.key_path), "--broker", broker.url]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_an_alert_sent_from_the_cli_gets_its_cancel_button_and_a_cli_cancel_removes_it(
        logged_in, fleet, broker, capsys):
    alert_id = cli_alert(fleet, broker, capsys, "--scope", "hv/hb", "--status", "exercise", "--text", "Diễn tập lũ")
    assert wait_until(lambda: audited(fleet, "alert-heard", alert_id)), fleet.store.alerts()
    a = fleet.store.alert(alert_id)
    assert (a.status, a.scope, a.text, a.sent_by) == ("exercise", "hv/hb", "Diễn tập lũ", "")
    assert sorted(a.expected) == ["hv/hb/s1", "hv/hb/s2"]  # the stations known in its scope when heard
    _, page = logged_in.get("/")
    assert f'<button type="submit" class="cancel" data-alert="{alert_id}">' in page
    _, page = logged_in.get("/alerts")
    row = re.search(rf'<tr class="alert-exercise" data-alert="{alert_id}">.*?</tr>', page).group(0)
    assert "ngoài bảng điều khiển (dòng lệnh)" in row and 'class="cancel"' in row
    entry = fleet.store.audit_log()[0]
    assert (entry.action, entry.user, entry.alert_id, entry.scope) == ("alert-heard", "", alert_id, "hv/hb")

    # cancelled from the command line: the console hears the cancel and offers no button any more
    capsys.readouterr()
    assert district_main(["cancel", alert_id, "--scope", "hv/hb", "--status", "exercise",
                          "--key", str(fleet.key_path), "--broker", broker.url]) == 0
    assert wait_until(lambda: audited(fleet, "cancel-heard", alert_id))
    assert fleet.store.alert(alert_id).cancelled_at is not None and fleet.store.alert(alert_id).cancelled_by == ""
    _, page = logged_in.get("/")
    assert f'class="cancel" data-alert="{alert_id}"' not in page
    assert fleet.store.audit_log()[0].action == "cancel-heard"


def test_the_console_cancels_an_alert_it_did_not_send(logged_in, fleet, broker, capsys):
    alert_id = cli_alert(fleet, broker, capsys, "--scope", "hv", "--status", "actual", "--yes-actual",
                         "--text", "Lũ quét", "--expires", "2h")
    assert wait_until(lambda: audited(fleet, "alert-heard", alert_id))
    _, page = logged_in.get(f"/alert/{alert_id}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r, _ = logged_in.post(f"/alert/{alert_id}/cancel", {"csrf": csrf})
    assert r.status == 303
    a = fleet.store.alert(alert_id)
    assert a.cancelled_at is not None and a.cancelled_by == USER
    # the console's own cancel, heard back, is not taken for someone else's: a later alert on the same topic
    # is heard after it (one topic, one order), so once that one is listed the cancel has been handled
    barrier = cli_alert(fleet, broker, capsys, "--scope", "hv", "--status", "test", "--text", "Sau")
    assert wait_until(lambda: audited(fleet, "alert-heard", barrier))
    assert [e.action for e in fleet.store.audit_log()[:3]] == ["alert-heard", "cancel", "alert-heard"]
    assert fleet.store.alert(alert_id).cancelled_by == USER


def test_the_consoles_own_alerts_heard_back_stay_its_own(logged_in, fleet, broker, capsys):
    csrf = logged_in.csrf("/alert/new/test")
    body, ctype = multipart({"csrf": csrf, "scope": "hv", "text": "Kiểm tra", "expires": "15m"})
    r, _ = logged_in.request("POST", "/alert/new/test", body, {"Content-Type": ctype})
    assert r.status == 303
    alert_id = r.getheader("Location").split("/alert/")[1].split("?")[0]
    # the console hears its own alert back; a later one on the same topic is heard after it
    barrier = cli_alert(fleet, broker, capsys, "--scope", "hv", "--status", "test", "--text", "Sau")
    assert wait_until(lambda: audited(fleet, "alert-heard", barrier))
    assert fleet.store.alert(alert_id).sent_by == USER
    assert [e.action for e in fleet.store.audit_log() if e.alert_id == alert_id] == ["alert"]


def test_alerts_signed_by_another_key_are_not_listed(fleet, broker, capsys, tmp_path):
    other = tmp_path / "other.key"
    other.write_bytes(signing_key_pem(generate("hv")))
    foreign = cli_alert(fleet, broker, capsys, "--scope", "hv", "--status", "test", "--text", "x", key=str(other))
    # then one of ours on the same path through the broker: once it is listed, the foreign one was handled
    ours = cli_alert(fleet, broker, capsys, "--scope", "hv", "--status", "test", "--text", "y")
    assert wait_until(lambda: fleet.store.alert(ours) is not None)
    assert fleet.store.alert(foreign) is None


def test_a_restarted_console_lists_the_retained_alert_once_and_a_cancel_sent_while_it_was_down(
        broker, tmp_path, capsys):
    key = generate("hv")
    first_console = start_console(broker.url, tmp_path, key)
    try:
        for sid in ("hv/hb/s1", "hv/hn/s3"):
            seed_station(first_console.db, sid)
        first = cli_alert(first_console, broker, capsys, "--scope", "hv/hb", "--status", "exercise", "--text", "Một")
        assert wait_until(lambda: audited(first_console, "alert-heard", first))
    finally:
        stop_console(first_console)
    # while the console is down: `first` is cancelled and a new alert goes to another commune
    assert district_main(["cancel", first, "--scope", "hv/hb", "--status", "exercise",
                          "--key", str(first_console.key_path), "--broker", broker.url]) == 0
    second = cli_alert(first_console, broker, capsys, "--scope", "hv/hn", "--status", "exercise", "--text", "Hai")
    again = start_console(broker.url, tmp_path, key)  # same database, same key
    try:
        assert wait_until(lambda: audited(again, "alert-heard", second))
        assert wait_until(lambda: audited(again, "cancel-heard", first))
        heard = [e.alert_id for e in again.store.audit_log() if e.action == "alert-heard"]
        assert sorted(heard) == sorted([first, second])  # each once, though the retained copies came again
        b = Browser(again.url)
        assert b.login()[0].status == 303
        _, page = b.get("/")
        assert f'class="cancel" data-alert="{second}"' in page
        assert f'class="cancel" data-alert="{first}"' not in page
    finally:
        stop_console(again)
