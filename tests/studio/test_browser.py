"""The studio in a real browser (Debian's chromium, driven by selenium): open a real MIDI, select bars of a track,
generate two candidates, play one, accept, undo, redo, export; everything the page loads comes from the studio.

``STUDIO_SCREENSHOT=docs/studio.png python -m pytest tests/studio/test_browser.py`` also saves the README's picture.
"""

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from symusic import Score

from midi_rwkv.studio.server import Studio, build_app
from tests.conftest import FIXTURES, note_tuples

CHORALE = FIXTURES / "bach_bwv66.6.mid"
BROWSER, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BROWSER is None or DRIVER is None,
                       reason="needs Debian's chromium and chromium-driver (scripts/install-browser.sh)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    import uvicorn

    port = free_port()
    studio = Studio(None, {})  # the shipped model
    studio.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
    song = studio.add_song(CHORALE.read_bytes(), CHORALE.name)
    config = uvicorn.Config(build_app(studio), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    for _ in range(100):
        if instance.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", studio, song
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                 "--window-size=1400,900", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait_for(driver, script: str, timeout: float = 60):
    """Poll a JavaScript expression until it is truthy; return its value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {script}")


def set_value(driver, element_id: str, value) -> None:
    driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true}));",
        element_id, str(value))


def test_a_composer_s_session(server, browser):
    from selenium.webdriver.common.by import By

    base, studio, song = server
    browser.get(f"{base}/?token={studio.token}&song={song.id}")
    wait_for(browser, "window.studio && window.studio.song && window.studio.song.tracks.length === 4")
    assert browser.find_element(By.ID, "roll").size["width"] > 400
    assert not browser.find_element(By.ID, "error").text.strip()

    # select bars 3-4 of track 1, ask for 2 candidates, generate
    set_value(browser, "track-select", 1)
    set_value(browser, "bar-start", 3)
    set_value(browser, "bar-end", 4)
    set_value(browser, "k", 2)
    browser.find_element(By.ID, "generate").click()
    wait_for(browser, "document.querySelectorAll('#candidates .candidate').length === 2", timeout=120)
    first = browser.find_elements(By.CSS_SELECTOR, "#candidates .candidate")[0]
    assert len(browser.execute_script("return window.studio.candidates")) == 2

    # play it: notes are scheduled in the audio context
    first.find_element(By.CSS_SELECTOR, ".play").click()
    wait_for(browser, "window.studio.scheduledNotes > 0", timeout=20)
    browser.find_element(By.ID, "stop").click()
    if os.environ.get("STUDIO_SCREENSHOT"):
        time.sleep(0.5)
        browser.save_screenshot(os.environ["STUDIO_SCREENSHOT"])

    # accept, undo, redo
    candidate_id = first.get_attribute("data-id")
    notes = {tuple(n) for c in browser.execute_script("return window.studio.candidates") if c["id"] == candidate_id
             for n in c["notes"]}
    first.find_element(By.CSS_SELECTOR, ".accept").click()
    wait_for(browser, "window.studio.song.version === 2")
    browser.find_element(By.ID, "undo").click()
    wait_for(browser, "window.studio.song.version === 1")
    browser.find_element(By.ID, "redo").click()
    wait_for(browser, "window.studio.song.version === 2")

    # export: the download differs from the input only in that span of that track
    browser.find_element(By.ID, "export").click()
    end = time.monotonic() + 30
    while not list(browser.downloads.glob("*.mid")) and time.monotonic() < end:
        time.sleep(0.2)
    (exported,) = list(browser.downloads.glob("*.mid"))
    original, result = Score(str(CHORALE)), Score(str(exported))
    tpq = original.ticks_per_quarter
    bars = browser.execute_script("return window.studio.song.bars")
    lo, hi = round(bars[2]["start"] * tpq), round(bars[3]["end"] * tpq)
    for i, (a, b) in enumerate(zip(original.tracks, result.tracks)):
        if i != 1:
            assert note_tuples(a) == note_tuples(b)
        else:
            assert note_tuples(a, None, lo) == note_tuples(b, None, lo) and note_tuples(a, hi) == note_tuples(b, hi)
    inside = {(round(t / tpq, 6), round(d / tpq, 6), p, v) for t, d, p, v in note_tuples(result.tracks[1], lo, hi)}
    assert inside == {(round(t, 6), round(d, 6), p, v) for t, d, p, v in notes}

    # nothing came from anywhere but the studio
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(url.startswith(base + "/") for url in resources), resources
    assert browser.execute_script("return location.origin") == base


def test_a_corrupt_file_gets_a_message_in_the_page(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    base, studio, song = server
    browser.get(f"{base}/?token={studio.token}&song={song.id}")
    wait_for(browser, "window.studio && window.studio.song")
    broken = tmp_path / "broken.mid"
    broken.write_bytes((FIXTURES / "corrupt_truncated.mid").read_bytes())
    browser.find_element(By.ID, "file-input").send_keys(str(broken))
    message = wait_for(browser, "document.getElementById('error').textContent.trim()")
    assert "not a readable MIDI file" in message and "Traceback" not in message
    assert Path(CHORALE).read_bytes() == CHORALE.read_bytes()  # the user's file is untouched


def test_a_new_bass_part_and_a_whole_track_again(server, browser):
    from selenium.webdriver.common.by import By

    from midi_rwkv.inference.sampler import TRACK_SAMPLER, SamplerConfig

    base, studio, _ = server
    song = studio.add_song(CHORALE.read_bytes(), CHORALE.name)  # a song of its own: version 1 whatever ran before
    browser.get(f"{base}/?token={studio.token}&song={song.id}")
    wait_for(browser, "window.studio && window.studio.song && window.studio.song.tracks.length === 4")
    before = browser.execute_script("return window.studio.song.tracks")

    def same(notes):
        return sorted((round(s, 4), round(d, 4), p, v) for s, d, p, v in notes)

    # the temperature starts at each mode's engine default, as the server reports it
    def temperature():
        return float(browser.find_element(By.ID, "temperature").get_attribute("value"))

    assert temperature() == SamplerConfig().temperature

    # a new track: an electric bass (finger), program 33, under the four voices
    browser.find_element(By.CSS_SELECTOR, "#mode input[value=new]").click()
    assert browser.execute_script("return window.studio.mode") == "new"
    assert temperature() == TRACK_SAMPLER.temperature
    assert not browser.find_element(By.ID, "bar-start").is_displayed()
    assert browser.find_element(By.ID, "new-program").get_attribute("value") == "33"  # the default
    set_value(browser, "new-program", 33)
    assert not browser.find_element(By.ID, "new-drums").is_selected()
    set_value(browser, "k", 1)
    browser.find_element(By.ID, "generate").click()
    wait_for(browser, "document.querySelectorAll('#candidates .candidate').length === 1", timeout=120)
    (candidate,) = browser.execute_script("return window.studio.candidates")
    assert (candidate["mode"], candidate["track"], candidate["program"], candidate["is_drum"]) == ("new", 4, 33, False)
    item = browser.find_element(By.CSS_SELECTOR, "#candidates .candidate")
    assert "new track" in item.text.lower()

    # it plays with the other tracks, then joins the song as a fifth track
    item.find_element(By.CSS_SELECTOR, ".play").click()
    wait_for(browser, "window.studio.scheduledNotes > 0", timeout=20)
    browser.find_element(By.ID, "stop").click()
    item.find_element(By.CSS_SELECTOR, ".accept").click()
    wait_for(browser, "window.studio.song.version === 2 && window.studio.song.tracks.length === 5")
    added = browser.execute_script("return window.studio.song.tracks")
    assert added[4]["program"] == 33 and not added[4]["is_drum"]
    assert same(added[4]["notes"]) == same(candidate["notes"])
    for i in range(4):
        assert same(added[i]["notes"]) == same(before[i]["notes"])

    # the whole of track 1 written again: the bar fields are off, the other tracks stay
    browser.find_element(By.CSS_SELECTOR, "#mode input[value=track]").click()
    assert not browser.find_element(By.ID, "bar-start").is_enabled()
    set_value(browser, "track-select", 1)
    browser.find_element(By.ID, "generate").click()
    wait_for(browser, "window.studio.candidates.length === 1 && window.studio.candidates[0].mode === 'track'"
                      " && window.studio.job.status === 'done'", timeout=120)
    (again,) = browser.execute_script("return window.studio.candidates")
    assert again["track"] == 1 and again["bars"] == [0, len(browser.execute_script("return window.studio.song.bars"))]
    browser.find_element(By.CSS_SELECTOR, "#candidates .candidate .accept").click()
    wait_for(browser, "window.studio.song.version === 3")
    after = browser.execute_script("return window.studio.song.tracks")
    assert len(after) == 5
    for i in (0, 2, 3):
        assert same(after[i]["notes"]) == same(before[i]["notes"])
    assert same(after[4]["notes"]) == same(added[4]["notes"])
    assert same(after[1]["notes"]) == same(again["notes"])
    assert not browser.find_element(By.ID, "error").text.strip()
