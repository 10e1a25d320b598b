"""The content library's engine (`district.library`): every upload format decodes and is measured by BS.1770,
bad uploads are refused with the reason, items get the gain to the district's target loudness, and an item a
schedule uses cannot be removed. Files are made by ffmpeg and espeak-ng in the test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from district.cli import main
from district.library import (
    Library,
    LibraryError,
    gain_for,
    measure,
    programme_source,
    render_speech,
    safe_filename,
)
from firmware.core.schedule import parse_schedule

SPEECH = "Xin chào bà con. Đây là bản tin của xã Hòa Bắc về lịch tiêm phòng cho đàn gia súc tuần này."


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("media")
    (d / "speech.wav").write_bytes(render_speech(SPEECH))
    ffmpeg("-f", "lavfi", "-i", "aevalsrc=0.1*sin(2*PI*1000*t):s=48000:d=10", str(d / "sine-20.wav"))
    src = str(d / "speech.wav")
    ffmpeg("-i", src, str(d / "speech.mp3"))
    ffmpeg("-i", src, str(d / "speech.flac"))
    ffmpeg("-i", src, "-c:a", "libvorbis", str(d / "speech.ogg"))
    ffmpeg("-i", src, "-c:a", "libopus", str(d / "speech.opus"))
    ffmpeg("-i", src, "-c:a", "aac", str(d / "speech.m4a"))
    ffmpeg("-i", src, "-c:a", "libopus", str(d / "recorder.webm"))  # what Chrome's MediaRecorder makes
    ffmpeg("-f", "lavfi", "-i", "aevalsrc=0.1*sin(2*PI*440*t):s=44100:d=20", "-b:a", "128k", str(d / "long.mp3"))
    ffmpeg("-f", "lavfi", "-i", "aevalsrc=0.7*sin(2*PI*1000*t):s=48000:d=5", str(d / "loud.wav"))
    ffmpeg("-f", "lavfi", "-i", "aevalsrc=0.001*sin(2*PI*440*t):s=48000:d=5", str(d / "quiet.wav"))
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "3", str(d / "silence.wav"))
    return d


@pytest.fixture
def library(tmp_path):
    with Library(tmp_path / "district.sqlite", tmp_path / "content") as lib:
        yield lib


# -- the measurement ---------------------------------------------------------------------------------------


def test_a_1khz_sine_at_minus_20_dbfs_measures_minus_23_lufs(media):
    m = measure(media / "sine-20.wav")
    assert m.integrated_lufs == pytest.approx(-23.0, abs=0.1)  # BS.1770: a 0 dBFS 1 kHz sine is -3.01 LKFS
    assert m.true_peak_dbtp == pytest.approx(-20.0, abs=0.1)
    assert m.duration_s == pytest.approx(10.0, abs=0.01)


def test_speech_measures_as_pyloudnorm_measures_it(media):
    pyln = pytest.importorskip("pyloudnorm")
    data, rate = sf.read(media / "speech.wav")
    reference = pyln.Meter(rate).integrated_loudness(data)
    assert measure(media / "speech.wav").integrated_lufs == pytest.approx(reference, abs=0.3)


@pytest.mark.parametrize(("name", "fmt"), [
    ("speech.wav", "wav"), ("speech.mp3", "mp3"), ("speech.flac", "flac"), ("speech.ogg", "ogg"),
    ("speech.opus", "ogg"), ("speech.m4a", "mov,mp4,m4a,3gp,3g2,mj2"), ("recorder.webm", "matroska,webm"),
])
def test_every_upload_format_decodes_and_measures_like_the_original(media, library, name, fmt):
    original = measure(media / "speech.wav")
    item = library.ingest((media / name).read_bytes(), name, title="Bản tin", category="tin", uploader="lan")
    assert item.format == fmt
    assert item.duration_s == pytest.approx(original.duration_s, abs=0.1)
    assert item.integrated_lufs == pytest.approx(original.integrated_lufs, abs=1.0)  # lossy codecs move it a bit
    assert (library.content_dir / item.file).read_bytes() == (media / name).read_bytes()
    assert item.file.startswith(item.sha256)


# -- the gain ----------------------------------------------------------------------------------------------


def test_gain_brings_an_item_to_the_target_and_a_quiet_one_says_how_short_it_falls():
    assert gain_for(-10.0) == (-6.0, 0.0)
    assert gain_for(-16.0) == (0.0, 0.0)
    assert gain_for(-25.5) == (0.0, 9.5)  # the schedule's gain is <= 0 dB: no boost
    assert gain_for(-90.0, -16.0) == (0.0, 74.0)
    assert gain_for(10.0, -60.0) == (-60.0, 0.0)


def test_a_loud_and_a_quiet_item_get_the_gains_that_level_them(media, library):
    loud = library.ingest(media / "loud.wav", "loud.wav", title="To", uploader="lan")
    assert loud.integrated_lufs == pytest.approx(-6.1, abs=0.2)
    assert loud.gain_db == pytest.approx(-16.0 - loud.integrated_lufs, abs=0.11) and loud.note == ""
    quiet = library.ingest(media / "quiet.wav", "quiet.wav", title="Nhỏ", uploader="lan")
    assert quiet.gain_db == 0.0 and quiet.too_quiet_lu > 30
    assert quiet.note.startswith(f"too quiet by {quiet.too_quiet_lu:.1f} LU")


def test_the_target_is_configurable(media, tmp_path):
    with Library(tmp_path / "d.sqlite", tmp_path / "c", target_lufs=-23.0) as lib:
        assert lib.ingest(media / "sine-20.wav", "s.wav", title="s", uploader="x").gain_db == 0.0
    with pytest.raises(LibraryError, match="outside -40..-5 LUFS"):
        Library(tmp_path / "d.sqlite", tmp_path / "c", target_lufs=3)


def test_an_item_becomes_a_schedule_file_source_with_its_gain(media, library):
    item = library.ingest(media / "speech.mp3", "speech.mp3", title="Bản tin", uploader="lan")
    source, gain = programme_source(item, "http://content.example/c/")
    doc = parse_schedule(__import__("json").dumps({"version": 1, "programmes": [
        {"id": "tin", "title": item.title, "start": "06:00", "recurrence": {"days": "daily"},
         "source": source, "gain_db": gain}]}))
    assert doc.programmes[0].source.url == f"http://content.example/c/{item.file}"
    assert doc.programmes[0].gain_db == item.gain_db


# -- list, get, remove ---------------------------------------------------------------------------------------


def test_items_are_listed_with_their_metadata_and_an_upload_twice_is_one_item(media, library):
    a = library.ingest(media / "speech.wav", "tin sáng.wav", title="Tin sáng", category="tin",
                       uploader="Nguyễn Thị Lan", now=1000.0)
    again = library.ingest(media / "speech.wav", "copy.wav", title="Khác", uploader="x")
    assert again == a
    library.ingest(media / "speech.flac", "nhac.flac", title="Nhạc", category="nhạc", uploader="x")
    assert [i.title for i in library.list()] == ["Nhạc", "Tin sáng"]
    [tin] = library.list("tin")
    assert (tin.uploader, tin.uploaded, tin.filename) == ("Nguyễn Thị Lan", 1000.0, "tin sáng.wav")
    assert library.get(a.sha256) == a


def test_an_item_a_schedule_uses_cannot_be_removed_and_the_schedules_are_named(media, library):
    item = library.ingest(media / "speech.wav", "a.wav", title="Tin sáng", uploader="x")
    source, gain = programme_source(item, "http://c.example")
    used = {"version": 7, "target": "hv/hb", "programmes": [
        {"id": "tin-sang", "title": "t", "start": "06:00", "recurrence": {"days": "daily"}, "source": source}]}
    other = {"version": 8, "programmes": []}
    with pytest.raises(LibraryError, match=r'"Tin sáng" is used by schedule v7 \(hv/hb\): tin-sang'):
        library.remove(item.sha256, [used, parse_schedule(__import__("json").dumps(other))])
    assert library.get(item.sha256) is not None
    library.remove(item.sha256, [other])
    assert library.get(item.sha256) is None and not (library.content_dir / item.file).exists()
    with pytest.raises(LibraryError, match="no library item"):
        library.remove(item.sha256, [])


def test_text_to_speech_is_rendered_and_measured_like_an_upload(library):
    item = library.speak(SPEECH, title="Thông báo", category="tts", uploader="lan")
    assert item.format == "wav" and item.duration_s > 3 and -40 < item.integrated_lufs < 0
    with pytest.raises(LibraryError, match="the text is empty"):
        library.speak("   ", title="x", uploader="lan")


# -- bad input -----------------------------------------------------------------------------------------------


def _truncated(media: Path, tmp_path: Path, name: str, keep: float) -> bytes:
    raw = (media / name).read_bytes()
    return raw[: int(len(raw) * keep)]


@pytest.mark.parametrize(("make", "reason"), [
    (lambda m, t: b"", "the file is empty"),
    (lambda m, t: b"Day khong phai la am thanh\n" * 100, "not audio that can be decoded"),
    (lambda m, t: _truncated(m, t, "long.mp3", 0.5), "truncated: it says 20.0 s but decodes to"),
    (lambda m, t: _truncated(m, t, "speech.wav", 0.4), "does not decode to the end"),
    (lambda m, t: (m / "silence.wav").read_bytes(), "it is silent"),
    (lambda m, t: _png(t), "no audio in it"),
])
def test_bad_uploads_are_refused_with_the_reason_and_nothing_is_stored(media, library, tmp_path, make, reason):
    with pytest.raises(LibraryError) as e:
        library.ingest(make(media, tmp_path), "upload.mp3", title="x", uploader="x")
    assert str(e.value).startswith(reason) or reason in str(e.value), str(e.value)
    assert "/tmp" not in str(e.value)
    assert library.list() == [] and not list(library.content_dir.glob("*")) if library.content_dir.exists() else True


def _png(tmp: Path) -> bytes:
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=16x16", "-frames:v", "1", str(tmp / "x.png"))
    return (tmp / "x.png").read_bytes()


def test_an_upload_over_the_size_limit_is_refused(media, tmp_path):
    with Library(tmp_path / "d.sqlite", tmp_path / "c", max_bytes=1000) as lib, \
            pytest.raises(LibraryError, match="the library takes at most"):
        lib.ingest(media / "speech.wav", "a.wav", title="x", uploader="x")


def test_a_mislabelled_file_is_stored_as_what_it_is(media, library):
    item = library.ingest((media / "speech.wav").read_bytes(), "bản tin.mp3", title="x", uploader="x")
    assert item.format == "wav" and item.file.endswith(".wav") and item.filename == "bản tin.mp3"


@pytest.mark.parametrize(("name", "shown"), [
    ("Bản tin sáng.mp3", "Bản tin sáng.mp3"),
    ("广播通知.mp3", "广播通知.mp3"),
    ("نشرة.mp3", "نشرة.mp3"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\lan\\tin.mp3", "tin.mp3"),
    ("a\x00b\u202e3pm.exe", "ab3pm.exe"),  # NUL and a right-to-left override removed
    ("", "upload"),
    ("...", "upload"),
])
def test_file_names_in_any_script_are_kept_safely(media, library, name, shown):
    assert safe_filename(name) == shown
    item = library.ingest(media / "speech.wav", name, title="x", uploader="x")
    assert item.filename == shown and "/" not in item.file and item.file.startswith(item.sha256)


def test_a_title_is_required_and_bounded(media, library):
    with pytest.raises(LibraryError, match="needs a title"):
        library.ingest(media / "speech.wav", "a.wav", title="  ", uploader="x")
    with pytest.raises(LibraryError, match="at most 200"):
        library.ingest(media / "speech.wav", "a.wav", title="x" * 201, uploader="x")


# -- the CLI ---------------------------------------------------------------------------------------------------


def test_library_add_list_remove_from_the_command_line(media, tmp_path, capsys):
    where = ["--db", str(tmp_path / "d.sqlite"), "--content-dir", str(tmp_path / "c")]
    assert main(["library", "add", str(media / "speech.mp3"), "--title", "Bản tin sáng", "--category", "tin",
                 "--uploader", "lan", *where]) == 0
    out = capsys.readouterr().out
    assert "Bản tin sáng" in out and "LUFS" in out
    assert main(["library", "list", *where]) == 0
    out = capsys.readouterr().out
    assert "Bản tin sáng" in out and "tin" in out
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"nope" * 10)
    assert main(["library", "add", str(bad), "--title", "x", *where]) == 1
    err = capsys.readouterr().err
    assert "not audio" in err and "Traceback" not in err
    sha = next((tmp_path / "c").glob("*.mp3")).name.split(".")[0]
    assert main(["library", "remove", sha[:12], *where]) == 0
    assert "removed" in capsys.readouterr().out
    assert main(["library", "list", *where]) == 0
    assert "Bản tin sáng" not in capsys.readouterr().out
