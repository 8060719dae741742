"""studio/server.py, checked closely enough to kill its mutants (docs/testing.md): what a Generate request writes and
the page's controls as ``parse_generate`` reads them, at their edges and with their exact messages, on songs opened
in code; the request body's caps and the refusals' messages over HTTP, on a studio that never loads a model; and what
every answer carries (the policy headers, once each, static files included), the 404 and 405 answers, the lifespan
passed through the guard, and the songs a studio keeps open."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import asdict
from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient

from midi_rwkv.inference.options import InfillOptions
from midi_rwkv.inference.sampler import default_sampler
from midi_rwkv.studio.http import HEADERS
from midi_rwkv.studio.jobs import Target
from midi_rwkv.studio.server import (LAUNCH_SETTINGS, MAX_SONGS, MAX_UPLOAD, STATIC, Studio, _body, build_app,
                                      parse_generate)
from midi_rwkv.studio.session import Song, StudioError
from midi_rwkv.tokenizer.controls import DENSITY_MAX, DURATIONS
from tests.conftest import FIXTURES, TPQ, make_score

CHORALE = (FIXTURES / "bach_bwv66.6.mid").read_bytes()


@pytest.fixture(scope="module")
def song(tok):
    return Song.open(CHORALE, "bach.mid", tok)


def _controls(song, **body):
    request, _, _ = parse_generate(body, song, {})
    (fill,) = request.fills
    return fill.controls


@pytest.mark.parametrize("body, density", [
    ({"track": 1, "bars": [2, 5], "density": [0, DENSITY_MAX, 3]}, [0, DENSITY_MAX, 3]),
    ({"track": 1, "bars": [2, 5], "density": [4]}, [4]),
    ({"mode": "track", "track": 1, "density": [4]}, [4]),
    ({"mode": "track", "track": 1, "density": [0, DENSITY_MAX]}, [0, DENSITY_MAX]),
    ({"mode": "new", "density": [DENSITY_MAX]}, [DENSITY_MAX]),
], ids=["bars-one-per-bar", "bars-one", "track-one", "track-range", "new-one"])
def test_density_takes_one_value_or_one_per_bar_or_a_range_from_0_to_the_top(song, body, density):
    assert _controls(song, **body).density == density


PER_BAR = "'density' takes one value, or one per bar, from 0 to 18"
RANGE = "'density' takes one value, or [low, high] notes per bar, from 0 to 18"


@pytest.mark.parametrize("body, message", [
    ({"track": 1, "bars": [2, 5], "density": [1, 2]}, PER_BAR),
    ({"track": 1, "bars": [2, 5], "density": [DENSITY_MAX + 1]}, PER_BAR),
    ({"track": 1, "bars": [2, 5], "density": [-1]}, PER_BAR),
    ({"mode": "track", "track": 1, "density": [1, 2, 3]}, RANGE),
    ({"mode": "new", "density": []}, RANGE),
], ids=["bars-two-for-three", "bars-too-many-notes", "bars-negative", "track-three", "new-none"])
def test_density_out_of_shape_is_refused_with_what_each_kind_of_request_takes(song, body, message):
    with pytest.raises(StudioError) as refused:
        parse_generate(body, song, {})
    assert str(refused.value) == message


def test_polyphony_and_durations_reach_the_request(song):
    durations = [True, False, True, False, False]
    assert len(durations) == len(DURATIONS)
    controls = _controls(song, track=1, bars=[2, 4], polyphony=[1, 3], durations=durations)
    assert controls.polyphony == (1, 3) and controls.durations == tuple(durations)


@pytest.mark.parametrize("body, message", [
    ({"polyphony": [1.5, 2]}, "'polyphony' must be [min, max]"),
    ({"polyphony": [1, 2, 3]}, "'polyphony' must be [min, max]"),
    ({"polyphony": "1-2"}, "'polyphony' must be [min, max]"),
    ({"durations": [True, True]}, "'durations' must be 5 true/false flags (whole ... sixteenth)"),
    ({"durations": [1, 0, 1, 0, 0]}, "'durations' must be 5 true/false flags (whole ... sixteenth)"),
], ids=["polyphony-not-whole", "polyphony-three", "polyphony-text", "durations-two", "durations-numbers"])
def test_polyphony_and_durations_out_of_shape_are_refused(song, body, message):
    with pytest.raises(StudioError) as refused:
        parse_generate({"track": 1, "bars": [2, 4]} | body, song, {})
    assert str(refused.value) == message


@pytest.fixture(scope="module")
def band(tok):
    """4 bars: a melody, a bass (program 33), a track of program 127 (the vocabulary lacks it) and drums."""
    melody = [(b * 4 * TPQ + k * TPQ, TPQ, 60 + k, 80) for b in range(4) for k in range(4)]
    bass = [(b * 4 * TPQ, 4 * TPQ, 40, 70) for b in range(4)]
    drums = [(b * 4 * TPQ + k * TPQ, TPQ // 2, 36, 90) for b in range(4) for k in range(4)]
    score = make_score([(0, 4, 4)], [(0, False, melody), (33, False, bass), (127, False, [(0, TPQ, 60, 50)]),
                                     (0, True, drums)])
    return Song.open(score.dumps_midi(), "band.mid", tok)


def _target(song, **body) -> Target:
    return parse_generate(body, song, {})[1]


def test_each_kind_of_request_writes_its_own_target(band):
    assert _target(band, track=1, bars=[1, 3]) == Target("bars", 1, (1, 3), 33, False)
    assert _target(band, track=3, bars=[0, 4]) == Target("bars", 3, (0, 4), 0, True)
    assert _target(band, mode="track", track=1) == Target("track", 1, (0, 4), 33, False)
    assert _target(band, mode="track", track=3) == Target("track", 3, (0, 4), 0, True)
    assert _target(band, mode="new") == Target("new", 4, (0, 4), 0, False)
    assert _target(band, mode="new", program=127, drums=True) == Target("new", 4, (0, 4), 127, True)
    assert _target(band, mode="new", program=5, drums=1) == Target("new", 4, (0, 4), 5, False)  # only true is true


@pytest.mark.parametrize("body, message", [
    ({"mode": "solo"}, "'mode' must be one of bars, track, new"),
    ({"mode": "new", "program": 128}, "'program' must be a whole number from 0 to 127"),
    ({"mode": "new", "program": -1}, "'program' must be a whole number from 0 to 127"),
    ({"track": 4, "bars": [0, 1]}, "'track' must be a whole number from 0 to 3"),
    ({"track": True, "bars": [0, 1]}, "'track' must be a whole number from 0 to 3"),
    ({"track": 1.0, "bars": [0, 1]}, "'track' must be a whole number from 0 to 3"),
    ({"track": "1", "bars": [0, 1]}, "'track' must be a whole number from 0 to 3"),
    ({"track": 2, "bars": [0, 1]}, "track 2 has no notes the model can read"),
    ({"track": 1, "bars": [0.5, 2]}, "'bars' must be [first, end), counted from 0"),
    ({"track": 1, "bars": [False, 2]}, "'bars' must be [first, end), counted from 0"),
    ({"track": 1, "bars": [0, 1, 2]}, "'bars' must be [first, end), counted from 0"),
    ({"track": 1, "bars": "0-2"}, "'bars' must be [first, end), counted from 0"),
    ({"track": 1, "bars": [2, 2]}, "bars 3-2 are outside the piece, which has 4 bars"),
    ({"track": 1, "bars": [3, 9]}, "bars 4-9 are outside the piece, which has 4 bars"),
    ({"track": 1, "bars": [-1, 2]}, "bars 0-2 are outside the piece, which has 4 bars"),
], ids=["mode", "program-128", "program-negative", "track-4", "track-true", "track-float", "track-text",
        "track-unreadable", "bars-float", "bars-false", "bars-three", "bars-text", "bars-empty", "bars-past-the-end",
        "bars-negative"])
def test_a_target_out_of_bounds_is_refused_with_its_bounds(band, body, message):
    with pytest.raises(StudioError) as refused:
        parse_generate(body, band, {})
    assert str(refused.value) == message


@pytest.mark.parametrize("temperature", [0, 0.7, 2])
def test_a_temperature_from_0_to_2_is_taken(band, temperature):
    assert parse_generate({"track": 1, "bars": [0, 2], "temperature": temperature}, band, {})[0].sampler.temperature \
        == temperature


@pytest.mark.parametrize("temperature", [True, -0.1, 2.5, "1"], ids=["true", "negative", "past-2", "text"])
def test_a_temperature_outside_0_to_2_is_refused(band, temperature):
    with pytest.raises(StudioError) as refused:
        parse_generate({"track": 1, "bars": [0, 2], "temperature": temperature}, band, {})
    assert str(refused.value) == "'temperature' must be from 0 to 2"


@pytest.mark.parametrize("body", [{"polyphony": [1, 2]}, {"durations": [True, False, False, False, False]}],
                         ids=["polyphony", "durations"])
def test_a_drum_track_takes_density_only(band, body):
    with pytest.raises(StudioError) as refused:
        parse_generate({"mode": "track", "track": 3} | body, band, {})
    assert str(refused.value) == "a drum track takes note density only (no polyphony or durations)"


def test_a_request_body_is_json_up_to_64_kb_and_an_empty_one_is_an_empty_object(tok):
    studio = Studio(None, {})
    studio.hosts = {"testserver"}
    song = Song.open(CHORALE, "bach.mid", tok)
    studio.songs[song.id] = song  # opened without loading a model
    client = TestClient(build_app(studio), base_url="http://testserver")
    url, headers = f"/api/songs/{song.id}/accept", {"X-Studio-Token": studio.token}
    answer = client.post(url, content=b" " * (64 * 1024 + 1), headers=headers)
    assert (answer.status_code, answer.json()) == (413, {"error": "the request is larger than 64 KB"})
    answer = client.post(url, headers=headers)  # no body: no candidate named
    assert (answer.status_code, answer.json()) == (404, {"error": "no such candidate (it may belong to another song)"})
    for body, message in [(b"{", "the request body is not JSON"), (b"\xff\xfe{", "the request body is not JSON"),
                          (b"[1]", "the request body must be a JSON object")]:
        answer = client.post(url, content=body, headers=headers)
        assert (answer.status_code, answer.json()) == (400, {"error": message}), body


def test_refusals_over_http_say_what_was_refused(tok):
    studio = Studio(None, {})  # never loads a model: every request below is refused before it would
    studio.hosts = {"testserver"}
    client = TestClient(build_app(studio), base_url="http://testserver")
    token = {"X-Studio-Token": studio.token}
    answer = client.get("/api/songs/nope", headers=token)
    assert (answer.status_code, answer.json()) == (
        404, {"error": "no such song (it may have been closed; open the file again)"})
    answer = client.get("/api/styles", headers=token | {"Host": "evil.example"})
    assert (answer.status_code, answer.json()) == (403, {"error": "this studio only answers at its own address"})
    answer = client.get("/api/styles", headers=token | {"Origin": "http://evil.example"})
    assert (answer.status_code, answer.json()) == (403, {"error": "requests from other sites are refused"})
    for wrong in ({}, {"X-Studio-Token": "guess"}):
        answer = client.get("/api/styles", headers=wrong)
        assert (answer.status_code, answer.json()) == (
            401, {"error": "missing or wrong studio token: open the URL the studio printed"})
    answer = client.post("/api/songs", content=b"\0" * (MAX_UPLOAD + 1), headers=token)
    assert (answer.status_code, answer.json()) == (413, {"error": "the file is larger than 8 MB"})


class _Upload:
    def __init__(self, data: bytes, declared: bool):
        self.headers = {"content-length": str(len(data))} if declared else {}
        self.data = data

    async def stream(self):
        yield self.data


@pytest.mark.parametrize("limit, size", [(2**20, "1 MB"), (3 * 2**20 // 2, "1 MB"), (2**20 - 1, "1023 KB")])
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "counted"])
def test_a_body_over_its_limit_is_refused_in_whole_mb_from_1_mb_and_in_kb_below(limit, size, declared):
    with pytest.raises(StudioError) as refused:
        asyncio.run(_body(_Upload(b"x" * (limit + 1), declared), limit))
    assert (str(refused.value), refused.value.status) == (f"the file is larger than {size}", 413)
    assert asyncio.run(_body(_Upload(b"x" * limit, declared), limit)) == b"x" * limit


@pytest.fixture
def bare(tok, tmp_path):
    """A studio whose songs open with the base tokenizer and whose jobs are recorded, not run: no model loads."""
    studio = Studio(None, {"folk": tmp_path / "folk.safetensors"})
    studio.hosts = {"testserver"}
    studio.infiller = lambda style=None: SimpleNamespace(tokenizer=tok)
    started = []
    studio.jobs.start = lambda *args: started.append(args) or SimpleNamespace(id="job-1")
    client = TestClient(build_app(studio), base_url="http://testserver")
    return studio, client, {"X-Studio-Token": studio.token}, started


def test_the_page_is_served_at_the_root(bare):
    _, client, _, _ = bare
    answer = client.get("/")
    assert answer.status_code == 200 and answer.content == (STATIC / "index.html").read_bytes()
    assert answer.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("header, name", [
    (None, "song"), ("", "song"), ("dir%2Fmy%20tune.mid", "my tune"), ("a" * 130 + ".mid", "a" * 120),
], ids=["none", "empty", "quoted-path", "long"])
def test_an_opened_song_is_named_after_its_file(bare, header, name):
    _, client, token, _ = bare
    headers = token if header is None else token | {"X-Song-Name": header}
    answer = client.post("/api/songs", content=CHORALE, headers=headers)
    assert answer.status_code == 200 and answer.json()["name"] == name


def test_an_empty_upload_and_an_unknown_job_are_refused_in_words(bare):
    _, client, token, _ = bare
    answer = client.post("/api/songs", content=b"", headers=token)
    assert (answer.status_code, answer.json()) == (400, {"error": "the file is empty"})
    for path in ("/api/jobs/nope", "/api/jobs/nope/cancel"):
        answer = client.request("POST" if path.endswith("cancel") else "GET", path, headers=token)
        assert (answer.status_code, answer.json()) == (404, {"error": "no such job"})


def test_the_defaults_are_every_request_setting_and_each_mode_s_temperature(bare):
    _, client, token, _ = bare
    settings = {k: v for k, v in asdict(InfillOptions()).items() if k not in LAUNCH_SETTINGS}
    assert settings and not set(LAUNCH_SETTINGS) & set(settings)
    temperatures = {mode: default_sampler(mode).temperature for mode in ("bars", "track", "new")}
    assert client.get("/api/defaults", headers=token).json() == {"temperature": temperatures} | settings


def test_a_generate_request_starts_a_job_with_its_style(bare, tok):
    studio, client, token, started = bare
    song = Song.open(CHORALE, "bach.mid", tok)
    studio.songs[song.id] = song
    answer = client.post(f"/api/songs/{song.id}/generate", json={"track": 1, "bars": [2, 4], "n": 1, "seed": 3,
                                                                 "style": "folk"}, headers=token)
    assert answer.json() == {"job": "job-1"}
    ((started_song, request, target, style),) = started
    assert started_song is song and style == "folk"
    assert target == Target("bars", 1, (2, 4), song.score.tracks[1].program)
    assert request.options.seed == 3 and request.options.n == 1


def test_cancelling_a_job_stops_it_and_answers_with_its_view(bare):
    studio, client, token, _ = bare
    job = SimpleNamespace(cancelled=threading.Event(), view=lambda: {"id": "j", "status": "running"})
    studio.jobs.get = {"j": job}.get
    answer = client.post("/api/jobs/j/cancel", headers=token)
    assert (answer.status_code, answer.json()) == (200, {"id": "j", "status": "running"}) and job.cancelled.is_set()


def test_static_files_are_served_under_static_with_the_page_s_policy(bare):
    _, client, _, _ = bare
    answer = client.get("/static/studio.css")  # no token: the page loads these before it has read it
    assert answer.status_code == 200 and answer.content == (STATIC / "studio.css").read_bytes()
    for name, value in HEADERS.items():
        assert answer.headers.get_list(name) == [value], name


def test_every_answer_carries_each_policy_header_once(bare, tok):
    studio, client, token, _ = bare
    song = Song.open(CHORALE, "bach.mid", tok)
    studio.songs[song.id] = song
    answers = {
        "page": client.get("/"), "static": client.get("/static/js/app.js"),
        "json": client.get("/api/styles", headers=token),
        "export": client.get(f"/api/songs/{song.id}/export", headers=token),
        "refused by the app": client.get("/api/songs/nope", headers=token),
        "refused at the door": client.get("/api/styles"), "not found": client.get("/static/nope.css"),
    }
    for what, answer in answers.items():
        for name, value in HEADERS.items():
            assert answer.headers.get_list(name) == [value], (what, name)
    for headers in ([(b"host", b"testserver")], [(b"host", b"testserver"), (b"x-studio-token", studio.token.encode())]):
        raw = []  # the ASGI messages themselves: header names in lower case, as ASGI asks
        asyncio.run(build_app(studio)(
            {"type": "http", "method": "GET", "path": "/api/styles", "raw_path": b"/api/styles", "query_string": b"",
             "headers": headers, "scheme": "http", "http_version": "1.1", "server": ("testserver", 80),
             "client": ("127.0.0.1", 1), "root_path": ""},
            _receiving([{"type": "http.request", "body": b"", "more_body": False}]), _recording(raw)))
        (start,) = [m for m in raw if m["type"] == "http.response.start"]
        names = [k for k, _ in start["headers"]]
        assert all(k == k.lower() for k in names) and all(names.count(k.lower().encode()) == 1 for k in HEADERS)


def _receiving(messages):
    queue = list(messages)

    async def receive():
        return queue.pop(0)

    return receive


def _recording(sent):
    async def send(message):
        sent.append(message)

    return send


@pytest.mark.parametrize("method, path, status, message", [
    ("GET", "/api/nope", 404, "not found"), ("GET", "/static/nope.css", 404, "not found"),
    ("GET", "/api/songs", 405, "method not allowed"), ("GET", "/api/jobs/j/cancel", 405, "method not allowed"),
    ("DELETE", "/api/styles", 405, "method not allowed"),
], ids=["api", "static", "open-by-get", "cancel-by-get", "delete"])
def test_unknown_paths_and_methods_are_refused_in_words(bare, method, path, status, message):
    _, client, token, _ = bare
    answer = client.request(method, path, headers=token)
    assert (answer.status_code, answer.json()) == (status, {"error": message})


def test_the_server_s_lifespan_passes_through_the_guard():
    studio = Studio(None, {})  # lifespan messages carry no Host: the guard must not see them
    sent = []
    asyncio.run(build_app(studio)({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                  _receiving([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]),
                                  _recording(sent)))
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    with TestClient(build_app(studio)) as client:  # as uvicorn runs it: startup, requests, shutdown
        assert client.get("/api/styles").status_code == 403


@pytest.mark.parametrize("body", [b"", b"{", b"[1]", b'{"candidate": "x"}'], ids=["none", "not-json", "list", "object"])
@pytest.mark.parametrize("action", ["undo", "redo"])
def test_undo_and_redo_read_no_body(bare, tok, action, body):
    studio, client, token, _ = bare
    song = Song.open(CHORALE, "bach.mid", tok)
    studio.songs[song.id] = song
    answer = client.post(f"/api/songs/{song.id}/{action}", content=body, headers=token)
    assert (answer.status_code, answer.json()) == (409, {"error": f"nothing to {action}"})


def test_the_studio_keeps_the_songs_opened_last_and_closes_the_oldest(bare):
    studio, _, _, _ = bare
    opened = [studio.add_song(CHORALE, f"song{i}.mid") for i in range(MAX_SONGS + 2)]
    assert list(studio.songs) == [song.id for song in opened[2:]] and len(studio.songs) == MAX_SONGS
    assert studio.songs[opened[-1].id] is opened[-1]  # the song just opened is always kept
