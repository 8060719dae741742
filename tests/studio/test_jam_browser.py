"""The Jam view in a real browser (Debian's chromium, driven by selenium, as tests/studio/test_browser.py): open it,
play a bar on the computer keyboard, and check that the accompaniment of every bar is queued before the bar starts;
change the tempo while playing; then keep the take and undo it."""

import pytest

from tests.studio import test_browser as studio_browser
from tests.studio.test_browser import BROWSER, DRIVER, set_value, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BROWSER is None or DRIVER is None,
                       reason="needs Debian's chromium and chromium-driver (scripts/install-browser.sh)"),
]

server = studio_browser.server  # the studio on the shipped model, the chorale open
browser = studio_browser.browser


def test_the_jam_view_schedules_the_accompaniment_ahead_of_its_bars(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    base, studio, _ = server
    song = studio.add_song(studio_browser.CHORALE.read_bytes(), studio_browser.CHORALE.name)
    browser.get(f"{base}/?token={studio.token}&song={song.id}")
    wait_for(browser, "window.studio && window.studio.song && document.body.dataset.ready === 'true'")
    browser.find_element(By.ID, "jam-open").click()
    assert browser.find_element(By.ID, "jam").is_displayed()
    assert not browser.find_element(By.ID, "generate").is_displayed()  # the Jam view replaces the side panels
    set_value(browser, "jam-tempo", 60)  # bars of 4 s: room for a busy machine
    set_value(browser, "jam-metre", "4/4")
    browser.execute_script("document.getElementById('jam-click').checked = false")
    browser.find_element(By.ID, "jam-start").click()
    wait_for(browser, "window.jamState.playing && window.jamScheduled.length >= 2", timeout=60)
    first = browser.execute_script("return window.jamState.first")
    assert first == len(song.view()["bars"])  # the jam goes on after the song
    wait_for(browser, "window.jamState.now > window.jamScheduled[0].start + 0.2")  # inside the first bar

    set_value(browser, "jam-tempo", 75)  # while playing: from the next bar the engine writes, the bar after next
    keys = ActionChains(browser)
    for key in "asd":  # C, D and E on the computer keyboard
        keys.key_down(key).pause(0.25).key_up(key).pause(0.1)
    keys.perform()

    # the first bar ends and is sent; the bar after next comes back and is queued before it starts
    wait_for(browser, "window.jamScheduled.some(s => s.bar === window.jamState.first + 3)", timeout=60)
    sent = browser.execute_script("return window.jamState.sent")
    assert [s["bar"] for s in sent[:2]] == [first, first + 1] and sent[0]["notes"] == 3
    scheduled = browser.execute_script("return window.jamScheduled")
    assert {s["bar"] for s in scheduled} >= {first, first + 1, first + 2, first + 3}
    for s in scheduled:
        assert s["at"] < s["start"], s  # queued before its bar starts
    assert browser.execute_script("return window.jamState.late") == 0
    assert sum(s["notes"] for s in scheduled) > 0
    starts = {s["bar"]: (s["start"], s["qpm"]) for s in scheduled}
    assert [starts[first + k][1] for k in range(4)] == [60, 60, 75, 75]
    assert starts[first + 2][0] - starts[first + 1][0] == pytest.approx(4.0)  # bar first + 1 lasts 4 s at 60
    assert starts[first + 3][0] - starts[first + 2][0] == pytest.approx(4 * 60 / 75)

    browser.find_element(By.ID, "jam-stop").click()
    wait_for(browser, "!window.jamState.playing && !document.getElementById('jam-keep').disabled")
    browser.find_element(By.ID, "jam-keep").click()
    wait_for(browser, "window.studio.song.version === 2")
    tracks = browser.execute_script("return window.studio.song.tracks")
    (player,) = [t for t in tracks if t["name"] == "Player"]
    assert sorted(n[2] for n in player["notes"]) == [60, 62, 64]
    assert not browser.find_element(By.ID, "error").text.strip()
    browser.find_element(By.ID, "undo").click()
    wait_for(browser, "window.studio.song.version === 1 && window.studio.song.tracks.length === 4")
