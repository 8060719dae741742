"""The Jam view's API (midi_rwkv/studio/jam.py): a take played bar by bar over HTTP, the accompaniment polled as
events on the bar grid and in register for the bar after next, controls while playing, keeping the take as a new
version that undo takes back, and the refusals (malformed, oversized, no token, another Origin or Host)."""

import time

import pytest
from starlette.testclient import TestClient

from midi_rwkv.inference.constraints import TokenTables
from midi_rwkv.inference.generator import Generator
from midi_rwkv.inference.infiller import Infiller, program_register
from midi_rwkv.studio.jam import MAX_NOTES
from midi_rwkv.studio.server import Studio, build_app
from tests.conftest import FIXTURES
from tests.live.conftest import NotesFirst

CHORALE = (FIXTURES / "bach_bwv66.6.mid").read_bytes()
BASS = 33


@pytest.fixture
def studio(tok, tiny_model):
    """A studio whose model is the tiny one, leaning towards writing notes (tests/live/conftest.py)."""
    s = Studio(None, {})
    s._infillers[None] = Infiller(Generator(NotesFirst(tiny_model, TokenTables.build(tok.codec), tok)), tok,
                                  layout="target-last")
    s.hosts = {"testserver", "127.0.0.1:8700"}
    return s


@pytest.fixture
def client(studio):
    with TestClient(build_app(studio), base_url="http://testserver") as c:
        yield c


def auth(studio, **extra):
    return {"X-Studio-Token": studio.token, **extra}


@pytest.fixture
def song(client, studio):
    return client.post("/api/songs", content=CHORALE, headers=auth(studio, **{"X-Song-Name": "bach.mid"})).json()


def post(client, studio, song, what, body=None):
    return client.post(f"/api/songs/{song['id']}/jam/{what}", json=body or {}, headers=auth(studio))


def melody(bar: int) -> list:
    return [[k / 2, 0.5, 60 + (bar + k) % 8, 90] for k in range(8)]


def wait_events(client, studio, song, after, where, seconds=60.0):
    """Poll the events until one satisfies ``where``; every event seen so far."""
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = client.get(f"/api/songs/{song['id']}/jam/events?after={after}", headers=auth(studio)).json()
        assert all(e["seq"] > after for e in answer["events"])  # only the events after the last one read
        seen += answer["events"]
        after = answer["next"]
        if any(where(e) for e in seen):
            return seen
        time.sleep(0.02)
    raise AssertionError("the event never came")


def notes_of(events, bar):
    return [e["data"] for e in events if e["name"] == "notes" and e["data"]["bar"] == bar]


def grid_of(events, bar):
    (grid,) = [e["data"] for e in events if e["name"] == "grid" and e["data"]["bar"] == bar]
    return grid


def test_a_take_played_bar_by_bar_gets_the_bar_after_next_on_the_grid_and_in_register(client, studio, song):
    started = post(client, studio, song, "start", {"new": [{"program": BASS}], "tempo": 100, "seed": 1})
    assert started.status_code == 200, started.text
    start = started.json()
    first = len(song["bars"])  # the take goes on after the song
    names = [e["name"] for e in start["events"]]
    assert names[0] == "ready" and start["events"][0]["data"] == {"bar": first, "qpm": 100.0, "metre": [4, 4]}
    assert start["playing"] and start["parts"][0]["program"] == BASS and start["player"]["name"] == "Player"
    for bar in (first, first + 1):  # the count-in, answered at once
        assert grid_of(start["events"], bar)["quarters"] == 4.0 and len(notes_of(start["events"], bar)) == 1
    low, high = program_register(BASS)
    after, events = start["next"], start["events"]
    for played in range(first, first + 3):
        answer = post(client, studio, song, "bar", {"index": played, "notes": melody(played)})
        assert answer.status_code == 200, answer.text
        events += wait_events(client, studio, song, after, lambda e, p=played: e["name"] == "timing"
                              and e["data"]["played"] == p)
        after = max(e["seq"] for e in events)
        grid = grid_of(events, played + 2)
        assert grid["start"] == 4.0 * (played + 2 - first) and grid["quarters"] == 4.0 and grid["qpm"] == 100.0
        (part,) = notes_of(events, played + 2)
        for start_q, duration, pitch, velocity in part["notes"]:
            assert 0 <= start_q < 4.0 and duration > 0 and 1 <= velocity <= 127 and low <= pitch <= high
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # each event once, in order
    written = sum(len(part["notes"]) for bar in range(first, first + 5) for part in notes_of(events, bar))
    assert written > 0
    stopped = post(client, studio, song, "stop").json()
    assert not stopped["playing"]
    assert wait_events(client, studio, song, 0, lambda e: e["name"] == "stopped" and e["data"]["bars"] == 3)


