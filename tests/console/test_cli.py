"""`loa-district user ...` and `loa-district console` as an operator runs them."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from district.cli import main
from district.console.accounts import verify_password
from district.console.store import ConsoleStore

REPO = Path(__file__).resolve().parents[2]


def add(db: Path, name: str, password: str, monkeypatch) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    return main(["user", "add", name, "--db", str(db), "--password-stdin"])


def test_user_add_list_disable_enable_passwd(tmp_path, monkeypatch, capsys):
    db = tmp_path / "d.sqlite"
    assert add(db, "nguyen-an", "mat-khau-1", monkeypatch) == 0
    assert add(db, "nguyen-an", "mat-khau-2", monkeypatch) == 1  # exists
    assert main(["user", "list", "--db", str(db)]) == 0
    assert "nguyen-an" in capsys.readouterr().out
    assert main(["user", "disable", "nguyen-an", "--db", str(db)]) == 0
    store = ConsoleStore(db)
    assert not store.is_enabled("nguyen-an")
    assert main(["user", "enable", "nguyen-an", "--db", str(db)]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("mat-khau-moi\n"))
    assert main(["user", "passwd", "nguyen-an", "--db", str(db), "--password-stdin"]) == 0
    assert verify_password("mat-khau-moi", store.password_hash("nguyen-an"))
    assert main(["user", "disable", "nobody", "--db", str(db)]) == 1
    store.close()


def test_user_add_refuses_short_passwords_and_bad_names(tmp_path, monkeypatch, capsys):
    db = tmp_path / "d.sqlite"
    with pytest.raises(SystemExit) as e:
        add(db, "an", "short", monkeypatch)
    assert e.value.code == 2 and "at least 8" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        add(db, "a b", "long-enough-1", monkeypatch)


def test_user_add_without_a_terminal_asks_for_password_stdin(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(SystemExit):
        main(["user", "add", "an", "--db", str(tmp_path / "d.sqlite")])
    assert "--password-stdin" in capsys.readouterr().err


def test_console_command_serves_until_sigterm(broker, tmp_path):
    assert main(["keygen", "--district", "hv", "--out", str(tmp_path / "keys")]) == 0
    key = next((tmp_path / "keys").glob("*.key"))
    db = tmp_path / "d.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "district.cli", "console", "--db", str(db), "--broker", broker.url, "--key", str(key),
         "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()  # blocks until the server is up (or the process died)
        assert line.startswith("console on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        url = line.split()[2]
        with urllib.request.urlopen(url + "/login", timeout=10) as r:
            assert r.status == 200 and "Đăng nhập" in r.read().decode()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.build_opener(NoRedirect).open(url + "/", timeout=10)
        assert e.value.code == 303
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "loa-district user add" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_console_command_reports_an_unreachable_broker(tmp_path, capsys):
    assert main(["keygen", "--district", "hv", "--out", str(tmp_path / "keys")]) == 0
    key = next((tmp_path / "keys").glob("*.key"))
    from simulator.broker import free_port

    rc = main(["console", "--db", str(tmp_path / "d.sqlite"), "--broker", f"mqtt://127.0.0.1:{free_port()}",
               "--key", str(key), "--port", "0"])
    assert rc == 1 and "loa-district console:" in capsys.readouterr().err


def test_console_command_refuses_a_trusted_proxy_that_is_not_an_address(tmp_path, capsys):
    assert main(["keygen", "--district", "hv", "--out", str(tmp_path / "keys")]) == 0
    key = next((tmp_path / "keys").glob("*.key"))
    with pytest.raises(SystemExit) as exit_:
        main(["console", "--db", str(tmp_path / "d.sqlite"), "--broker", "mqtt://127.0.0.1:1", "--key", str(key),
              "--trusted-proxy", "127.0.0.1", "--trusted-proxy", "nginx.local"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--trusted-proxy 'nginx.local': not an IP address or network" in err
    assert "Traceback" not in err
