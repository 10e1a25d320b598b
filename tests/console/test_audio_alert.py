"""An uploaded audio alert (actual, confirmed by typing the scope), end to end: the console stores the file under its sha256 in the content directory,
a content server serves it, a simulated station (the real daemon) fetches it, verifies the sha256 and plays it."""

from __future__ import annotations

import re
import shutil
import time
from datetime import datetime

import numpy as np
import soundfile as sf

from district.content import ContentServer
from tests.console.conftest import Browser, multipart, start_console, stop_console
from tests.scenarios.harness import TZ, config, peak_db, start_station, write_key


def wav_bytes(tmp_path) -> bytes:
    t = np.arange(48000) / 48000
    sf.write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 660 * t)).astype(np.float32), 48000, subtype="PCM_16")
    return (tmp_path / "tone.wav").read_bytes()


def test_uploaded_audio_is_fetched_verified_and_played_by_the_station(broker, tmp_path):
    key = write_key(tmp_path)
    (tmp_path / "s1").mkdir()
    shutil.copy(tmp_path / "trust.json", tmp_path / "s1" / "trust.json")
    app, sink, rec = start_station(config(tmp_path / "s1", broker_url=broker.url), at=datetime.now(TZ))
    (tmp_path / "content").mkdir()
    content = ContentServer(tmp_path / "content", port=0).start()
    console = start_console(broker.url, tmp_path, key, content_base_url=content.url)
    try:
        deadline = time.monotonic() + 10
        while console.console.station("hv/hb/s1") is None and time.monotonic() < deadline:
            time.sleep(0.05)  # a condition with a deadline: the station's retained status reaches the console
        b = Browser(console.url)
        assert b.login()[0].status == 303
        csrf = b.csrf("/alert/new/actual")
        body, ctype = multipart({"csrf": csrf, "scope": "hv/hb/s1", "text": "", "expires": "15m"},
                                {"audio": ("canh-bao.wav", wav_bytes(tmp_path))})
        r, page = b.request("POST", "/alert/new/actual", body, {"Content-Type": ctype})
        assert r.status == 200 and "tệp âm thanh canh-bao.wav" in page, re.findall(r'class="msg error"[^>]*>([^<]*)', page)
        draft = re.search(r'name="draft" value="([^"]+)"', page).group(1)
        r, page = b.post("/alert/confirm", {"csrf": csrf, "draft": draft, "typed": "hv/hb/s1"})
        assert r.status == 303, re.findall(r'class="msg error"[^>]*>([^<]*)', page)
        alert_id = r.getheader("Location").split("/alert/")[1].split("?")[0]
        a = console.store.alert(alert_id)
        assert a.audio_url.startswith(content.url) and a.audio_url.endswith(".wav")
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            [ack] = console.console.acks(a)
            if ack.state in ("done", "failed", "rejected"):
                break
            time.sleep(0.1)  # a condition with a deadline: the attention tone and the audio play in real time
        # `done`: fetched and sha256-verified (an unreachable URL ends in `failed`, "... not in the content cache")
        assert ack.states[:2] == ("received", "playing") and ack.state == "done", ack
        _, page = b.get(f"/alert/{alert_id}")
        assert "1/1" in page
        assert peak_db(sink.samples()) > -20  # the tone was played, not a silent fallback
    finally:
        stop_console(console)
        content.stop()
        app.stop()
