"""One contract for every audio sink: the simulated ones, and the real PyAudio sink through an ALSA `file`
PCM (ALSA writes what PortAudio plays into a WAV file, its `null` slave discards it; no sound card needed).

The PyAudio runs happen in a subprocess whose HOME holds the test's `.asoundrc`: ALSA reads its
configuration at PortAudio initialisation, so it must see that HOME from the start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from firmware.audio import SinkError
from firmware.audio.player import Player
from firmware.core.commands import Play
from firmware.core.sources import ToneSpec
from simulator.sinks import CountingSink, PacedSink, RecordingSink

RATE = 48000
BLOCK = 960
REPO = Path(__file__).resolve().parents[2]
FILE_PCM = 'pcm.{name} {{\n  type file\n  slave.pcm "null"\n  file "{path}"\n  format "wav"\n}}\n'


def tone(play_id: str, seconds: float, gain_db: float) -> Play:
    return Play(play_id, "test-tone", "contract", ToneSpec("test", seconds), gain_db, 0.0)


def contract_run(sink) -> dict:
    """The sink's side of the contract, driven the way the station drives it. Returns what happened."""
    out = {"write_before_open": None, "events": []}
    try:
        sink.write(np.zeros(BLOCK, np.int16))
    except SinkError as e:
        out["write_before_open"] = str(e)
    # open / write / close / close again / reopen: the recovery path after a device error
    sink.open()
    sink.write(np.zeros(BLOCK, np.int16))
    sink.close()
    sink.close()
    changed = threading.Condition()

    def emit(event):
        with changed:
            out["events"].append([type(event).__name__, event.play_id, getattr(event, "completed", None)])
            changed.notify_all()

    def ended(play_id: str) -> bool:
        return any(e[0] != "PlaybackStarted" and e[1] == play_id for e in out["events"])

    player = Player(sink, emit=emit, rate=RATE, block_ms=20)
    player.start()
    # One item after the other, as the runtime queues them on PlaybackEnded.
    for play in (tone("loud", 1.0, -6.0), tone("quiet", 0.5, -12.0)):
        player.play(play)
        with changed:
            assert changed.wait_for(lambda p=play: ended(p.play_id), 10), out
    player.close()
    sink.close()
    out["latency_s"] = sink.latency_s
    out["rate"] = sink.rate
    return out


def run_pyaudio(home: Path, script: str) -> dict:
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pyaudio_contract(tmp_path) -> tuple[dict, np.ndarray]:
    home = tmp_path / "home"
    home.mkdir()
    wav = tmp_path / "alsa-out.wav"
    (home / ".asoundrc").write_text(FILE_PCM.format(name="!default", path=wav))
    script = (
        "import json\n"
        "from firmware.adapters.pyaudio_sink import PyAudioSink\n"
        "from tests.adapters.test_sinks import contract_run\n"
        "print(json.dumps(contract_run(PyAudioSink(None, rate=48000, block_frames=960))))\n"
    )
    result = run_pyaudio(home, script)
    data, rate = sf.read(wav, dtype="int16")
    assert rate == RATE
    return result, data


@pytest.fixture(params=["recording", "paced", "pyaudio"])
def contract(request, tmp_path):
    if request.param == "pyaudio":
        return pyaudio_contract(tmp_path)
    sink = RecordingSink(RATE) if request.param == "recording" else PacedSink(RATE, latency_s=0.02)
    result = contract_run(sink)
    return result, sink.samples()[BLOCK:]  # skip the block written by the reopen check


def test_writing_to_a_closed_sink_is_a_sink_error(contract):
    result, _ = contract
    assert result["write_before_open"]


def test_items_start_and_end_in_order(contract):
    result, _ = contract
    assert result["events"] == [
        ["PlaybackStarted", "loud", None],
        ["PlaybackEnded", "loud", True],
        ["PlaybackStarted", "quiet", None],
        ["PlaybackEnded", "quiet", True],
    ]
    assert result["rate"] == RATE and result["latency_s"] >= 0


def test_what_reaches_the_device_is_the_tone_at_each_items_gain(contract):
    _, samples = contract
    assert len(samples) == int(1.5 * RATE)
    x = samples.astype(np.float64) / 32767
    loud, quiet = x[4800 : RATE - 4800], x[RATE + 4800 : -4800]
    # The 1 kHz test tone is 0.5 peak; -6 dB and -12 dB of gain.
    for part, gain_db in ((loud, -6.0), (quiet, -12.0)):
        expected = 0.5 * 10 ** (gain_db / 20)
        assert np.max(np.abs(part)) == pytest.approx(expected, rel=0.01)
        assert np.sqrt(np.mean(part**2)) == pytest.approx(expected / np.sqrt(2), rel=0.01)
        spectrum = np.abs(np.fft.rfft(part))
        assert np.argmax(spectrum) * RATE / len(part) == pytest.approx(1000.0, abs=3.0)


