"""The studio's API over HTTP: the whole flow, and each safety rule (token, Host, Origin, limits, ids, errors)."""

import json
import time

import pytest
from starlette.testclient import TestClient
from symusic import Score

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.options import InfillOptions
from midi_rwkv.inference.requests import BarFill, ControlRequest, InfillRequest
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.model import save_checkpoint
from midi_rwkv.studio.server import MAX_UPLOAD, Studio, build_app
from tests.conftest import FIXTURES, TPQ, make_score, note_tuples

CHORALE = (FIXTURES / "bach_bwv66.6.mid").read_bytes()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, tok, tiny_model):
    root = tmp_path_factory.mktemp("studio")
    tok.save(root / "tokenizer.json")
    return save_checkpoint(tiny_model, root / "m.pth")


@pytest.fixture
def studio(model_path):
    s = Studio(str(model_path), {})
    s.hosts = {"testserver", "127.0.0.1:8700"}
    return s


@pytest.fixture
def client(studio):
    return TestClient(build_app(studio), base_url="http://testserver")


def auth(studio, **extra):
    return {"X-Studio-Token": studio.token, **extra}


def open_song(client, studio, data=CHORALE):
    return client.post("/api/songs", content=data, headers=auth(studio, **{"X-Song-Name": "bach.mid"}))


def wait(client, studio, job, seconds=120.0):
    deadline = time.monotonic() + seconds  # generous: a busy machine runs the tiny model slowly
    while time.monotonic() < deadline:
        view = client.get(f"/api/jobs/{job}", headers=auth(studio)).json()
        if view["status"] != "running":
            return view
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def test_open_generate_accept_undo_redo_export(client, studio):
    song = open_song(client, studio).json()
    assert song["name"] == "bach" and len(song["tracks"]) == 4 and song["version"] == 1 and not song["can_undo"]
    job = client.post(f"/api/songs/{song['id']}/generate", json={"track": 1, "bars": [2, 4], "n": 2, "seed": 9},
                      headers=auth(studio)).json()["job"]
    view = wait(client, studio, job)
    assert view["status"] == "done" and view["done"] == view["total"] == 2
    first, second = view["candidates"]
    assert (first["seed"], second["seed"]) == (9, 10) and first["track"] == 1 and first["bars"] == [2, 4]
    accepted = client.post(f"/api/songs/{song['id']}/accept", json={"candidate": first["id"]}, headers=auth(studio))
    after = accepted.json()
    assert after["version"] == 2 and after["can_undo"] and after["history"][-1]["label"] == "track 1, bars 3-4 (seed 9)"
    lo, hi = song["bars"][2]["start"], song["bars"][3]["end"]
    inside = sorted(tuple(n) for n in after["tracks"][1]["notes"] if lo <= n[0] < hi)
    assert inside == sorted(tuple(n) for n in first["notes"])
    assert client.post(f"/api/songs/{song['id']}/undo", headers=auth(studio)).json()["version"] == 1
    assert client.post(f"/api/songs/{song['id']}/redo", headers=auth(studio)).json()["version"] == 2
    assert client.post(f"/api/songs/{song['id']}/redo", headers=auth(studio)).status_code == 409  # nothing to redo
    exported = client.get(f"/api/songs/{song['id']}/export", headers=auth(studio))
    assert (
        exported.headers["content-type"] == "audio/midi"
        and "bach-studio.mid" in exported.headers["content-disposition"]
    )
    score, original = Score.from_midi(exported.content), Score.from_midi(CHORALE)
    tpq = original.ticks_per_quarter
    for i, (a, b) in enumerate(zip(original.tracks, score.tracks)):  # only that span of that track changed
        if i != 1:
            assert note_tuples(a) == note_tuples(b)
        else:
            assert note_tuples(a, None, int(lo * tpq)) == note_tuples(b, None, int(lo * tpq))
            assert note_tuples(a, int(hi * tpq)) == note_tuples(b, int(hi * tpq))


def test_every_api_call_needs_the_token(client, studio):
    assert client.get("/api/styles").status_code == 401
    assert client.get("/api/styles", headers={"X-Studio-Token": "guess"}).status_code == 401
    assert client.post("/api/songs", content=CHORALE).status_code == 401
    assert client.get("/api/styles", headers=auth(studio)).json() == {"styles": []}


