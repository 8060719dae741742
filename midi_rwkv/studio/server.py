"""The studio's server: the page, and the JSON API of docs/studio-api.md, with its safety rules.

Every request: the Host header must name this server (no DNS rebinding), and an Origin header, when sent,
must be this server (no other site's page may call the API). Every ``/api/`` request also carries the
per-launch token. No CORS header is ever sent, so browsers keep other origins out.
"""

from __future__ import annotations

import secrets
from urllib.parse import unquote
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.inference.options import InfillOptions
from midi_rwkv.inference.requests import ControlRequest, InfillRequest
from midi_rwkv.inference.sampler import default_sampler
from midi_rwkv.settings import settings_from_mapping
from midi_rwkv.studio.http import HEADERS
from midi_rwkv.studio.http import error as _error
from midi_rwkv.studio.http import ok as _ok
from midi_rwkv.studio.http import read_body as _body
from midi_rwkv.studio.http import read_json as _json
from midi_rwkv.studio.jam import jam_routes
from midi_rwkv.studio.jobs import Jobs, Target, random_seed
from midi_rwkv.studio.session import Song, StudioError
from midi_rwkv.tokenizer.controls import DENSITY_MAX, DURATIONS

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD = 8 * 2**20  # bytes
MAX_SONGS = 16
MAX_CANDIDATES = 8
MAX_BARS = 32  # per bar request (whole and new tracks cover the piece)
MODES = ("bars", "track", "new")
# The request's settings the page may send as JSON fields of the same names; the engine and its threads are the
# launch's, and candidates arrive one at a time, in the order they were sampled (no ranking).
LAUNCH_SETTINGS = ("engine", "threads", "rank")
@dataclass
class Studio:
    """What one launch serves: a model (and its styles), the open songs and the generation jobs."""

    model: str | None
    styles: dict[str, Path]
    state: str | None = None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    hosts: set[str] = field(default_factory=set)  # allowed Host header values (host:port)
    songs: OrderedDict[str, Song] = field(default_factory=OrderedDict)
    _infillers: dict[str | None, Infiller] = field(default_factory=dict)

    def __post_init__(self):
        self.jobs = Jobs(self.infiller)

    def infiller(self, style: str | None = None) -> Infiller:
        """The model with a style preset (None: the launch's --state, if any), loaded once."""
        if style not in self._infillers:
            state = self.styles[style] if style else self.state
            self._infillers[style] = Infiller.open(InfillOptions(), self.model, state=state)
        return self._infillers[style]

    def add_song(self, data: bytes, name: str) -> Song:
        song = Song.open(data, name, self.infiller().tokenizer)
        self.songs[song.id] = song
        while len(self.songs) > MAX_SONGS:
            self.songs.popitem(last=False)
        return song

    def song(self, song_id: str) -> Song:
        song = self.songs.get(song_id)
        if song is None:
            raise StudioError("no such song (it may have been closed; open the file again)", 404)
        return song


def _guard(studio: Studio, request: HttpRequest) -> JSONResponse | None:
    """The answer that refuses this request, or None when it may go on."""
    host = request.headers.get("host", "")
    if host not in studio.hosts:
        return _error("this studio only answers at its own address", 403)
    origin = request.headers.get("origin")
    if origin is not None and origin not in {f"http://{h}" for h in studio.hosts}:
        return _error("requests from other sites are refused", 403)
    if request.url.path.startswith("/api/"):
        given = request.headers.get("x-studio-token", "")
        if not secrets.compare_digest(given.encode(), studio.token.encode()):
            return _error("missing or wrong studio token: open the URL the studio printed", 401)
    return None


