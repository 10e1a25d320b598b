"""The commune role: an account that runs the programme of its own communes and sends no district alert."""

from __future__ import annotations

import io
import sqlite3
import sys

import pytest

from district.cli import main
from district.console.store import ConsoleStore, may_send


def add(db, name, *args, monkeypatch) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO("mat-khau-dai-1\n"))
    return main(["user", "add", name, "--db", str(db), "--password-stdin", *args])


def test_a_commune_account_manages_only_its_communes_and_sends_no_alert(tmp_path, monkeypatch):
    db = tmp_path / "d.sqlite"
    assert add(db, "van-hoa-hb", "--role", "commune", "--commune", "hoa-vang/hoa-bac", monkeypatch=monkeypatch) == 0
    a = ConsoleStore(db).account("van-hoa-hb")
    assert (a.role, a.communes, a.district_wide) == ("commune", ("hoa-vang/hoa-bac",), False)
    assert a.may_manage("hoa-vang/hoa-bac") and not a.may_manage("hoa-vang/hoa-lien")
    assert a.may_see("hoa-vang/hoa-bac/hb-thon-1") and a.may_see("hoa-vang/hoa-bac")
    assert not a.may_see("hoa-vang/hoa-bac-2/x")  # a prefix of the name is not the commune
    assert not a.may_see("hoa-vang") and not a.may_see("hoa-vang/hoa-lien/hl-1")
    assert not any(may_send(a.role, s) for s in ("test", "exercise", "actual"))


def test_district_accounts_manage_every_commune(tmp_path, monkeypatch):
    db = tmp_path / "d.sqlite"
    assert add(db, "chi-huy", "--role", "officer", monkeypatch=monkeypatch) == 0
    a = ConsoleStore(db).account("chi-huy")
    assert a.district_wide and a.communes == ()
    assert a.may_manage("hoa-vang/hoa-lien") and a.may_see("hoa-vang")


def test_several_communes_and_a_role_change_apply_together(tmp_path, monkeypatch, capsys):
    db = tmp_path / "d.sqlite"
    assert add(db, "an", "--role", "commune", "--commune", "hv/hb", "--commune", "hv/hl", "--commune", "hv/hb",
               monkeypatch=monkeypatch) == 0
    assert ConsoleStore(db).account("an").communes == ("hv/hb", "hv/hl")
    assert main(["user", "list", "--db", str(db)]) == 0
    assert "communes hv/hb, hv/hl" in capsys.readouterr().out
    assert main(["user", "role", "an", "operator", "--db", str(db)]) == 0  # promoted: communes dropped
    assert ConsoleStore(db).account("an").communes == ()
    assert main(["user", "role", "an", "commune", "--commune", "hv/hn", "--db", str(db)]) == 0
    assert ConsoleStore(db).account("an").communes == ("hv/hn",)


@pytest.mark.parametrize(("args", "message"), [
    (["--role", "commune"], "needs at least one --commune"),
    (["--role", "officer", "--commune", "hv/hb"], "works for every commune"),
    (["--role", "commune", "--commune", "hoa-vang"], '"hoa-vang" is not a commune'),
    (["--role", "commune", "--commune", "Hoa Vang/Hoa Bac"], "is not a commune"),
    (["--role", "commune", "--commune", "hv/hb/s1"], "is not a commune"),
])
def test_communes_that_do_not_fit_the_role_are_refused_by_name(tmp_path, monkeypatch, capsys, args, message):
    db = tmp_path / "d.sqlite"
    with pytest.raises(SystemExit) as e:
        add(db, "an", *args, monkeypatch=monkeypatch)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert ConsoleStore(db).users() == []  # nothing half-made


def test_the_store_refuses_communes_that_do_not_fit_the_role(tmp_path):
    store = ConsoleStore(tmp_path / "d.sqlite")
    with pytest.raises(ValueError, match="needs at least one"):
        store.add_user("an", "h", role="commune")
    assert store.add_user("an", "h", role="commune", communes=("hv/hb",))
    with pytest.raises(ValueError, match="works for every commune"):
        store.set_role("an", "officer", ("hv/hb",))
    assert store.account("an").communes == ("hv/hb",)  # unchanged by the refused change


def test_a_database_from_before_the_commune_role_gets_the_column_and_keeps_its_accounts(tmp_path):
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as old:  # the table as the console created it before communes existed
        old.execute("CREATE TABLE console_users (name TEXT PRIMARY KEY, pw_hash TEXT NOT NULL, created REAL NOT NULL,"
                    " disabled INTEGER NOT NULL DEFAULT 0, last_login REAL, role TEXT NOT NULL DEFAULT 'officer')")
        old.execute("INSERT INTO console_users (name, pw_hash, created, role) VALUES ('cu', 'h', 0, 'operator')")
    old.close()
    a = ConsoleStore(db).account("cu")
    assert (a.role, a.communes, a.district_wide) == ("operator", (), True)
