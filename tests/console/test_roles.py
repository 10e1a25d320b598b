"""Roles: an officer may send actual alerts, an operator only test and exercise ones; both cancel anything.
A role change or a disabled account applies to open sessions at their next request."""

from __future__ import annotations

import io
import re
import sqlite3
import sys

import pytest

from district.cli import main
from district.console.accounts import hash_password
from district.console.store import ConsoleStore, may_send
from tests.console.conftest import Browser, multipart

OPERATOR, OP_PASSWORD = "truc-ban", "mat-khau-truc-ban"


@pytest.fixture
def operator(fleet):
    assert fleet.store.add_user(OPERATOR, hash_password(OP_PASSWORD))  # the default role
    b = Browser(fleet.url)
    assert b.login(OPERATOR, OP_PASSWORD)[0].status == 303
    return b


def test_the_permission_table():
    assert [s for s in ("test", "exercise", "actual") if may_send("officer", s)] == ["test", "exercise", "actual"]
    assert [s for s in ("test", "exercise", "actual") if may_send("operator", s)] == ["test", "exercise"]
    assert not any(may_send(r, "test") for r in (None, "", "admin"))


def test_an_operator_sends_an_exercise_but_cannot_reach_or_post_the_actual_form(operator, fleet):
    _, page = operator.get("/alerts")
    assert re.search(r'<span class="choice actual disabled" id="new-actual"', page)
    assert 'href="/alert/new/actual"' not in page and 'href="/alert/new/exercise"' in page
    assert "(trực ban)" in page
    r, page = operator.get("/alert/new/actual")
    assert r.status == 403 and "không được gửi cảnh báo thật" in page
    # a hand-made POST of the form, or of a confirmation, is refused and audited; nothing is sent
    csrf = operator.csrf("/alert/new/exercise")
    body, ctype = multipart({"csrf": csrf, "scope": "hv", "text": "Lũ"})
    r, _ = operator.request("POST", "/alert/new/actual", body, {"Content-Type": ctype})
    assert r.status == 403
    r, _ = operator.post("/alert/confirm", {"csrf": csrf, "draft": "x", "typed": "hv"})
    assert r.status == 403
    assert fleet.store.alerts() == []
    forbidden = [e for e in fleet.store.audit_log() if e.action == "alert-forbidden"]
    assert [(e.user, e.status) for e in forbidden] == [(OPERATOR, "actual"), (OPERATOR, "actual")]
    # an exercise goes out
    r, _ = operator.request("POST", "/alert/new/exercise", body, {"Content-Type": ctype})
    assert r.status == 303
    [a] = fleet.store.alerts()
    assert (a.status, a.sent_by) == ("exercise", OPERATOR)


def test_an_operator_cancels_an_actual_alert_sent_by_an_officer(logged_in, operator, fleet):
    csrf = logged_in.csrf("/alert/new/actual")
    body, ctype = multipart({"csrf": csrf, "scope": "hv/hb", "text": "Bão số 9", "expires": "1h"})
    _, page = logged_in.request("POST", "/alert/new/actual", body, {"Content-Type": ctype})
    draft = re.search(r'name="draft" value="([^"]+)"', page).group(1)
    r, _ = logged_in.post("/alert/confirm", {"csrf": csrf, "draft": draft, "typed": "hv/hb"})
    assert r.status == 303
    alert_id = r.getheader("Location").split("/alert/")[1].split("?")[0]
    _, page = operator.get(f"/alert/{alert_id}")
    assert f'class="cancel" data-alert="{alert_id}"' in page
    op_csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert operator.post(f"/alert/{alert_id}/cancel", {"csrf": op_csrf})[0].status == 303
    assert fleet.store.alert(alert_id).cancelled_by == OPERATOR


def test_a_role_change_applies_to_an_open_session_at_once(logged_in, fleet, monkeypatch, capsys):
    assert logged_in.get("/alert/new/actual")[0].status == 200
    assert main(["user", "role", "can-bo", "operator", "--db", str(fleet.db_path)]) == 0
    assert logged_in.get("/alert/new/actual")[0].status == 403
    assert main(["user", "role", "can-bo", "officer", "--db", str(fleet.db_path)]) == 0
    assert logged_in.get("/alert/new/actual")[0].status == 200


def test_cli_roles(tmp_path, monkeypatch, capsys):
    db = str(tmp_path / "d.sqlite")
    monkeypatch.setattr(sys, "stdin", io.StringIO("mat-khau-dai-1\n"))
    assert main(["user", "add", "an", "--db", db, "--password-stdin"]) == 0
    assert "role operator" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("mat-khau-dai-2\n"))
    assert main(["user", "add", "binh", "--role", "officer", "--db", db, "--password-stdin"]) == 0
    assert main(["user", "list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^an\s+operator\s+enabled", out, re.M) and re.search(r"^binh\s+officer\s+enabled", out, re.M)
    assert main(["user", "role", "nobody", "officer", "--db", db]) == 1
    assert "no account nobody" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["user", "role", "an", "admin", "--db", db])
    assert e.value.code == 2 and "invalid choice: 'admin'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown role 'admin'"):
        ConsoleStore(db).set_role("an", "admin")


def test_accounts_of_a_database_from_before_roles_keep_sending_actual_alerts(tmp_path):
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as old:  # the table as the console created it before roles existed
        old.execute("CREATE TABLE console_users (name TEXT PRIMARY KEY, pw_hash TEXT NOT NULL, created REAL NOT NULL,"
                    " disabled INTEGER NOT NULL DEFAULT 0, last_login REAL)")
        old.execute("INSERT INTO console_users (name, pw_hash, created) VALUES ('cu', 'h', 0)")
    old.close()
    store = ConsoleStore(db)
    assert store.role("cu") == "officer"
    assert store.add_user("moi", "h") and store.role("moi") == "operator"
    store.close()
    assert ConsoleStore(db).role("cu") == "officer"  # opened again: no second migration, nothing lost