def test_the_page_reads_the_engine_s_default_temperatures_from_the_server(client, studio):
    from midi_rwkv.inference.sampler import TRACK_SAMPLER, SamplerConfig

    assert client.get("/api/defaults").status_code == 401
    answer = client.get("/api/defaults", headers=auth(studio)).json()
    bars, whole = SamplerConfig().temperature, TRACK_SAMPLER.temperature
    assert answer["temperature"] == {"bars": bars, "track": whole, "new": whole}


@pytest.mark.parametrize(
    "headers", [{"Host": "evil.example:8700"}, {"Host": "127.0.0.1:9999"}], ids=["rebinding", "other-port"]
)
def test_other_hosts_are_refused_even_for_the_page(client, studio, headers):
    assert client.get("/api/styles", headers=auth(studio, **headers)).status_code == 403
    assert client.get("/", headers=headers).status_code == 403


def test_other_origins_are_refused_and_no_cors_header_is_sent(client, studio):
    refused = client.get("/api/styles", headers=auth(studio, Origin="http://evil.example"))
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    allowed = client.get("/api/styles", headers=auth(studio, Origin="http://testserver"))
    assert allowed.status_code == 200 and "access-control-allow-origin" not in allowed.headers
    assert "default-src 'self'" in allowed.headers["content-security-policy"]


def test_uploads_are_capped_and_bad_files_get_one_readable_line(client, studio):
    big = client.post("/api/songs", content=b"\0" * (MAX_UPLOAD + 1), headers=auth(studio))
    assert big.status_code == 413 and "larger than 8 MB" in big.json()["error"]
    for data, message in [
        ((FIXTURES / "corrupt_truncated.mid").read_bytes(), "not a readable MIDI file"),
        ((FIXTURES / "no_notes.mid").read_bytes(), "no notes"),
        (b"", "empty"),
    ]:
        bad = open_song(client, studio, data)
        assert bad.status_code == 400 and message in bad.json()["error"] and "Traceback" not in bad.text


@pytest.mark.parametrize(
    "body, message",
    [
        ({"track": 9, "bars": [0, 1]}, "'track' must be"),
        ({"track": 1, "bars": [7, 40]}, "outside the piece"),
        ({"track": 1, "bars": [2, 4], "n": 50}, "'n' must be"),
        ({"track": 1, "bars": [2, 4], "temperature": 9}, "'temperature'"),
        ({"track": 1, "bars": [2, 4], "density": [99]}, "'density'"),
        ({"track": 1, "bars": [2, 4], "polyphony": [3, 1]}, "'polyphony'"),
        ({"track": 1, "bars": [2, 4], "style": "../../etc/passwd"}, "no style preset"),
        ({"track": 1, "bars": [2, 4], "free": True, "density": [4]}, "free infilling takes no"),
        ({"track": 1, "bars": [2, 4], "register": "loose"}, "'register' must be one of keep, free"),
        ({"track": 1, "bars": [2, 4], "structure": "copy"}, "'structure' must be one of"),
    ],
    ids=["track", "bars", "n", "temperature", "density", "polyphony", "style-path", "free", "register", "structure"],
)
def test_generate_requests_are_bounded(client, studio, body, message):
    song = open_song(client, studio).json()["id"]
    answer = client.post(f"/api/songs/{song}/generate", json=body, headers=auth(studio))
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_ids_are_the_server_s_and_unknown_ones_are_404(client, studio):
    for path in ("/api/songs/nope", "/api/jobs/nope", "/api/songs/..%2F..%2Fetc"):
        answer = client.get(path, headers=auth(studio))
        assert answer.status_code == 404 and "error" in answer.json()
    song = open_song(client, studio).json()["id"]
    assert client.post(f"/api/songs/{song}/accept", json={"candidate": "x"}, headers=auth(studio)).status_code == 404


def test_a_job_can_be_cancelled(client, studio):
    song = open_song(client, studio).json()["id"]
    job = client.post(
        f"/api/songs/{song}/generate", json={"track": 0, "bars": [0, 8], "n": 8}, headers=auth(studio)
    ).json()["job"]
    client.post(f"/api/jobs/{job}/cancel", headers=auth(studio))
    view = wait(client, studio, job)
    assert view["status"] == "cancelled" and view["done"] < 8