def test_controls_change_while_playing_from_the_next_bar_written(client, studio, song):
    start = post(client, studio, song, "start", {"new": [{"program": BASS}], "seed": 2}).json()
    first, track = start["events"][0]["data"]["bar"], start["parts"][0]["track"]
    answer = post(client, studio, song, "controls", {"tempo": 90, "metre": [3, 4], "structure": "off",
                                                     "parts": [{"track": track, "density": 2,
                                                                "register": [40, 45]}]})
    assert answer.status_code == 200, answer.text
    controls = answer.json()["controls"]
    assert controls["tempo"] == 90.0 and controls["metre"] == [3, 4] and controls["structure"] == "off"
    assert controls["parts"][str(track)]["density"] == 2 and controls["parts"][str(track)]["register"] == [40, 45]
    post(client, studio, song, "bar", {"index": first, "notes": melody(0)})
    events = wait_events(client, studio, song, start["next"], lambda e: e["name"] == "timing")
    grid = grid_of(events, first + 2)
    assert grid["qpm"] == 90.0 and grid["metre"] == [3, 4] and grid["quarters"] == 3.0
    (part,) = notes_of(events, first + 2)
    assert len(part["notes"]) <= 2 and all(40 <= n[2] <= 45 for n in part["notes"])
    assert grid_of(start["events"], first + 1)["quarters"] == 4.0  # laid down before the change
    muted = post(client, studio, song, "controls", {"parts": [{"track": track, "mute": True}]})
    assert muted.json()["controls"]["parts"][str(track)]["mute"] is True
    post(client, studio, song, "bar", {"index": first + 1, "notes": []})
    events = wait_events(client, studio, song, start["next"], lambda e: e["name"] == "timing"
                         and e["data"]["played"] == first + 1)
    assert notes_of(events, first + 3)[0]["notes"] == []


def test_keeping_a_take_adds_a_version_and_undo_restores_the_song(client, studio, song):
    before = client.get(f"/api/songs/{song['id']}", headers=auth(studio)).json()
    assert post(client, studio, song, "keep").status_code == 404  # no jam yet
    start = post(client, studio, song, "start", {"new": [{"program": BASS}], "seed": 3}).json()
    first = start["events"][0]["data"]["bar"]
    assert post(client, studio, song, "keep").status_code == 409  # nothing played yet
    start = post(client, studio, song, "start", {"new": [{"program": BASS}], "seed": 3}).json()
    for played in (first, first + 1):
        assert post(client, studio, song, "bar", {"index": played, "notes": melody(played)}).status_code == 200
    kept = post(client, studio, song, "keep")  # stops the take once both bars are read
    assert kept.status_code == 200, kept.text
    view = kept.json()
    assert view["version"] == 2 and view["can_undo"] and view["history"][-1]["label"].startswith("jam: Player with")
    assert len(view["bars"]) == first + 2 and len(view["tracks"]) == 6  # the song's 4, the bass, the player
    (player,) = [t for t in view["tracks"][4:] if t["name"] == "Player"]
    assert sorted(tuple(n) for n in player["notes"]) == sorted(
        (4.0 * (b - first) + before["beats"] + n[0], n[1], n[2], n[3]) for b in (first, first + 1)
        for n in [tuple(x) for x in melody(b)])
    for a, b in zip(before["tracks"], view["tracks"]):
        assert a["notes"] == b["notes"]
    assert not client.get(f"/api/songs/{song['id']}/jam/events", headers=auth(studio)).json()["playing"]
    undone = client.post(f"/api/songs/{song['id']}/undo", headers=auth(studio)).json()
    assert undone["version"] == 1 and undone["tracks"] == before["tracks"] and undone["bars"] == before["bars"]
    redone = client.post(f"/api/songs/{song['id']}/redo", headers=auth(studio)).json()
    assert redone["tracks"] == view["tracks"]


def test_a_track_of_the_song_can_be_the_player_from_a_chosen_bar(client, studio, song):
    start = post(client, studio, song, "start", {"player": 0, "accompany": [1, 2], "from": 2, "seed": 4})
    assert start.status_code == 200, start.text
    start = start.json()
    assert start["events"][0]["data"]["bar"] == 2 and [p["track"] for p in start["parts"]] == [1, 2]
    assert start["player"]["track"] == 0
    notes = [[n[0] - song["bars"][2]["start"], n[1], n[2], n[3]] for n in song["tracks"][0]["notes"]
             if song["bars"][2]["start"] <= n[0] < song["bars"][2]["end"]]
    assert post(client, studio, song, "bar", {"index": 2, "notes": notes}).status_code == 200
    events = wait_events(client, studio, song, start["next"], lambda e: e["name"] == "timing")
    assert {p["track"] for p in notes_of(events, 4)} == {1, 2}
    view = post(client, studio, song, "keep").json()
    assert len(view["tracks"]) == 4 and len(view["bars"]) == 3  # the song to bar 2, then the bar played
    assert [n for n in view["tracks"][0]["notes"] if n[0] >= song["bars"][2]["start"]] == notes_shifted(notes, song)


def notes_shifted(notes, song):
    return sorted([n[0] + song["bars"][2]["start"], n[1], n[2], n[3]] for n in notes)


