"""The console in a real browser: headless Debian chromium driven by selenium, against a real mosquitto, three
simulated stations (the real daemon, tests/scenarios/harness.py) and the collector feeding the database.

An officer logs in, sees the fleet, opens a station, sends a TEST alert and watches the three stations ack it,
sends an EXERCISE alert and cancels it with the cancel button while it plays (the stations ack `done`,
"cancelled by ..."), looks at the ACTUAL form and its confirmation step without sending, and finds both actions
in the audit log. A screenshot of every page goes to tests/console/artifacts/ (paths printed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from district.collector import Collector
from district.mqtt import parse_broker_url
from tests.console.conftest import PASSWORD, USER, start_console, stop_console
from tests.scenarios.harness import TZ, config, start_station, write_key

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--window-size=1280,1000", "--lang=vi")
STATIONS = (("hb", "s1"), ("hb", "s2"), ("hn", "s3"))
TIMEOUT_S = 30

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def ensure_chromium() -> None:
    """Install Debian's chromium and chromium-driver when missing (as .ci/setup does); skip only if impossible."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium",
                        "chromium-driver"], env=env, capture_output=True, timeout=900)
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip(f"chromium could not be installed ({CHROMIUM}, {CHROMEDRIVER} missing; "
                    "apt-get install chromium chromium-driver needs root and a Debian mirror)")


@pytest.fixture
def browser(tmp_path):
    ensure_chromium()
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in CHROME_ARGS:
        opts.add_argument(a)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def district(broker, tmp_path):
    """Three running stations trusting the district key, a collector, and the console."""
    key = write_key(tmp_path)
    apps = []
    collector = None
    console = None
    try:
        for commune, sid in STATIONS:
            d = tmp_path / sid
            d.mkdir()
            shutil.copy(tmp_path / "trust.json", d / "trust.json")
            cfg = config(d, broker_url=broker.url)
            cfg = cfg.model_copy(update={"station": cfg.station.model_copy(update={"commune": commune, "id": sid})})
            app, _, _ = start_station(cfg, at=datetime.now(TZ))
            apps.append(app)
        console = start_console(broker.url, tmp_path, key)
        collector = Collector(console.db, url=parse_broker_url(broker.url), client_id="console-test-collector")
        collector.start()
        yield console, apps
    finally:
        if collector:
            collector.stop()
        for app in apps:
            app.stop()
        if console:
            stop_console(console)


