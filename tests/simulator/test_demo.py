"""`loa-sim demo`, the README's first command: the whole story runs, the WAV holds it within its caps.

The demo paces itself in real time (its first programme must end on a minute boundary at least 40 s away,
then a spoken bulletin follows), so this takes 50 to 110 s depending on the second it starts at. It runs as
a subprocess, as a user runs it: the demo sets the root logger's level for its own story.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
WINDOW_CAP_DB = -9.0  # station.toml the demo writes: [[policy.windows]] cap_db
ALERT_GAIN_DB = -3.0  # [policy] alert_gain_db, which is also the alert's cap


def below(cap_db: float) -> float:
    """The largest int16 magnitude a cap allows (the limiter's guarantee, as tests/audio/test_dsp.py states it)."""
    return 10 ** (cap_db / 20) * 32767


def peak_db(x: np.ndarray) -> float:
    return 20 * np.log10(max(1.0, float(np.max(np.abs(x.astype(np.float64))))) / 32767)


def one(pattern: str, text: str) -> re.Match:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in the demo's story:\n{text}"
    return found


@pytest.mark.slow
def test_demo_tells_the_alert_story_and_writes_it_within_the_caps(tmp_path):
    wav = tmp_path / "out.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "demo", "--workdir", str(tmp_path / "demo"), "--wav", str(wav)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    story = proc.stdout
    assert proc.returncode == 0, story + proc.stderr[-3000:]

    # The story: the alert goes out, the station plays it at alert gain and acks it, the cancel ends it.
    alert = one(r"district: EXERCISE alert (\S+) sent", story)[1]
    one(rf"station: PLAY alert '{re.escape(alert)}' at {ALERT_GAIN_DB:+.1f} dB", story)
    one(rf"district: ack from demo/xa-mau/thon-1: {re.escape(alert)} playing", story)
    one(rf"district: ack from demo/xa-mau/thon-1: {re.escape(alert)} done cancelled by ", story)
    one(rf"station: PLAY programme 'nhac-mo-dau' at {WINDOW_CAP_DB:+.1f} dB, joined at", story)  # -3 asked
    joined_s = float(one(r"play log 'nhac-mo-dau' partial, ([\d.]+) s: .*interrupted by alert", story)[1])
    alert_s = float(one(rf"play log '{re.escape(alert)}' partial, ([\d.]+) s: cancelled by ", story)[1])
    bulletin_s = float(one(r"play log 'ban-tin' played, ([\d.]+) s", story)[1])

    data, rate = sf.read(wav, dtype="int16")
    assert rate == 48000 and data.ndim == 1
    assert len(data) > 40 * rate  # the joined programme, the alert, the notice, the resumed programme, the bulletin
    # Nothing ever above the alert's cap, the loudest thing a station may play.
    assert np.max(np.abs(data.astype(np.int32))) <= below(ALERT_GAIN_DB), peak_db(data)
    # The WAV begins with the programme the station joined, which the alert breaks into, and ends with the
    # bulletin, each as long as its play-log entry says (a late write pads the file with silence, which can
    # only shift what follows later). The programmes are audible and within the window's cap; the alert is
    # louder than that cap: alerts play at alert gain whatever the window.
    first = data[: int((joined_s - 0.1) * rate)]
    alert_part = data[int((joined_s + 0.5) * rate): int((joined_s + alert_s / 2) * rate)]
    last = data[-int((bulletin_s - 0.1) * rate):]
    for part in (first, last):
        assert len(part) > rate
        assert peak_db(part) > -30.0
        assert np.max(np.abs(part.astype(np.int32))) <= below(WINDOW_CAP_DB), peak_db(part)
    assert len(alert_part) > rate
    assert peak_db(alert_part) > WINDOW_CAP_DB + 3.0
