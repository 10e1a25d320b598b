"""`bulk`: an inventory CSV in, every station out; every bad row reported with its line, nothing half-written."""

from __future__ import annotations

import pytest

from provisioning.fsutil import tree_snapshot
from tests.provisioning.conftest import cli

GOOD = """commune,station,name,location,preset,audio_device
hoa-bac,thon-1,Loa thôn 1,Nhà văn hóa thôn 1,pi-hat-v1,
hoa-bac,thon-2,"Loa thôn 2, chợ",,relay-board-gpio17,USB Audio
# comment lines and blank lines are skipped

hoa-lien,thon-1b,,,,
"""


def _bulk(district_dir, csv_path, *extra):
    return cli("bulk", csv_path, "--district-dir", district_dir, *extra)


def test_bulk_provisions_every_row_with_a_progress_bar_and_a_summary(district_dir, tmp_path, capsys):
    inv = tmp_path / "inventory.csv"
    inv.write_text(GOOD, encoding="utf-8")
    assert _bulk(district_dir, inv) == 0
    out = capsys.readouterr().out
    assert "3/3" in out and "3 station(s)" in out and "3 created" in out
    assert "\r" not in out  # not a terminal: one plain line per station
    assert sorted(p.name for p in (district_dir / "stations").iterdir()) == ["thon-1", "thon-1b", "thon-2"]
    assert 'name = "Loa thôn 2, chợ"' in (district_dir / "stations/thon-2/station.toml").read_text()
    before = tree_snapshot(district_dir)
    assert _bulk(district_dir, inv) == 0
    assert "3 unchanged" in capsys.readouterr().out
    assert tree_snapshot(district_dir) == before


def test_bulk_reads_a_spreadsheet_export_with_bom_and_crlf(district_dir, tmp_path):
    inv = tmp_path / "inventory.csv"
    inv.write_bytes("\ufeffCommune,Station\r\nhoa-bac,thon-1\r\n".encode())
    assert _bulk(district_dir, inv) == 0
    assert (district_dir / "stations/thon-1/station.json").exists()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("commune,statoin\nc1,s1\n", ["line 1: unknown column(s) statoin", "line 1: missing required column(s) station"]),
        ("name\nx\n", ["line 1: missing required column(s) commune, station"]),
        (
            "commune,station,name\nc1,s1,a\nc1,S 2,b\nc1,s1,c\nc2,s4\nc2,s5,x,y\n,s6,\nc3,s7,n\n",
            [
                "line 3: station id 'S 2' must be lowercase",
                "line 4: station 's1' already on line 2",
                "line 5: 2 field(s), expected 3",
                "line 6: 4 field(s), expected 3",
                "line 7: commune id is empty",
            ],
        ),
        ('commune,station,name\nc1,s1,"unclosed\nc1,s2,b\n', ["line 2: broken CSV"]),
        ("commune,station,preset\nc1,s1,pi-hat-v9\n", ["line 2: unknown preset 'pi-hat-v9'"]),
        ("", ["empty: expected a header line"]),
        ("commune,station\n", ["no stations"]),
    ],
)
def test_bad_rows_are_all_reported_with_line_numbers_and_nothing_is_written(
    district_dir, tmp_path, capsys, text, expected
):
    inv = tmp_path / "inventory.csv"
    inv.write_text(text)
    before = tree_snapshot(district_dir)
    assert _bulk(district_dir, inv) == 1
    err = capsys.readouterr().err
    for e in expected:
        assert e in err, err
    assert len([ln for ln in err.splitlines() if ln.startswith("  ")]) == len(expected), err
    assert tree_snapshot(district_dir) == before


def test_an_existing_station_with_other_settings_stops_the_whole_run_before_writing(district_dir, tmp_path, capsys):
    assert cli("station", "--district-dir", district_dir, "--commune", "hoa-bac", "--station", "thon-2") == 0
    inv = tmp_path / "inventory.csv"
    inv.write_text(GOOD)
    before = tree_snapshot(district_dir)
    assert _bulk(district_dir, inv) == 1
    assert "line 3: station 'thon-2' already exists with other settings (use --rotate" in capsys.readouterr().err
    assert tree_snapshot(district_dir) == before
    assert _bulk(district_dir, inv, "--rotate") == 0
    assert "3 rotated" not in capsys.readouterr().out  # two are new, one rotated


def test_not_utf8_and_missing_files_are_clear_errors(district_dir, tmp_path, capsys):
    inv = tmp_path / "inventory.csv"
    inv.write_bytes("commune,station,name\nc1,s1,Lo\xe0\n".encode("latin-1"))
    assert _bulk(district_dir, inv) == 1
    assert "not UTF-8" in capsys.readouterr().err
    assert _bulk(district_dir, tmp_path / "missing.csv") == 1
    assert "cannot read" in capsys.readouterr().err


def test_progress_bar_redraws_in_place_on_a_terminal(monkeypatch):
    import io

    from provisioning.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("TERM", "xterm")
    out = Tty()
    bar = Progress(2, out, width=4)
    bar.step("a")
    bar.step("b")
    assert out.getvalue() == "\r\033[K[##--] 1/2 a\r\033[K[####] 2/2 b\n"
    monkeypatch.setenv("TERM", "dumb")
    out = Tty()
    Progress(1, out, width=2).step("x")
    assert out.getvalue() == "[##] 1/1 x\n"
