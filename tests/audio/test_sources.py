"""Sources: every spec becomes a stream of mono float32 blocks at the player's rate, or a readable error."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from firmware.audio import SourceError
from firmware.audio.sources import open_source, skip
from firmware.core.sources import FileSpec, SequenceSpec, SilenceSpec, SpeechSpec, StreamSpec, ToneSpec

RATE = 48000


def drain(source, block: int = 960) -> np.ndarray:
    parts = []
    while len(b := source.read(block)):
        assert b.dtype == np.float32 and b.ndim == 1 and len(b) <= block
        parts.append(b)
    source.close()
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def dominant_hz(x: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_files_of_each_format_play_resampled_and_downmixed(make_file, ext):
    path = make_file(ext, seconds=2.0, rate=44100, channels=2, freq_hz=440.0, amp=0.5)
    x = drain(open_source(FileSpec(path=str(path)), RATE))
    assert abs(len(x) / RATE - 2.0) < 0.06  # MP3 may add an encoder frame of padding
    assert abs(dominant_hz(x[4800:-4800]) - 440.0) < 2.0
    assert abs(rms(x[4800:-4800]) - 0.5 / np.sqrt(2)) < 0.02


def test_a_file_at_the_player_rate_passes_through_unchanged(make_file):
    path = make_file("wav", seconds=0.5, rate=RATE, channels=1)
    x = drain(open_source(FileSpec(path=str(path)), RATE))
    expected, _ = sf.read(path, dtype="float32")
    np.testing.assert_array_equal(x, expected)


def test_joining_in_progress_starts_at_the_offset(make_file):
    path = make_file("flac", seconds=3.0, rate=44100)
    src = open_source(FileSpec(path=str(path)), RATE)
    skip(src, 2.0)
    assert abs(len(drain(src)) / RATE - 1.0) < 0.01


def test_joining_after_the_end_plays_nothing(make_file):
    path = make_file("wav", seconds=1.0)
    src = open_source(FileSpec(path=str(path)), RATE)
    skip(src, 5.0)
    assert len(drain(src)) == 0


def test_a_long_file_is_decoded_in_blocks_not_loaded_whole(tmp_path):
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", 44100, 2, "PCM_16") as f:
        for _ in range(180):  # 3 minutes: 64 MB as float32 stereo if it were loaded whole
            f.write(np.full((44100, 2), 0.1, dtype=np.float32))
    src = open_source(FileSpec(path=str(path)), RATE)
    tracemalloc.start()
    try:
        frames = 0
        while len(b := src.read(960)):
            frames += len(b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        src.close()
    assert abs(frames / RATE - 180) < 0.01
    assert peak < 2_000_000


def test_content_from_the_cache_is_resolved_by_the_runtime(make_file):
    path = make_file("wav", seconds=0.2)
    spec = FileSpec(url="https://district/a.mp3", sha256="ab" * 32)
    x = drain(open_source(spec, RATE, resolve=lambda s: str(path) if s is spec else None))
    assert len(x) > 0


def test_content_missing_from_the_cache_is_not_available():
    spec = FileSpec(url="https://district/a.mp3", sha256="ab" * 32)
    with pytest.raises(SourceError, match=r"content not available: https://district/a.mp3"):
        open_source(spec, RATE, resolve=lambda s: None)
    with pytest.raises(SourceError, match="no content cache"):
        open_source(spec, RATE)


def test_a_missing_file_says_which(tmp_path):
    with pytest.raises(SourceError, match=r"not found: .*nope\.mp3"):
        open_source(FileSpec(path=str(tmp_path / "nope.mp3")), RATE)


def test_a_text_file_named_mp3_is_an_unsupported_format(tmp_path):
    path = tmp_path / "notes.mp3"
    path.write_text("this is not audio\n" * 50)
    with pytest.raises(SourceError, match=r"cannot decode .*notes\.mp3.*supported: WAV, FLAC, OGG, MP3"):
        open_source(FileSpec(path=str(path)), RATE)


def test_a_truncated_mp3_fails_where_it_stops(make_file, tmp_path):
    whole = make_file("mp3", seconds=10.0).read_bytes()
    path = tmp_path / "cut.mp3"
    path.write_bytes(whole[: len(whole) // 2])
    src = open_source(FileSpec(path=str(path)), RATE)
    with pytest.raises(
        SourceError, match=r"cut\.mp3 is truncated or corrupt: decoding stopped at [45]\.\d s of 10\.\d s"
    ):
        drain(src)


def test_an_mp3_with_garbage_in_the_middle_fails(make_file, tmp_path):
    data = bytearray(make_file("mp3", seconds=6.0).read_bytes())
    rng = np.random.default_rng(1)
    data[len(data) // 3 :] = rng.integers(0, 256, len(data) - len(data) // 3, dtype=np.uint8).tobytes()
    path = tmp_path / "garbled.mp3"
    path.write_bytes(bytes(data))
    with pytest.raises(SourceError, match=r"garbled\.mp3"):
        drain(open_source(FileSpec(path=str(path)), RATE))


@pytest.mark.parametrize(("kind", "freqs"), [("test", [1000.0]), ("attention", [853.0, 960.0])])
def test_tones_have_their_frequencies_and_length(kind, freqs):
    x = drain(open_source(ToneSpec(kind=kind, duration_s=1.0), RATE))
    assert len(x) == RATE
    assert np.max(np.abs(x)) <= 1.0
    spectrum = np.abs(np.fft.rfft(x))
    top = sorted(np.argsort(spectrum)[-len(freqs) :] * RATE / len(x))
    assert np.allclose(top, freqs, atol=2.0)
    assert abs(x[0]) < 1e-3 and abs(x[-1]) < 1e-3  # soft edges: no click


def test_the_chime_is_four_descending_notes():
    x = drain(open_source(ToneSpec(kind="chime", duration_s=2.0), RATE))
    notes = [dominant_hz(q) for q in np.array_split(x, 4)]
    assert notes == sorted(notes, reverse=True) and 700 < notes[0] < 850 and 350 < notes[-1] < 450
    assert np.max(np.abs(np.diff(x))) < 0.2  # no step between notes


def test_an_unknown_tone_kind_is_named():
    with pytest.raises(SourceError, match='unknown tone kind "siren"'):
        open_source(ToneSpec(kind="siren"), RATE)


def test_silence_is_zeros_of_the_given_length():
    x = drain(open_source(SilenceSpec(0.5), RATE))
    assert len(x) == RATE // 2 and not np.any(x)


def test_vietnamese_text_is_spoken():
    x = drain(open_source(SpeechSpec("Thông báo khẩn cấp: bão số ba sắp đổ bộ."), RATE))
    assert len(x) / RATE > 1.0
    assert rms(x) > 0.01


@pytest.mark.parametrize(
    ("text", "lang", "why"), [("", "vi", "empty"), ("xin chào", "vi; rm -rf", "language")]
)
def test_bad_speech_requests_are_refused(text, lang, why):
    with pytest.raises(SourceError, match=why):
        open_source(SpeechSpec(text, lang=lang), RATE)


def test_a_sequence_plays_parts_repeated_with_gaps():
    spec = SequenceSpec((ToneSpec("attention", 0.5), ToneSpec("test", 0.25)), repeat=3, gap_s=0.1)
    x = drain(open_source(spec, RATE))
    # 3 x (0.5 + 0.25) of sound, 5 gaps of 0.1 s between consecutive parts (none after the last)
    assert len(x) == round((3 * 0.75 + 5 * 0.1) * RATE)
    assert not np.any(x[int(0.5 * RATE) + 10 : int(0.6 * RATE) - 10])


def test_a_failing_part_of_a_sequence_is_named(tmp_path):
    spec = SequenceSpec((ToneSpec("attention", 0.1), FileSpec(path=str(tmp_path / "msg.mp3"))), repeat=2)
    src = open_source(spec, RATE)
    with pytest.raises(
        SourceError, match=r"sequence part 2/2 \(repeat 1/2, FileSpec\): audio file not found"
    ):
        drain(src)


def test_a_stream_without_the_relay_module_or_urls_is_a_source_error():
    try:
        src = open_source(StreamSpec(urls=()), RATE)
    except SourceError:
        return
    src.close()  # the relay is installed and accepted it: it is then the relay's contract to test


def test_a_language_espeak_does_not_know_is_reported_with_its_message():
    with pytest.raises(SourceError, match="espeak-ng produced no audio: .*voice does not exist"):
        open_source(SpeechSpec("xin chào", lang="zz"), RATE)
