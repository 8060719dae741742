"""The studio's server: the page, and the JSON API of docs/studio-api.md, with its safety rules.

Every request: the Host header must name this server (no DNS rebinding), and an Origin header, when sent,
must be this server (no other site's page may call the API). Every ``/api/`` request also carries the
per-launch token. No CORS header is ever sent, so browsers keep other origins out.
"""

from __future__ import annotations

import json
import secrets
from urllib.parse import unquote
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.form import DEFAULT_STRUCTURE, STRUCTURE_SETTINGS
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.inference.requests import ControlRequest
from midi_rwkv.inference.sampler import default_sampler
from midi_rwkv.studio.jobs import Jobs, Request, random_seed
from midi_rwkv.studio.session import Song, StudioError
from midi_rwkv.tokenizer.controls import DENSITY_MAX, DURATIONS, POLYPHONY_MAX, POLYPHONY_MIN

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD = 8 * 2**20  # bytes
MAX_SONGS = 16
MAX_CANDIDATES = 8
MAX_BARS = 32  # per bar request (whole and new tracks cover the piece)
MODES = ("bars", "track", "new")
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


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
            self._infillers[style] = Infiller.load(self.model, state=state, engine="auto")
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


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=HEADERS)


def _ok(data) -> JSONResponse:
    return JSONResponse(data, headers=HEADERS)


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


async def _body(request: HttpRequest, limit: int, what: str = "the file") -> bytes:
    size = f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit // 2**10} KB"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise StudioError(f"{what} is larger than {size}", 413)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise StudioError(f"{what} is larger than {size}", 413)
    return bytes(data)


async def _json(request: HttpRequest) -> dict:
    try:
        data = json.loads(await _body(request, 64 * 1024, "the request") or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise StudioError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise StudioError("the request body must be a JSON object")
    return data


def _int(data: dict, key: str, low: int, high: int, default=None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StudioError(f"'{key}' must be a whole number from {low} to {high}")
    return value


def _target(data: dict, song: Song) -> tuple[str, int, tuple[int, int], int, bool]:
    """(mode, track, bars, program, drums) of a Generate request: bars of a track, a whole track, or a new track."""
    piece = song.piece()
    mode = data.get("mode", "bars")
    if mode not in MODES:
        raise StudioError(f"'mode' must be one of {', '.join(MODES)}")
    if mode == "new":
        program = _int(data, "program", 0, 127, 0)
        return mode, len(song.score.tracks), (0, piece.num_bars), program, data.get("drums", False) is True
    track = _int(data, "track", 0, len(song.score.tracks) - 1)
    if track not in piece.track_ids:
        raise StudioError(f"track {track} has no notes the model can read")
    original = song.score.tracks[track]
    if mode == "track":
        return mode, track, (0, piece.num_bars), original.program, original.is_drum
    bars = data.get("bars")
    if not (isinstance(bars, list) and len(bars) == 2 and all(isinstance(b, int) and not isinstance(b, bool)
                                                              for b in bars)):
        raise StudioError("'bars' must be [first, end), counted from 0")
    start, end = bars
    if not 0 <= start < end <= piece.num_bars:
        raise StudioError(f"bars {start + 1}-{end} are outside the piece, which has {piece.num_bars} bars")
    if end - start > MAX_BARS:
        raise StudioError(f"at most {MAX_BARS} bars at a time")
    return mode, track, (start, end), original.program, original.is_drum


def parse_generate(data: dict, song: Song, styles: dict[str, Path]) -> Request:
    """A Generate request from the page, checked against the song and the studio's limits."""
    mode, track, (start, end), program, drums = _target(data, song)
    base = default_sampler(mode)
    temperature = data.get("temperature", base.temperature)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise StudioError("'temperature' must be from 0 to 2")
    controls = ControlRequest()
    if data.get("density") is not None:
        density = data["density"]
        allowed = (1, end - start) if mode == "bars" else (1, 2)
        if not (isinstance(density, list) and len(density) in allowed
                and all(isinstance(d, int) and 0 <= d <= DENSITY_MAX for d in density)):
            what = "one value, or one per bar" if mode == "bars" else "one value, or [low, high] notes per bar"
            raise StudioError(f"'density' takes {what}, from 0 to {DENSITY_MAX}")
        controls.density = density
    if data.get("polyphony") is not None:
        poly = data["polyphony"]
        if not (isinstance(poly, list) and len(poly) == 2 and all(isinstance(p, int) for p in poly)
                and POLYPHONY_MIN <= poly[0] <= poly[1] <= POLYPHONY_MAX):
            raise StudioError(f"'polyphony' must be [min, max] with {POLYPHONY_MIN} <= min <= max <= {POLYPHONY_MAX}")
        controls.polyphony = tuple(poly)
    if data.get("durations") is not None:
        flags = data["durations"]
        if not (isinstance(flags, list) and len(flags) == len(DURATIONS) and all(isinstance(f, bool) for f in flags)):
            raise StudioError(f"'durations' must be {len(DURATIONS)} true/false flags (whole ... sixteenth)")
        controls.durations = tuple(flags)
    style = data.get("style")
    if style is not None and style not in styles:
        raise StudioError(f"no style preset '{style}'")
    seed = data.get("seed")
    seed = random_seed() if seed is None else _int(data, "seed", 0, 2**31 - 1)
    free = data.get("free", False) is True
    register = data.get("register", "keep")
    if register not in ("keep", "free"):
        raise StudioError("'register' must be keep or free")
    structure = data.get("structure", DEFAULT_STRUCTURE)
    if structure not in STRUCTURE_SETTINGS:
        raise StudioError(f"'structure' must be one of {', '.join(STRUCTURE_SETTINGS)}")
    if free and (controls != ControlRequest() or mode != "bars"):
        raise StudioError("free generation takes no controls, and is for bars of a track")
    if drums and (controls.polyphony or controls.durations):
        raise StudioError("a drum track takes note density only (no polyphony or durations)")
    return Request(track, (start, end), _int(data, "n", 1, MAX_CANDIDATES, 4), replace(base, temperature=temperature),
                   controls, free, style, seed, mode, program, drums, register == "keep", structure)


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
        return _ok({"temperature": {mode: default_sampler(mode).temperature for mode in MODES},
                    "structure": DEFAULT_STRUCTURE})

    async def generate(request):
        song = studio.song(request.path_params["song"])
        data = await _json(request)
        with song.lock:
            parsed = parse_generate(data, song, studio.styles)
        return _ok({"job": studio.jobs.start(song, parsed).id})

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