def _int(data: dict, key: str, low: int, high: int, default=None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StudioError(f"'{key}' must be a whole number from {low} to {high}")
    return value


def _target(data: dict, song: Song) -> Target:
    """What a Generate request writes: bars of a track, a whole track, or a new track."""
    piece = song.piece()
    mode = data.get("mode", "bars")
    if mode not in MODES:
        raise StudioError(f"'mode' must be one of {', '.join(MODES)}")
    if mode == "new":
        return Target(mode, len(song.score.tracks), (0, piece.num_bars), _int(data, "program", 0, 127, 0),
                      data.get("drums", False) is True)
    track = _int(data, "track", 0, len(song.score.tracks) - 1)
    if track not in piece.track_ids:
        raise StudioError(f"track {track} has no notes the model can read")
    original = song.score.tracks[track]
    if mode == "track":
        return Target(mode, track, (0, piece.num_bars), original.program, original.is_drum)
    bars = data.get("bars")
    if not (isinstance(bars, list) and len(bars) == 2 and all(isinstance(b, int) and not isinstance(b, bool)
                                                              for b in bars)):
        raise StudioError("'bars' must be [first, end), counted from 0")
    start, end = bars
    if not 0 <= start < end <= piece.num_bars:
        raise StudioError(f"bars {start + 1}-{end} are outside the piece, which has {piece.num_bars} bars")
    if end - start > MAX_BARS:
        raise StudioError(f"at most {MAX_BARS} bars at a time")
    return Target(mode, track, (start, end), original.program, original.is_drum)


def _controls(data: dict, target: Target) -> ControlRequest:
    """The page's controls: their JSON shapes here, their values checked by ControlRequest and the fill."""
    density, polyphony, durations = data.get("density"), data.get("polyphony"), data.get("durations")
    if density is not None:
        allowed = (1, target.bars[1] - target.bars[0]) if target.mode == "bars" else (1, 2)
        if not (isinstance(density, list) and len(density) in allowed
                and all(isinstance(d, int) and 0 <= d <= DENSITY_MAX for d in density)):
            what = "one value, or one per bar" if target.mode == "bars" else "one value, or [low, high] notes per bar"
            raise StudioError(f"'density' takes {what}, from 0 to {DENSITY_MAX}")
    if polyphony is not None:
        if not (isinstance(polyphony, list) and len(polyphony) == 2 and all(isinstance(p, int) for p in polyphony)):
            raise StudioError("'polyphony' must be [min, max]")
        polyphony = tuple(polyphony)
    if durations is not None:
        if not (isinstance(durations, list) and len(durations) == len(DURATIONS)
                and all(isinstance(f, bool) for f in durations)):
            raise StudioError(f"'durations' must be {len(DURATIONS)} true/false flags (whole ... sixteenth)")
        durations = tuple(durations)
    return ControlRequest(density, polyphony, durations)


def parse_generate(data: dict, song: Song, styles: dict[str, Path]) -> tuple[InfillRequest, Target, str | None]:
    """A Generate request from the page, checked against the song and the studio's limits: the infill request (its
    settings from the JSON fields of :class:`InfillOptions`' names), what it writes, and its style preset."""
    target = _target(data, song)
    style = data.get("style")
    if style is not None and style not in styles:
        raise StudioError(f"no style preset '{style}'")
    for name in LAUNCH_SETTINGS:
        if name in data:
            raise StudioError(f"'{name}' is not a setting of one request (the studio sets it for every request)")
    given = {name: data[name] for name in InfillOptions.__dataclass_fields__ if name in data}
    options = settings_from_mapping(InfillOptions, given, skip=LAUNCH_SETTINGS)
    if options.n > MAX_CANDIDATES:
        raise StudioError(f"'n' must be at most {MAX_CANDIDATES} candidates at a time")
    if options.seed is None:
        options = replace(options, seed=random_seed())
    base = default_sampler(target.mode)
    temperature = data.get("temperature", base.temperature)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise StudioError("'temperature' must be from 0 to 2")
    controls = _controls(data, target)
    if target.drums and (controls.polyphony or controls.durations):
        raise StudioError("a drum track takes note density only (no polyphony or durations)")
    return InfillRequest((target.fill(controls),), options, replace(base, temperature=temperature)), target, style


def build_app(studio: Studio) -> Starlette:
    """The ASGI app (``studio.hosts`` must list the addresses it answers at)."""

    async def index(request):
        return FileResponse(STATIC / "index.html", headers=HEADERS)

    async def open_song(request):
        name = Path(unquote(request.headers.get("x-song-name", "song.mid"))).name[:120] or "song.mid"
        data = await _body(request, MAX_UPLOAD)
        if not data:
            raise StudioError("the file is empty")
        return _ok(studio.add_song(data, name).view())

    async def get_song(request):
        song = studio.song(request.path_params["song"])
        with song.lock:
            return _ok(song.view())

    async def styles(request):
        return _ok({"styles": sorted(studio.styles)})

    async def defaults(request):  # the page starts its controls here, so the engine's defaults live in one place
        settings = {k: v for k, v in asdict(InfillOptions()).items() if k not in LAUNCH_SETTINGS}
        return _ok({"temperature": {mode: default_sampler(mode).temperature for mode in MODES}} | settings)

    async def generate(request):
        song = studio.song(request.path_params["song"])
        data = await _json(request)
        with song.lock:
            request, target, style = parse_generate(data, song, studio.styles)
        return _ok({"job": studio.jobs.start(song, request, target, style).id})

    def _job(request):
        job = studio.jobs.get(request.path_params["job"])
        if job is None:
            raise StudioError("no such job", 404)
        return job

    async def job(request):
        return _ok(_job(request).view())

    async def cancel(request):
        found = _job(request)
        found.cancelled.set()
        return _ok(found.view())

    def _change(action):
        async def endpoint(request):
            song = studio.song(request.path_params["song"])
            data = await _json(request) if action == "accept" else {}
            with song.lock:
                if action == "accept":
                    song.accept(str(data.get("candidate", "")))
                else:
                    getattr(song, action)()
                return _ok(song.view())

        return endpoint

    async def export(request):
        song = studio.song(request.path_params["song"])
        with song.lock:
            data = song.export()
        disposition = f'attachment; filename="{song.name}-studio.mid"'
        return Response(data, media_type="audio/midi", headers=HEADERS | {"Content-Disposition": disposition})

    routes = [
        Route("/", index),
        Route("/api/songs", open_song, methods=["POST"]),
        Route("/api/styles", styles),
        Route("/api/defaults", defaults),
        Route("/api/songs/{song}", get_song),
        Route("/api/songs/{song}/generate", generate, methods=["POST"]),
        Route("/api/songs/{song}/accept", _change("accept"), methods=["POST"]),
        Route("/api/songs/{song}/undo", _change("undo"), methods=["POST"]),
        Route("/api/songs/{song}/redo", _change("redo"), methods=["POST"]),
        Route("/api/songs/{song}/export", export),
        Route("/api/jobs/{job}", job),
        Route("/api/jobs/{job}/cancel", cancel, methods=["POST"]),
        *jam_routes(studio),  # /api/songs/{song}/jam/...: the Jam view (midi_rwkv/studio/jam.py)
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={
        StudioError: lambda request, err: _error(str(err), err.status),
        MidiRwkvError: lambda request, err: _error(str(err), 400),
        404: lambda request, err: _error("not found", 404),
        405: lambda request, err: _error("method not allowed", 405),
    })

    extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]

    async def guarded(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def with_headers(message):  # static files get the same policy as everything else
            if message["type"] == "http.response.start":
                present = {k for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in extra if h[0] not in present]
            await send(message)

        refused = _guard(studio, HttpRequest(scope))
        if refused is not None:
            await refused(scope, receive, with_headers)
            return
        await app(scope, receive, with_headers)

    return guarded
