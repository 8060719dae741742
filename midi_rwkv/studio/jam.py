"""The server side of the studio's Jam view: one live take per song, driven by the page over JSON (docs/studio-api.md).

The page is a front end of :class:`~midi_rwkv.live.host.LiveHost` on the player's clock (``host``): it counts the
bars itself and sends each one whole when it ends (``/jam/bar``). The engine reads it on its own thread and writes
the bar after next of every part; the host's events (``ready``, ``grid``, ``notes``, ``timing``, ``stopped``) are
numbered and kept here, and the page polls them (``/jam/events?after=N``) to schedule each part's bar before it
starts. ``/jam/keep`` adds the take, through the last bar played, to the song as a new version (undo goes back).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route
from symusic import Score

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.form import STRUCTURE_SETTINGS
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.inference.requests import NewTrack
from midi_rwkv.live import LiveControls, LiveEngine, LiveNote, LiveOptions
from midi_rwkv.live.host import LiveHost
from midi_rwkv.live.options import MAX_QPM, MIN_QPM
from midi_rwkv.studio.http import ok as _ok
from midi_rwkv.studio.http import read_json as _json
from midi_rwkv.studio.session import Song, StudioError, Version

MAX_PARTS = 4  # accompanying parts of one take (bench/live.py measures 1, 2 and 4)
MAX_NOTES = 256  # notes in one played bar
MAX_EVENTS = 2048  # events kept per take for the page to poll (the oldest are dropped)


class LockedEngine(LiveEngine):
    """A live engine that takes the studio's generation lock while it writes: the model is shared with the
    Generate jobs, and an engine (GGML's above all) must not run two calls at once."""

    def __init__(self, lock: threading.Lock, *args, **kwargs):
        self.model_lock = lock
        super().__init__(*args, **kwargs)

    def start(self):
        with self.model_lock:
            return super().start()

    def play_bar(self, notes):
        with self.model_lock:
            return super().play_bar(notes)


def _number(value, key: str, low: float, high: float, whole: bool = True):
    """``value`` if it is a number from ``low`` to ``high`` (a whole one with ``whole``); else one line saying so."""
    kinds = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise StudioError(f"'{key}' must be a {'whole ' if whole else ''}number from {low:g} to {high:g}")
    return value


def _pair(value, key: str, low: int, high: int) -> tuple[int, int] | None:
    """[low, high] (or null: back to the default)."""
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value)
            and value[0] <= value[1]):
        raise StudioError(f"'{key}' must be [low, high] from {low} to {high}, or null")
    return value[0], value[1]


def _structure(value) -> str:
    if value not in STRUCTURE_SETTINGS:
        raise StudioError(f"'structure' must be one of {', '.join(STRUCTURE_SETTINGS)}")
    return value


def _tempo(value) -> float:
    return float(_number(value, "tempo", MIN_QPM, MAX_QPM, whole=False))


def _metre(value) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise StudioError("'metre' must be [numerator, denominator], e.g. [3, 4]")
    return value[0], value[1]


def parse_notes(value) -> list[LiveNote]:
    """A played bar's notes, ``[[start, duration, pitch, velocity], ...]`` from the bar's start."""
    if not isinstance(value, list):
        raise StudioError("'notes' must be a list of [start, duration, pitch, velocity]")
    if len(value) > MAX_NOTES:
        raise StudioError(f"at most {MAX_NOTES} notes in one bar")
    notes = []
    for note in value:
        if not (isinstance(note, list) and len(note) == 4 and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in note)):
            raise StudioError("a note is [start, duration, pitch, velocity] (numbers)")
        start, duration, pitch, velocity = note
        if pitch != int(pitch) or velocity != int(velocity):
            raise StudioError("a note's pitch and velocity are whole numbers")
        notes.append(LiveNote(int(pitch), float(start), float(duration), int(velocity)))
    return notes


def _parts(data: dict, song: Song) -> tuple[list, int | NewTrack]:
    """The parts to accompany with (song tracks, then new ones) and the player (a song track or a new one)."""
    count = len(song.score.tracks)
    accompany, new = data.get("accompany", []), data.get("new", [])
    if not (isinstance(accompany, list) and all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < count
                                                for t in accompany)):
        raise StudioError(f"'accompany' must be a list of the song's track numbers (0 to {count - 1})")
    if not (isinstance(new, list) and all(isinstance(p, dict) for p in new)):
        raise StudioError("'new' must be a list of {\"program\": 0-127, \"drums\": false}")
    parts: list = list(accompany)
    for spec in new:
        drums = spec.get("drums", False)
        if not isinstance(drums, bool):
            raise StudioError("'drums' must be true or false")
        parts.append(NewTrack(_number(spec.get("program", 0), "program", 0, 127), drums))
    if not parts or len(parts) > MAX_PARTS:
        raise StudioError(f"name 1 to {MAX_PARTS} parts to accompany with ('accompany' and 'new')")
    player = data.get("player")
    if player is None:
        program = _number(data.get("player_program", 0), "player_program", 0, 127)
        return parts, NewTrack(program, name="Player")
    player = _number(player, "player", 0, count - 1)
    if player in accompany:
        raise StudioError("the player's track cannot also accompany")
    return parts, player