def test_the_command_refuses_a_busy_port_or_a_bad_file_in_one_line(capsys):
    import socket

    from midi_rwkv.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["studio", "--port", str(port)]) == 2
    assert main(["studio", "--port", "70000"]) == 2
    assert main(["studio", str(FIXTURES / "corrupt_truncated.mid"), "--port", "1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("midi-rwkv: error:") for line in lines)
    assert "pass another --port" in lines[0] and "1 to 65535" in lines[1]


def test_style_presets_from_the_launch_folder(model_path, tiny_model, tmp_path):
    import torch

    from midi_rwkv.peft.adapters import StateAdapter, save_adapter

    style = StateAdapter(tiny_model)
    with torch.no_grad():
        style.wkv.normal_(std=0.3, generator=torch.Generator().manual_seed(1))
    save_adapter(style, tiny_model, tmp_path / "folk.safetensors")
    studio = Studio(str(model_path), {"folk": tmp_path / "folk.safetensors"})
    studio.hosts = {"testserver"}
    client = TestClient(build_app(studio))
    assert client.get("/api/styles", headers=auth(studio)).json() == {"styles": ["folk"]}
    song = open_song(client, studio).json()["id"]
    views = {}
    for name in (None, "folk"):
        job = client.post(f"/api/songs/{song}/generate", json={"track": 1, "bars": [2, 3], "n": 1, "seed": 4,
                                                               "style": name}, headers=auth(studio)).json()["job"]
        views[name] = wait(client, studio, job)
        assert views[name]["status"] == "done"
    assert studio.infiller("folk").generator.engine.initial_state is not None  # the style starts every prompt
    assert studio.infiller(None).generator.engine.initial_state is None


@pytest.mark.parametrize("body, label", [
    ({"mode": "track", "track": 3}, "track 3, whole (seed 2)"),
    ({"mode": "new", "program": 33}, "new track, program 33 (seed 2)"),
    ({"mode": "new", "drums": True, "density": [6, 10]}, "new drum track (seed 2)"),
], ids=["whole-track", "new-track", "new-drums"])
def test_whole_and_new_tracks_from_the_page(client, studio, body, label):
    song = open_song(client, studio).json()
    job = client.post(f"/api/songs/{song['id']}/generate", json=body | {"n": 1, "seed": 2},
                      headers=auth(studio)).json()["job"]
    view = wait(client, studio, job)
    assert view["status"] == "done", view
    (take,) = view["candidates"]
    assert take["mode"] == body["mode"] and take["bars"] == [0, len(song["bars"])]
    after = client.post(f"/api/songs/{song['id']}/accept", json={"candidate": take["id"]}, headers=auth(studio)).json()
    assert after["history"][-1]["label"] == label
    tracks = after["tracks"]
    if body["mode"] == "new":
        assert len(tracks) == 5 and tracks[4]["is_drum"] == body.get("drums", False)
        assert sorted(map(tuple, tracks[4]["notes"])) == sorted(map(tuple, take["notes"]))
    else:
        assert len(tracks) == 4 and sorted(map(tuple, tracks[3]["notes"])) == sorted(map(tuple, take["notes"]))
    for i in range(4 if body["mode"] == "new" else 3):  # every other track unchanged
        assert tracks[i]["notes"] == song["tracks"][i]["notes"]


def test_whole_and_new_track_requests_are_checked(client, studio):
    song = open_song(client, studio).json()["id"]
    for body, message in [({"mode": "solo"}, "'mode' must be"), ({"mode": "new", "program": 300}, "'program'"),
                          ({"mode": "track", "track": 0, "density": [1, 2, 3]}, "[low, high]"),
                          ({"mode": "new", "drums": True, "polyphony": [1, 2]}, "note density only"),
                          ({"mode": "track", "track": 0, "free": True}, "free infilling is for bars")]:
        answer = client.post(f"/api/songs/{song}/generate", json=body, headers=auth(studio))
        assert answer.status_code == 400 and message in answer.json()["error"], (body, answer.json())


def _studio_request(options: InfillOptions, bars=(3, 5)) -> InfillRequest:
    return InfillRequest((BarFill(1, bars, ControlRequest()),), options, SamplerConfig())


def test_a_request_can_free_the_register_without_touching_the_loaded_model(tok, tiny_model, monkeypatch):
    from midi_rwkv.inference.generator import Generator
    from midi_rwkv.inference.infiller import Infiller
    from midi_rwkv.studio.jobs import candidate

    infiller = Infiller(Generator(tiny_model), tok)  # keeps the register, as the studio loads it
    used = []
    monkeypatch.setattr(Infiller, "infill", lambda self, *args, **kwargs: used.append(
        (self.keep_register, self is infiller, self.generator is infiller.generator)) or ["c"])
    candidate(infiller, None, _studio_request(InfillOptions(n=1, seed=1, register="free")), 0)
    candidate(infiller, None, _studio_request(InfillOptions(n=1, seed=1)), 0)
    # freed: a copy of the infiller on the same (already loaded) model; kept: the shared infiller itself
    assert used == [(False, False, True), (True, True, True)]
    assert infiller.keep_register  # the shared infiller is unchanged


def test_a_request_sets_how_it_follows_the_form_and_which_candidate_it_is(tok, tiny_model, monkeypatch):
    from midi_rwkv.inference.generator import Generator
    from midi_rwkv.inference.infiller import Infiller
    from midi_rwkv.studio.jobs import candidate

    infiller = Infiller(Generator(tiny_model), tok, structure="follow")
    used = []
    monkeypatch.setattr(Infiller, "infill", lambda self, *args, **kwargs: used.append(
        (self.structure, kwargs["first_candidate"], args[4], kwargs["seed"], self.generator is infiller.generator))
        or ["c"])
    candidate(infiller, None, _studio_request(InfillOptions(n=2, seed=1, structure="vary")), 1)
    candidate(infiller, None, _studio_request(InfillOptions(n=2, seed=1)), 0)
    # one candidate at a time, seed + index; the second candidate of K is not the repeat itself
    assert used == [("vary", 1, 1, 2, True), ("follow", 0, 1, 1, True)]
    assert infiller.structure == "follow"


def test_the_page_s_settings_are_the_infill_request_s_fields(tok):
    from midi_rwkv.studio.server import LAUNCH_SETTINGS, parse_generate
    from midi_rwkv.studio.session import Song, StudioError

    song = Song.open(CHORALE, "bach.mid", tok)
    body = {"track": 1, "bars": [2, 4], "n": 2, "seed": 7, "register": "free", "structure": "off", "context": 4,
            "strict_density": False, "max_tokens": 300}
    request, target, style = parse_generate(body, song, {})
    assert request.options == InfillOptions(n=2, seed=7, register="free", structure="off", context=4,
                                            strict_density=False, max_tokens=300)
    assert target.bars == (2, 4) and style is None and request.fills == (BarFill(1, (2, 4), ControlRequest()),)
    assert parse_generate({"track": 1, "bars": [2, 4]}, song, {})[0].options.seed is not None  # a fresh seed
    for key in LAUNCH_SETTINGS:  # the launch's engine, and candidates shown as they arrive
        with pytest.raises(StudioError, match=f"'{key}' is not a setting of one request"):
            parse_generate({"track": 1, "bars": [2, 4], key: 1}, song, {})
    with pytest.raises(StudioError, match="'n' must be at most 8"):
        parse_generate({"track": 1, "bars": [2, 4], "n": 9}, song, {})
    with pytest.raises(MidiRwkvError, match="'strict_density' needs true or false"):  # a 400, as every such error
        parse_generate({"track": 1, "bars": [2, 4], "strict_density": 1}, song, {})


# ---- each safety rule and limit, at its edge -----------------------------------------------------------------------

def long_song(bars: int = 40) -> bytes:
    """A 4/4 song of ``bars`` bars (more than a bar request may cover), a quarter note on every beat."""
    notes = [(b * 4 * TPQ + k * TPQ, TPQ, 60 + k, 80) for b in range(bars) for k in range(4)]
    return make_score([(0, 4, 4)], [(0, False, notes)]).dumps_midi()


@pytest.mark.parametrize("method, path", [
    ("post", "/api/songs"), ("post", "/api/songs/{song}/generate"), ("post", "/api/songs/{song}/undo"),
    ("get", "/api/songs/{song}"),
], ids=["open", "generate", "undo", "view"])
def test_other_origins_are_refused_for_every_method(client, studio, method, path):
    song = open_song(client, studio).json()["id"]
    body = {"content": CHORALE} if path == "/api/songs" else {"json": {"track": 1, "bars": [2, 3], "n": 1}}
    evil = auth(studio, Origin="http://evil.example", **{"X-Song-Name": "bach.mid"})
    answer = getattr(client, method)(path.format(song=song), headers=evil, **(body if method == "post" else {}))
    assert answer.status_code == 403 and "other sites" in answer.json()["error"]
    assert list(studio.songs) == [song] and not studio.jobs.jobs  # nothing opened, nothing generated


def test_an_upload_is_capped_by_its_declared_size_and_by_what_arrives(client, studio):
    declared = client.post("/api/songs", content=CHORALE, headers=auth(studio, **{"Content-Length":
                                                                                  str(MAX_UPLOAD + 1)}))
    assert declared.status_code == 413  # refused before reading a byte: the size it declares is too big

    def chunks(total, size=2**20):  # no Content-Length: sent in chunks, so only counting what arrives can stop it
        while total > 0:
            yield b"\0" * min(size, total)
            total -= size

    streamed = client.post("/api/songs", content=chunks(MAX_UPLOAD + 1), headers=auth(studio))
    assert streamed.status_code == 413 and "larger than 8 MB" in streamed.json()["error"]
    assert not studio.songs


def _json_of_size(size: int, **fields) -> bytes:
    """A JSON object of exactly ``size`` bytes: ``fields`` and a padding string."""
    head = json.dumps(fields)[:-1] + ', "pad": "'
    body = (head + "x" * (size - len(head) - 2) + '"}').encode()
    assert len(body) == size
    return body


def test_a_json_body_is_capped_at_64_kb(client, studio):
    song = open_song(client, studio).json()["id"]
    url = f"/api/songs/{song}/generate"
    fields = {"track": 1, "bars": [2, 3], "n": 99}  # read in full, this request is refused for its n
    at_cap = client.post(url, content=_json_of_size(64 * 1024, **fields), headers=auth(studio))
    assert at_cap.status_code == 400 and "'n' must be" in at_cap.json()["error"]
    over = client.post(url, content=_json_of_size(64 * 1024 + 1, **fields), headers=auth(studio))
    assert over.status_code == 413 and "64 KB" in over.json()["error"]
    streamed = client.post(url, content=iter([_json_of_size(64 * 1024 + 1, **fields)]), headers=auth(studio))
    assert streamed.status_code == 413 and not studio.jobs.jobs


def test_a_bar_request_covers_at_most_32_bars(client, studio, tok):
    from midi_rwkv.studio.server import MAX_BARS, parse_generate
    from midi_rwkv.studio.session import Song, StudioError

    assert MAX_BARS == 32
    song = Song.open(long_song(40), "long.mid", tok)
    assert song.piece().num_bars == 40
    for bars in ([0, 32], [8, 40]):
        assert parse_generate({"track": 0, "bars": bars}, song, {})[1].bars == tuple(bars)
    for bars in ([0, 33], [7, 40], [0, 40]):
        with pytest.raises(StudioError, match="at most 32 bars"):
            parse_generate({"track": 0, "bars": bars}, song, {})
    opened = open_song(client, studio, long_song(40)).json()["id"]
    answer = client.post(f"/api/songs/{opened}/generate", json={"track": 0, "bars": [0, 33]}, headers=auth(studio))
    assert answer.status_code == 400 and "at most 32 bars" in answer.json()["error"] and not studio.jobs.jobs


@pytest.mark.parametrize("body, mode", [
    ({"track": 1, "bars": [2, 4]}, "bars"), ({"mode": "track", "track": 1}, "track"), ({"mode": "new"}, "new"),
], ids=["bars", "whole-track", "new-track"])
def test_each_kind_of_request_samples_with_its_own_defaults(tok, body, mode):
    from dataclasses import replace

    from midi_rwkv.inference.sampler import TRACK_SAMPLER, SamplerConfig
    from midi_rwkv.studio.server import parse_generate
    from midi_rwkv.studio.session import Song

    song = Song.open(CHORALE, "bach.mid", tok)
    expected = SamplerConfig() if mode == "bars" else TRACK_SAMPLER
    assert TRACK_SAMPLER != SamplerConfig() and TRACK_SAMPLER.repetition_penalty == 1.2
    assert parse_generate(body, song, {})[0].sampler == expected
    # the page's temperature changes the temperature alone: a whole track keeps the paper's repetition penalty
    assert parse_generate(body | {"temperature": 0.5}, song, {})[0].sampler == replace(expected, temperature=0.5)


def test_undo_at_the_first_version_is_refused_and_changes_nothing(client, studio):
    song = open_song(client, studio).json()
    answer = client.post(f"/api/songs/{song['id']}/undo", headers=auth(studio))
    assert answer.status_code == 409 and "nothing to undo" in answer.json()["error"]
    view = client.get(f"/api/songs/{song['id']}", headers=auth(studio)).json()
    assert view["version"] == 1 and not view["can_undo"] and view["tracks"] == song["tracks"]