def shot(driver, name: str) -> Path:
    """A full-page screenshot into the artefacts directory; prints its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 700)")
    driver.set_window_size(1280, min(int(height) + 120, 4000))
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    print(f"screenshot: {path}")
    return path


def wait(driver, condition, what: str, timeout: float = TIMEOUT_S):
    def safe(d):
        try:
            return condition(d)
        except StaleElementReferenceException:  # the live fragment was replaced under us: look again
            return False

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(safe, message=f"waiting for {what}")


def text_of(driver, css: str) -> str:
    els = driver.find_elements(By.CSS_SELECTOR, css)
    return els[0].text if els else ""


def ack_states(driver) -> dict[str, str]:
    return {r.get_attribute("data-sid"): r.get_attribute("data-state")
            for r in driver.find_elements(By.CSS_SELECTOR, "#acks-table tbody tr")}


def test_officer_sends_a_test_alert_and_cancels_an_exercise_in_the_browser(browser, district):
    console, apps = district
    d, base = browser, console.url

    # Log in (the login page first: pages need a session).
    d.get(base + "/")
    wait(d, lambda d: d.find_elements(By.ID, "login-form"), "the login form")
    shot(d, "01-login")
    d.find_element(By.ID, "user").send_keys(USER)
    d.find_element(By.ID, "password").send_keys(PASSWORD)
    d.find_element(By.ID, "login").click()

    # The fleet: three stations online, grouped by commune, live.
    wait(d, lambda d: d.find_elements(By.ID, "fleet"), "the fleet page")
    wait(d, lambda d: text_of(d, "#count-online") == "3/3", "three stations online on the fleet page")
    assert "Xã hv/hb" in d.page_source and "Xã hv/hn" in d.page_source
    shot(d, "02-fleet")

    # A station: its uptime chart and play log.
    d.find_element(By.CSS_SELECTOR, 'tr[data-sid="hv/hb/s1"] a').click()
    wait(d, lambda d: d.find_elements(By.ID, "uptime-chart"), "the station's uptime chart")
    assert d.find_elements(By.ID, "playlog")
    shot(d, "03-station")

    # TEST alert to the whole district: silent, every station acks `received`.
    d.find_element(By.ID, "nav-new").click()
    wait(d, lambda d: d.find_elements(By.ID, "new-test"), "the three alert kinds")
    shot(d, "04-choose")
    d.find_element(By.ID, "new-test").click()
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#status-banner.test"), "the TEST banner")
    assert "KIỂM TRA — không phát ra loa" in d.find_element(By.ID, "status-banner").text
    Select(d.find_element(By.ID, "scope")).select_by_value("hv")
    wait(d, lambda d: "3 trạm" in text_of(d, "#scope-count"), "the station count of the scope")
    d.find_element(By.ID, "text").send_keys("Đây là bản tin kiểm tra hệ thống.")
    shot(d, "05-test-form")
    d.find_element(By.ID, "send").click()
    wait(d, lambda d: d.find_elements(By.ID, "alert-id"), "the test alert's page")
    test_id = d.find_element(By.ID, "alert-id").text
    # A test alert is acked `received` then `done` ("nothing played") by each station.
    wait(d, lambda d: ack_states(d) == {f"hv/{c}/{s}": "done" for c, s in STATIONS},
         "the three stations acknowledging the test alert")
    assert "3/3" in text_of(d, "#acks-goal")
    assert text_of(d, "#acks-received").endswith("3") and text_of(d, "#acks-done").endswith("3")
    assert "nothing played" in text_of(d, "#acks-table")
    shot(d, "06-test-acks")

    # EXERCISE alert to one commune: played, then cancelled with one click while it plays.
    d.get(base + "/alert/new/exercise")
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#status-banner.exercise"), "the EXERCISE banner")
    Select(d.find_element(By.ID, "scope")).select_by_value("hv/hb")
    wait(d, lambda d: "2 trạm" in text_of(d, "#scope-count"), "the station count of hv/hb")
    d.find_element(By.ID, "text").send_keys("Diễn tập phòng chống bão. Bà con chú ý lắng nghe. " * 3)
    shot(d, "07-exercise-form")
    d.find_element(By.ID, "send").click()
    wait(d, lambda d: d.find_elements(By.ID, "alert-id"), "the exercise alert's page")
    exercise_id = d.find_element(By.ID, "alert-id").text
    wait(d, lambda d: "playing" in ack_states(d).values(), "a station playing the exercise")
    shot(d, "08-exercise-playing")
    d.find_element(By.CSS_SELECTOR, "button.cancel").click()
    wait(d, lambda d: not d.find_elements(By.CSS_SELECTOR, "button.cancel"), "the cancel to be recorded")
    wait(d, lambda d: ack_states(d) == {"hv/hb/s1": "done", "hv/hb/s2": "done"},
         "both stations acking done after the cancel")
    reasons = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#acks-table tbody tr td:last-child")]
    assert all("cancelled" in r for r in reasons), reasons
    shot(d, "09-exercise-cancelled")

    # The station's play log shows the exercise, cut short by the cancel (reports come through its outbox).
    d.get(base + "/station/hv%2Fhb%2Fs1")
    wait(d, lambda d: exercise_id in text_of(d, "#playlog") or d.refresh(), "the exercise in s1's play log")
    shot(d, "10-station-playlog")

    # ACTUAL: another layout, and a second step where the scope must be typed; we go back without sending.
    d.get(base + "/alert/new/actual")
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#status-banner.actual"), "the ACTUAL banner")
    assert "THẬT — KHẨN CẤP" in d.find_element(By.ID, "status-banner").text
    Select(d.find_element(By.ID, "scope")).select_by_value("hv/hn/s3")
    d.find_element(By.ID, "text").send_keys("(không gửi) Lũ quét, sơ tán ngay.")
    shot(d, "11-actual-form")
    d.find_element(By.ID, "send").click()
    wait(d, lambda d: d.find_elements(By.ID, "confirm-form"), "the confirmation step")
    d.find_element(By.ID, "typed").send_keys("hv/hn")
    d.find_element(By.ID, "send").click()
    wait(d, lambda d: "không đúng phạm vi" in d.page_source, "the refusal of a wrong typed scope")
    shot(d, "12-actual-confirm-refused")
    d.find_element(By.ID, "abort").click()

    # The audit log lists both actions.
    d.find_element(By.ID, "nav-audit").click()
    wait(d, lambda d: d.find_elements(By.ID, "audit"), "the audit page")
    rows = [(r.get_attribute("data-action"), r.get_attribute("data-alert"))
            for r in d.find_elements(By.CSS_SELECTOR, "#audit tbody tr")]
    assert ("alert", test_id) in rows
    assert ("alert", exercise_id) in rows and ("cancel", exercise_id) in rows
    assert ("actual-refused", "") in rows
    shot(d, "13-audit")

    # The fleet page follows the stations live: a station going offline shows without a reload.
    d.find_element(By.ID, "nav-fleet").click()
    wait(d, lambda d: text_of(d, "#count-online") == "3/3", "the fleet page")
    apps[2].stop()  # hv/hn/s3 stops cleanly: its status goes offline
    wait(d, lambda d: text_of(d, "#count-online") == "2/3", "the fleet page showing s3 offline, live")
    assert "mất kết nối" in text_of(d, 'tr[data-sid="hv/hn/s3"]')
    shot(d, "14-fleet-s3-offline")

    # English is one click away.
    d.find_element(By.ID, "lang-en").click()
    wait(d, lambda d: "Audit log" in d.page_source, "the English audit page")
    d.find_element(By.ID, "nav-alerts").click()
    wait(d, lambda d: d.find_elements(By.ID, "recent-alerts"), "the English alerts page")
    shot(d, "15-alerts-en")


# -- on a phone (issue 13, defect 3) -------------------------------------------------------------------------

PHONE_CHECK = """
const w = window.innerWidth;
return {width: w, scroll: document.scrollingElement.scrollWidth,
        buttons: Array.from(document.querySelectorAll('button.cancel')).map(b => {
            const r = b.getBoundingClientRect();
            return {alert: b.getAttribute('data-alert'), left: r.left, right: r.right, width: r.width};
        })};