def song_so_far(song: Song, first: int) -> Score:
    """The song's current version before bar ``first`` (its notes, tempi and metres)."""
    piece, score = song.piece(), song.score.copy()
    if first >= piece.num_bars:
        return score
    cut = piece.bars[first].start
    for track in score.tracks:
        track.notes.filter(lambda n: n.time < cut, inplace=True)
    score.tempos.filter(lambda t: t.time < cut, inplace=True)
    score.time_signatures.filter(lambda t: t.time < cut, inplace=True)
    return score


class Jam:
    """One song's live session: its host, the settings of the take and the events for the page to poll."""

    def __init__(self, song: Song, host: LiveHost, tracks_before: int, label: str):
        self.song, self.host, self.tracks_before, self.label = song, host, tracks_before, label
        self.events: deque[dict] = deque(maxlen=MAX_EVENTS)
        self.seq = 0
        self.lock = threading.Lock()
        host.listen(self._event)

    def _event(self, name: str, data: dict) -> None:
        with self.lock:
            self.seq += 1
            self.events.append({"seq": self.seq, "name": name, "data": data})

    def since(self, after: int) -> list[dict]:
        with self.lock:
            return [e for e in self.events if e["seq"] > after]

    @property
    def playing(self) -> bool:
        return self.host.session is not None

    def controls(self) -> dict:
        c = self.host.controls
        return {"tempo": c.qpm, "metre": list(c.metre), "structure": c.structure,
                "parts": {str(t): asdict(p) for t, p in c.parts.items()}}

    def stop(self) -> None:
        """Stop once the bars already sent are read (so the take holds every bar the page sent)."""
        session = self.host.session
        if session is not None:
            session.finish()
        self.host.stop()

    def keep(self) -> None:
        """The take through the last bar played becomes the song's next version (what was undone is gone)."""
        self.stop()
        last = self.host.last
        if last is None:
            raise StudioError("nothing to keep: start a jam first", 409)
        engine = last.engine
        if engine.next_played <= last.first:
            raise StudioError("nothing to keep: play at least one bar", 409)
        take, end = engine.take, engine.next_played
        cut = take.grid[end].start if end < len(take.grid) else take.grid[-1].end
        score = take.score.copy()
        for track in score.tracks:
            track.notes.filter(lambda n: n.time < cut, inplace=True)
        score.tempos.filter(lambda t: t.time < cut, inplace=True)
        score.time_signatures.filter(lambda t: t.time < cut, inplace=True)
        empty = [i for i in range(self.tracks_before, len(score.tracks)) if not score.tracks[i].notes]
        for i in reversed(empty):  # a new part (or the player) that never played adds no track
            del score.tracks[i]
        label = f"jam: {self.label}, bars {last.first + 1}-{end} ({end - last.first} played)"
        song = self.song
        with song.lock:
            try:
                song.tokenizer.prepare(score, song.name)
            except MidiRwkvError as err:
                raise StudioError(f"the take cannot be kept: {err}", 409) from None
            del song.versions[song.position + 1:]
            song.versions.append(Version(score, label))
            song.position += 1


class Jams:
    """The studio's jams, one per song; a take starting stops any other song's (the model is shared)."""

    def __init__(self, infiller: Callable[[], Infiller], lock: threading.Lock,
                 options: LiveOptions = LiveOptions()):
        self.infiller, self.model_lock, self.options = infiller, lock, options  # the model loads at the first start
        self.jams: dict[str, Jam] = {}

    def get(self, song_id: str) -> Jam:
        jam = self.jams.get(song_id)
        if jam is None:
            raise StudioError("no jam for this song: start one first", 404)
        return jam

    def start(self, song: Song, data: dict) -> tuple[Jam, int, dict]:
        """A new take for ``song`` from the page's settings (each jam starts a new event count): the jam, the event
        number its take starts after, and its parts and player as :meth:`LivePart.as_dict` gives them."""
        parts, player = _parts(data, song)
        with song.lock:
            bars = song.piece().num_bars
            first = _number(data.get("from", bars), "from", 0, bars)
            score = song_so_far(song, first)
            view = song.view()
        tracks = len(score.tracks)
        seed = data.get("seed")
        if seed is not None:
            _number(seed, "seed", 0, 2**31)
        options = LiveOptions(seed=seed) if seed is not None else self.options

        def make_engine(controls: LiveControls) -> LiveEngine:
            return LockedEngine(self.model_lock, self.infiller(), score, parts, player, options, controls)

        probe = make_engine(None)  # every part, the player and the song's metre checked before anything plays
        metre, qpm = probe.take.metre_and_tempo()
        if view["bars"] and first > 0:
            bar = view["bars"][first - 1]
            metre = (bar["numerator"], bar["denominator"])
        tempo = _tempo(data.get("tempo", qpm))
        metre = _metre(data["metre"]) if "metre" in data else metre
        structure = _structure(data.get("structure", LiveControls().structure))
        controls = LiveControls(qpm=tempo, metre=metre, structure=structure)
        make_engine(controls)  # a metre the tokenizer cannot write is refused here, before anything stops
        for other in list(self.jams.values()):
            other.host.stop()
        names = [p.name for p in probe.parts]
        label = f"{probe.player.name} with {', '.join(names)}"
        jam = Jam(song, LiveHost(make_engine, controls), tracks, label)
        self.jams[song.id] = jam
        after = jam.seq
        jam.host.start("host")
        described = {"parts": [p.as_dict() for p in probe.parts], "player": probe.player.as_dict()}
        return jam, after, described