@pytest.mark.parametrize("what, body, status, message", [
    ("start", {}, 400, "name 1 to 4 parts"),
    ("start", {"accompany": [9]}, 400, "'accompany' must be"),
    ("start", {"new": [{"program": 300}]}, 400, "'program' must be"),
    ("start", {"new": [{"program": 0}] * 5}, 400, "name 1 to 4 parts"),
    ("start", {"new": [{"program": 0}], "player": 1, "accompany": [1]}, 400, "cannot also accompany"),
    ("start", {"new": [{"program": 0}], "tempo": 1000}, 400, "'tempo' must be"),
    ("start", {"new": [{"program": 0}], "metre": [5, 3]}, 400, "'metre' 5/3"),
    ("start", {"new": [{"program": 0}], "metre": "4/4"}, 400, "'metre' must be"),
    ("start", {"new": [{"program": 0}], "structure": "chaos"}, 400, "'structure' must be"),
    ("start", {"new": [{"program": 0}], "from": 99}, 400, "'from' must be"),
    ("bar", {"notes": []}, 400, "'index' is missing"),
    ("bar", {"index": 7, "notes": []}, 400, "the next bar to play is"),
    ("bar", {"index": "x"}, 400, "'index' must be"),
    ("bar", {"index": "first", "notes": [[4.5, 1, 60, 90]]}, 400, "past the bar"),
    ("bar", {"index": 0, "notes": [[0, 1, 60]]}, 400, "a note is"),
    ("bar", {"index": 0, "notes": [[0, 1, 200, 90]]}, 400, "pitch 0-127"),
    ("bar", {"index": 0, "notes": [[0, 1, 60, 90]] * (MAX_NOTES + 1)}, 400, f"at most {MAX_NOTES} notes"),
    ("controls", {"tempo": "fast"}, 400, "'tempo' must be"),
    ("controls", {"parts": [{"track": 9, "density": 2}]}, 400, "not a part of this take"),
    ("controls", {"parts": [{"track": 4, "register": [50, 40]}]}, 400, "'register' must be"),
    ("controls", {"parts": [{"density": 2}]}, 400, "names its 'track'"),
])
def test_malformed_jam_requests_get_one_line_and_the_take_plays_on(client, studio, song, what, body, status,
                                                                  message):
    if what != "start":
        assert post(client, studio, song, "start", {"new": [{"program": BASS}], "seed": 5}).status_code == 200
    if body.get("index") == "first":
        body = body | {"index": len(song["bars"])}
    answer = post(client, studio, song, what, body)
    assert answer.status_code == status and message in answer.json()["error"], answer.text
    assert "\n" not in answer.json()["error"] and "Traceback" not in answer.text
    if what != "start":  # the take carries on
        first = len(song["bars"])
        assert post(client, studio, song, "bar", {"index": first, "notes": melody(0)}).status_code == 200


def test_oversized_and_unreadable_bodies_and_bad_queries_are_refused(client, studio, song):
    assert client.get(f"/api/songs/{song['id']}/jam/events", headers=auth(studio)).status_code == 404  # no jam
    post(client, studio, song, "start", {"new": [{"program": BASS}], "seed": 6})
    url = f"/api/songs/{song['id']}/jam/bar"
    big = client.post(url, content=b"[" * (64 * 1024 + 1), headers=auth(studio))
    assert big.status_code == 413 and "larger than 64 KB" in big.json()["error"]
    assert "not JSON" in client.post(url, content=b"{nope", headers=auth(studio)).json()["error"]
    assert "JSON object" in client.post(url, json=[1, 2], headers=auth(studio)).json()["error"]
    for after in ("-1", "x", "1" * 20):
        bad = client.get(f"/api/songs/{song['id']}/jam/events?after={after}", headers=auth(studio))
        assert bad.status_code == 400 and "'after'" in bad.json()["error"]
    assert client.post("/api/songs/nosuchsong/jam/start", json={"new": [{"program": 0}]},
                       headers=auth(studio)).status_code == 404


JAM = [("post", "start"), ("post", "bar"), ("get", "events"), ("post", "controls"), ("post", "stop"),
       ("post", "keep")]


@pytest.mark.parametrize("method, what", JAM, ids=[w for _, w in JAM])
def test_the_token_origin_and_host_rules_apply_to_every_jam_endpoint(client, studio, song, method, what):
    post(client, studio, song, "start", {"new": [{"program": BASS}], "seed": 7})
    url = f"/api/songs/{song['id']}/jam/{what}"
    call = getattr(client, method)
    kwargs = {"json": {}} if method == "post" else {}
    assert call(url, **kwargs).status_code == 401
    assert call(url, headers={"X-Studio-Token": "guess"}, **kwargs).status_code == 401
    assert call(url, headers=auth(studio, Origin="http://evil.example"), **kwargs).status_code == 403
    assert call(url, headers=auth(studio, Host="evil.example:8700"), **kwargs).status_code == 403
    events = client.get(f"/api/songs/{song['id']}/jam/events", headers=auth(studio)).json()
    assert events["playing"]  # none of the refused calls reached the take
