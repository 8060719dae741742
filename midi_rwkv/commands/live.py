"""``midi-rwkv live``: play along with the model, through an OSC endpoint on loopback and a MIDI port (docs/live.md)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from midi_rwkv.commands.options import add_settings, settings_from_args
from midi_rwkv.errors import EmptyScoreError, MidiRwkvError
from midi_rwkv.io import atomic_write, atomic_write_text
from midi_rwkv.model.checkpoint import DEFAULT_MODEL_NAME


def parse_metre(text: str) -> tuple[int, int]:
    """'6/8' -> (6, 8)."""
    try:
        num, den = (int(x) for x in text.split("/"))
    except ValueError:
        raise MidiRwkvError(f"--metre {text!r}: write it as NUMERATOR/DENOMINATOR, e.g. 4/4") from None
    return num, den


def parse_new(text: str):
    """'33' -> a new part with General MIDI program 33; 'drums' -> a new drum part."""
    from midi_rwkv.inference.requests import NewTrack

    if text == "drums":
        return NewTrack(is_drum=True)
    if not text.isdigit():
        raise MidiRwkvError(f"--new {text!r}: a General MIDI program (0-127) or 'drums'")
    return NewTrack(int(text))


def _parts(args) -> list:
    try:
        parts = [int(t) for t in (args.accompany or "").split(",") if t.strip()]
    except ValueError:
        raise MidiRwkvError(f"--accompany {args.accompany!r}: track numbers, e.g. 1,2") from None
    parts += [parse_new(text) for text in args.new or []]
    if not parts:
        raise MidiRwkvError("name the parts to accompany with: --accompany TRACKS and/or --new PROGRAM|drums")
    return parts


def _song(path: str | None):
    """The song so far: a MIDI file, one with only a metre and a tempo, or nothing."""
    from symusic import Score

    from midi_rwkv.tokenizer import load_score

    if path is None:
        return None
    try:
        return load_score(path)
    except EmptyScoreError:  # no notes: the take starts from its metre and tempo
        return Score(path)


def _midi_port(host, name: str | None | bool):
    """The MIDI front end on ``name`` (None: virtual ports), or None, having said why."""
    from midi_rwkv.live.midi_port import MidiFrontEnd, MidiUnavailable, open_ports

    if name is False:
        return None
    try:
        front = MidiFrontEnd(host, *open_ports(name or None))
    except MidiUnavailable as err:
        print(f"MIDI port: skipped ({err})", flush=True)
        return None
    print("MIDI port: open; the take starts now, on the server's clock", flush=True)
    return front


def run_live(args) -> int:
    from midi_rwkv.inference.infiller import Infiller
    from midi_rwkv.inference.options import InfillOptions
    from midi_rwkv.inference.requests import NewTrack
    from midi_rwkv.live import LiveControls, LiveEngine, LiveOptions
    from midi_rwkv.live.host import LiveHost

    try:
        from midi_rwkv.live.osc import OscEndpoint, loopback
    except ImportError as err:
        raise MidiRwkvError(f"midi-rwkv live needs python-osc: pip install python-osc ({err})") from None
    logging.basicConfig(level=logging.INFO, format="midi-rwkv live: %(message)s", stream=sys.stderr)
    loopback(args.host)  # refused before the model loads
    options, song, parts = settings_from_args(LiveOptions, args), _song(args.midi), _parts(args)
    player = args.player if args.player is not None else NewTrack(args.player_program, name="Player")
    infiller = Infiller.open(InfillOptions(engine=args.engine, threads=args.threads), args.model)

    def make_engine(controls: LiveControls | None) -> LiveEngine:
        return LiveEngine(infiller, song, parts, player, options, controls)

    first = make_engine(None)  # every part and metre checked before anything listens
    metre, qpm = first.take.metre_and_tempo()
    controls = LiveControls(qpm=args.tempo or qpm, metre=parse_metre(args.metre) if args.metre else metre,
                            structure=args.structure or LiveControls().structure)
    host = LiveHost(make_engine, controls)
    endpoint = OscEndpoint(host, args.host, args.port, args.transport)
    endpoint.serve_in_thread()
    print(f"engine: {infiller.generator.engine.name}; parts: "
          + ", ".join(f"track {p.track} {p.name}" for p in first.parts) + f"; player: track {first.player.track}")
    print(f"OSC: listening on {endpoint.address} (messages: docs/live.md)", flush=True)
    midi = _midi_port(host, args.midi_port)
    try:
        _serve(midi)
    finally:
        if midi is not None:
            midi.stop()
        endpoint.close()
        if args.out and host.last is not None:
            _save(host.last.engine, Path(args.out), args, options)
    return 0


def _serve(midi) -> None:
    """Play until Ctrl-C or SIGTERM (the MIDI port, if open, on its own thread)."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    if midi is not None:
        threading.Thread(target=midi.run, daemon=True).start()
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def _save(engine, out: Path, args, options) -> None:
    """The take as MIDI, and beside it the settings it was played with (its controls as they were at the end)."""
    controls = engine.controls
    atomic_write(out, lambda tmp: engine.take.score.dump_midi(tmp))
    parts = {str(track): asdict(c) for track, c in controls.parts.items()}
    settings = {"options": asdict(options), "controls": {"qpm": controls.qpm, "metre": list(controls.metre),
                                                         "structure": controls.structure, "parts": parts},
                "parts": [p.as_dict() for p in engine.parts], "player": engine.player.as_dict(),
                "song": args.midi, "model": args.model or DEFAULT_MODEL_NAME, "engine": args.engine}
    atomic_write_text(out.with_suffix(".json"), json.dumps(settings, indent=1) + "\n")
    played = engine.next_played - engine.take.song_bars
    print(f"take: {out} ({played} bar{'s' * (played != 1)} played)")