def jam_routes(studio) -> list[Route]:
    """The ``/api/songs/{song}/jam/...`` routes (the server's guard covers them as every ``/api/`` path)."""
    every = Jams(studio.infiller, studio.jobs.lock)

    def jams() -> Jams:
        for gone in [i for i in every.jams if i not in studio.songs]:  # a closed song's jam goes with it
            every.jams.pop(gone).host.stop()
        return every

    def status(jam: Jam, after: int | None = None) -> dict:
        running = jam.host.session
        out = {"playing": running is not None, "next": jam.seq, "controls": jam.controls(),
               "next_bar": running.engine.next_played if running else None}
        if after is not None:
            out["events"] = jam.since(after)
        return out

    async def start(request: Request):
        song = studio.song(request.path_params["song"])
        data = await _json(request)
        jam, after, described = await run_in_threadpool(jams().start, song, data)
        return _ok(status(jam, after) | described | {"after": after})

    async def bar(request: Request):
        jam = jams().get(request.path_params["song"])
        data = await _json(request)
        if "index" not in data:
            raise StudioError("'index' is missing: the bar's number (the take's, as the events name it)")
        index = _number(data["index"], "index", 0, 1 << 20)
        notes = parse_notes(data.get("notes", []))
        jam.host.bar(index, notes)
        return _ok(status(jam))

    async def events(request: Request):
        jam = jams().get(request.path_params["song"])
        after = request.query_params.get("after", "0")
        if not after.isdigit() or len(after) > 12:
            raise StudioError("'after' must be an event number (0 or more)")
        return _ok(status(jam, int(after)))

    async def controls(request: Request):
        jam = jams().get(request.path_params["song"])
        data = await _json(request)
        changes = {}
        if "tempo" in data:
            changes["qpm"] = _tempo(data["tempo"])
        if "metre" in data:
            changes["metre"] = _metre(data["metre"])
        if "structure" in data:
            changes["structure"] = _structure(data["structure"])
        parts = data.get("parts", [])
        if not isinstance(parts, list) or len(parts) > 16 or not all(isinstance(p, dict) for p in parts):
            raise StudioError("'parts' must be a list of {\"track\": N, \"density\": ..., \"register\": ...}")
        edits = []
        for part in parts:
            if "track" not in part:
                raise StudioError("each of 'parts' names its 'track'")
            change = {"track": _number(part["track"], "track", 0, 255)}
            if "density" in part:
                change["density"] = None if part["density"] is None else _number(part["density"], "density", 0, 64)
            if "register" in part:
                change["register"] = _pair(part["register"], "register", 0, 127)
            if "polyphony" in part:
                change["polyphony"] = _pair(part["polyphony"], "polyphony", 1, 6)
            if "mute" in part:
                if not isinstance(part["mute"], bool):
                    raise StudioError("'mute' must be true or false")
                change["mute"] = part["mute"]
            edits.append(change)
        if changes:
            running = jam.host.session
            if running is not None and "metre" in changes:  # one the tokenizer cannot write: refused, nothing changes
                running.engine.take.encoder.metres(*changes["metre"])
            jam.host.set(**changes)
        for change in edits:
            jam.host.part(change.pop("track"), **change)
        return _ok(status(jam))

    async def stop(request: Request):
        jam = jams().get(request.path_params["song"])
        await run_in_threadpool(jam.stop)
        return _ok(status(jam))

    async def keep(request: Request):
        jam = jams().get(request.path_params["song"])
        await run_in_threadpool(jam.keep)
        with jam.song.lock:
            return _ok(jam.song.view())

    base = "/api/songs/{song}/jam"
    return [
        Route(f"{base}/start", start, methods=["POST"]),
        Route(f"{base}/bar", bar, methods=["POST"]),
        Route(f"{base}/events", events),
        Route(f"{base}/controls", controls, methods=["POST"]),
        Route(f"{base}/stop", stop, methods=["POST"]),
        Route(f"{base}/keep", keep, methods=["POST"]),
    ]