"""


def at_width(driver, width: int) -> None:
    """The viewport of a phone (or a desk): exact CSS width, mobile meta viewport honoured."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": 780 if width < 600 else 1000, "deviceScaleFactor": 1,
                            "mobile": width < 600})


def viewport_shot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


@pytest.fixture
def two_active_alerts(running):
    """A fleet of three stations and two active alerts with long texts, sent through the console."""
    from tests.console.conftest import Browser, multipart, seed_station

    for sid in ("hv/hb/s1", "hv/hb/s2", "hv/hn/s3"):
        seed_station(running.db, sid)
    b = Browser(running.url)
    assert b.login()[0].status == 303
    ids = []
    for status, scope, headline in (
            ("exercise", "hv/hb", "Diễn tập phòng chống bão số 9: sơ tán dân vùng trũng thấp ven sông Cu Đê"),
            ("test", "hv", "Kiểm tra hệ thống cảnh báo sớm toàn huyện trước mùa mưa lũ năm nay")):
        csrf = b.csrf(f"/alert/new/{status}")
        body, ctype = multipart({"csrf": csrf, "scope": scope, "headline": headline, "text": headline * 2})
        r, _ = b.request("POST", f"/alert/new/{status}", body, {"Content-Type": ctype})
        assert r.status == 303
        ids.append(r.getheader("Location").split("/alert/")[1].split("?")[0])
    return running, ids


@pytest.mark.parametrize("width", [1280, 360])
def test_every_cancel_button_is_on_screen_without_scrolling_sideways(browser, two_active_alerts, width):
    """An officer at 2 a.m. has a phone: on every page that lists an active alert, each HỦY NGAY button lies
    inside the viewport and the page does not scroll sideways."""
    console, ids = two_active_alerts
    d, base = browser, console.url
    d.get(base + "/login")
    d.find_element(By.ID, "user").send_keys(USER)
    d.find_element(By.ID, "password").send_keys(PASSWORD)
    d.find_element(By.ID, "login").click()
    wait(d, lambda d: d.find_elements(By.ID, "fleet"), "the fleet page")
    at_width(d, width)
    for name, path, want in (("fleet", "/", set(ids)), ("alerts", "/alerts", set(ids)),
                             ("alert", f"/alert/{ids[0]}", {ids[0]})):
        d.get(base + path)
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "button.cancel"), f"the cancel buttons on {path}")
        viewport_shot(d, f"phone-{width}-{name}")
        got = d.execute_script(PHONE_CHECK)
        assert {b["alert"] for b in got["buttons"]} == want, (path, got)
        # a phone widens its layout viewport (and zooms out) when the page is wider than the screen: innerWidth
        # must stay the screen's width, and everything must fit in it
        assert got["width"] == width, (path, f"the layout is {got['width']} px wide on a {width} px screen")
        outside = [b for b in got["buttons"] if b["left"] < 0 or b["right"] > width or b["width"] < 40]
        assert not outside, (path, f"cancel buttons outside the {width} px viewport", outside)
        assert got["scroll"] <= width, (path, f"the page scrolls sideways: {got['scroll']} > {width}")