def register(sub) -> None:
    from midi_rwkv.live.options import LiveOptions

    p = sub.add_parser(
        "live",
        help="play along: the model accompanies you bar by bar (OSC on loopback, a MIDI port where there is one)",
        description="Start a live accompanist. You play one part (OSC messages from a DAW or Max/Pd, or a MIDI "
        "keyboard); when each bar you play ends, the model writes the bar after next of every accompanying part, so "
        "it is ready before it is due. Listens on this machine only. Messages and timing: docs/live.md.",
    )
    p.add_argument("midi", nargs="?", help="the song so far (a MIDI file); without it, the take starts empty")
    p.add_argument("--accompany", metavar="TRACKS", help="existing tracks that accompany you, e.g. 1,2 (from 0)")
    p.add_argument("--new", action="append", metavar="PROGRAM|drums",
                   help="a new accompanying part: a General MIDI program (0-127) or 'drums' (repeatable)")
    p.add_argument("--player", type=int, metavar="TRACK", help="the existing track you play (default: a new one)")
    p.add_argument("--player-program", type=int, default=0, metavar="PROGRAM",
                   help="the program of the new track you play (default: 0, piano)")
    p.add_argument("--tempo", type=float, help="quarter notes a minute (default: the song's, else 120)")
    p.add_argument("--metre", help="time signature, e.g. 3/4 (default: the song's, else 4/4)")
    p.add_argument("--structure", choices=("follow", "vary", "context", "off"),
                   help="follow the song's form: see docs/live.md (default: follow)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on: 127.0.0.1 or ::1 "
                   "(default: 127.0.0.1; other addresses are refused)")
    p.add_argument("--port", type=int, default=9000, help="OSC port (default: 9000)")
    p.add_argument("--transport", choices=("udp", "tcp"), default="udp",
                   help="OSC over UDP, or TCP with SLIP frames (OSC 1.1) (default: udp)")
    p.add_argument("--midi-port", nargs="?", const="", default=None, metavar="NAME",
                   help="the MIDI port to play through (default: virtual ports called midi-rwkv, where the system "
                   "has MIDI; skipped with a reason where it has none)")
    p.add_argument("--no-midi", dest="midi_port", action="store_const", const=False, help="no MIDI port")
    p.add_argument("--model", help=f"model .pth (default: {DEFAULT_MODEL_NAME}, the shipped model)")
    p.add_argument("--engine", default="auto", choices=("auto", "torch", "ggml", "ggml-f32"),
                   help="auto: GGML where llama-cpp-python is installed, else PyTorch (default: auto)")
    p.add_argument("--threads", type=int, help="threads (default: 1)")
    p.add_argument("--out", help="write the take here when you stop (MIDI, with its settings as JSON beside it)")
    add_settings(p, LiveOptions)
    p.set_defaults(run=run_live)