def test_pyaudio_finds_a_device_that_was_plugged_in_later(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    rc = home / ".asoundrc"
    rc.write_text(FILE_PCM.format(name="!default", path=tmp_path / "default.wav"))
    usb = FILE_PCM.format(name="loausb", path=tmp_path / "usb.wav")
    script = (
        "import json, threading\n"
        "from firmware.adapters.pyaudio_sink import PyAudioSink\n"
        "from firmware.audio.player import Player\n"
        "from firmware.core.commands import Play\n"
        "from firmware.core.sources import ToneSpec\n"
        "events, cond = [], threading.Condition()\n"
        "def emit(e):\n"
        "    with cond:\n"
        "        events.append([type(e).__name__, e.play_id, getattr(e, 'reason', '')]); cond.notify_all()\n"
        "def wait(n):\n"
        "    with cond: assert cond.wait_for(lambda: len(events) >= n, 10), events\n"
        "p = Player(PyAudioSink('USB'), emit=emit, backoff_s=(0.05, 0.2)); p.start()\n"
        "p.play(Play('p1', 'test-tone', 'r', ToneSpec('test', 0.2), 0.0, 0.0)); wait(1)\n"
        f"open({str(rc)!r}, 'a').write({usb!r})\n"
        "p.play(Play('p2', 'test-tone', 'r', ToneSpec('test', 0.2), 0.0, 0.0)); wait(3)\n"
        "p.close(); print(json.dumps(events))\n"
    )
    events = run_pyaudio(home, script)
    assert events[0][:2] == ["PlaybackFailed", "p1"]
    assert events[0][2].startswith('audio device unavailable: no output device matching "USB" (have: ')
    assert [e[:2] for e in events[1:]] == [["PlaybackStarted", "p2"], ["PlaybackEnded", "p2"]]
    assert len(sf.read(tmp_path / "usb.wav")[0]) == int(0.2 * RATE)


def test_a_paced_sink_takes_real_time():
    sink = PacedSink(RATE, latency_s=0.04)
    sink.open()
    t0 = time.monotonic()
    for _ in range(25):
        sink.write(np.zeros(BLOCK, np.int16))
    elapsed = time.monotonic() - t0
    sink.close()
    assert elapsed >= 0.5 - 0.04 - 0.005  # paced: never faster than real time (slower only on a loaded machine)
    starts = [a.t_play for a in sink.accepted]
    assert np.allclose(np.diff(starts), BLOCK / RATE, atol=1e-6)  # back to back, no gaps


def test_a_counting_sink_counts_without_keeping_audio():
    sink = CountingSink(RATE, paced=False)
    sink.open()
    for _ in range(10):
        sink.write(np.full(BLOCK, 1000, np.int16))
    assert (sink.frames, sink.blocks, sink.peak) == (10 * BLOCK, 10, 1000)
    assert sink.first_t is not None and sink.last_t >= sink.first_t


def test_pyaudio_plays_on_the_device_chosen_by_index_and_names_an_index_that_is_not_there(tmp_path):
    """`audio.device = 3` in station.toml: the sink opens PortAudio device 3, not the default; an index that
    does not exist is a SinkError that quotes it and lists the devices there are."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(FILE_PCM.format(name="!default", path=tmp_path / "default.wav")
                                    + FILE_PCM.format(name="loausb", path=tmp_path / "usb.wav"))
    script = (
        "import json\n"
        "import numpy as np, pyaudio\n"
        "from firmware.adapters.pyaudio_sink import PyAudioSink\n"
        "from firmware.audio import SinkError\n"
        # PortAudio's own view of the device list, so the expectation does not come from the code under test
        "pa = pyaudio.PyAudio()\n"
        "infos = [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]\n"
        "pa.terminate()\n"
        "usb = next(int(d['index']) for d in infos if d['name'] == 'loausb')\n"
        "t = np.arange(10 * 960) / 48000\n"
        "signal = np.round(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)\n"
        "sink = PyAudioSink(usb, rate=48000, block_frames=960)\n"
        "sink.open()\n"
        "for block in signal.reshape(10, 960):\n"
        "    sink.write(block)\n"
        "sink.close()\n"
        "missing = max(int(d['index']) for d in infos) + 40\n"
        "try:\n"
        "    PyAudioSink(missing).open()\n"
        "    error = None\n"
        "except SinkError as e:\n"
        "    error = str(e)\n"
        "print(json.dumps({'usb': usb, 'signal': signal.tolist(), 'missing': missing, 'error': error}))\n"
    )
    result = run_pyaudio(home, script)
    assert (tmp_path / "usb.wav").exists(), f"nothing was played on device {result['usb']} (loausb)"
    played, rate = sf.read(tmp_path / "usb.wav", dtype="int16")
    assert rate == RATE
    assert played.tolist() == result["signal"]  # every sample, on the device with that index
    assert not (tmp_path / "default.wav").exists() or len(sf.read(tmp_path / "default.wav")[0]) == 0
    missing = result["missing"]
    assert result["error"] is not None, f"index {missing} opened although PortAudio has no such device"
    assert result["error"].startswith(f"no output device with index {missing} (have: ")
    assert f"{result['usb']}: loausb" in result["error"]  # and what the technician could choose instead


def test_a_recording_sink_writes_what_it_accepted_to_a_wav_at_its_rate(tmp_path):
    rate = 22050  # not the 48 kHz default: the file must carry the sink's own rate
    sink = RecordingSink(rate)
    sink.open()
    blocks = [np.array([0, 1, -1, 32767, -32768], np.int16), np.arange(-300, 300, 7, dtype=np.int16),
              np.zeros(0, np.int16), np.full(441, -12345, np.int16)]
    for block in blocks:
        sink.write(block)
    sink.close()
    path = tmp_path / "recorded.wav"
    sink.to_wav(path)
    data, read_rate = sf.read(path, dtype="int16")
    assert read_rate == rate
    assert sf.info(path).channels == 1 and sf.info(path).subtype == "PCM_16"
    assert data.tolist() == np.concatenate(blocks).tolist()  # the blocks in order, every sample exact


def test_a_recording_sink_that_heard_nothing_writes_an_empty_wav(tmp_path):
    sink = RecordingSink(RATE)
    path = tmp_path / "silent.wav"
    sink.to_wav(path)
    data, read_rate = sf.read(path, dtype="int16")
    assert (len(data), read_rate) == (0, RATE)
