"""What ``midi-rwkv infill`` is asked to write, from its options: a list of fills and the controls they take."""

from __future__ import annotations

from midi_rwkv.commands.options import parse_bars, parse_spans
from midi_rwkv.errors import BarRangeError, ControlError, MidiRwkvError
from midi_rwkv.inference.requests import BarFill, ControlRequest, Fill, NewTrack, TrackFill
from midi_rwkv.tokenizer.controls import DURATION_NAMES

FILL_HELP = (
    "TRACK:SPANS fills bars of a track (e.g. 0:5-8 or 2:5-8,13-16, bars counted from 1); TRACK alone rewrites the "
    "whole track; new:PROGRAM or new:drums adds a track. Repeatable: the fills run in order, each on the result "
    "of the ones before"
)


def parse_request(args) -> ControlRequest:
    """The control options as written on the command line (ControlRequest checks their values)."""
    density = polyphony = durations = None
    if args.density:
        try:
            density = [int(v) for v in args.density.split(",")]
        except ValueError:
            raise ControlError(f"--density '{args.density}': expected numbers like 6,8,8,4") from None
    if args.polyphony:
        low, _, high = args.polyphony.partition("-")
        try:
            polyphony = (int(low), int(high or low))
        except ValueError:
            raise ControlError(f"--polyphony '{args.polyphony}': expected MIN-MAX like 1-3") from None
    if args.duration:
        names = [n.strip().lower() for n in args.duration.split(",")]
        unknown = [n for n in names if n not in DURATION_NAMES]
        if unknown:
            raise ControlError(f"--duration: unknown value(s) {unknown}; use {', '.join(DURATION_NAMES)}")
        durations = tuple(name in names for name in DURATION_NAMES)
    return ControlRequest(density, polyphony, durations)


def _fill_spans(text: str) -> list[tuple[int, int]]:
    """'5-8,13-16' -> [(4, 8), (12, 16)] (the --fill spelling of --bars' '5:8,13:16')."""
    return [parse_bars(part.replace("-", ":")) for part in text.split(",") if part]


def parse_fill(text: str, request: ControlRequest) -> list[Fill]:
    """One --fill value as fills (a track with several spans gives one fill per span)."""
    head, _, rest = text.partition(":")
    if head == "new":
        if rest == "drums":
            return [NewTrack(is_drum=True, controls=request)]
        try:
            return [NewTrack(program=int(rest), controls=request)]
        except ValueError:
            raise MidiRwkvError(f"--fill '{text}': expected new:PROGRAM (0-127) or new:drums") from None
    try:
        track = int(head)
    except ValueError:
        raise MidiRwkvError(f"--fill '{text}': expected TRACK:SPANS, TRACK, new:PROGRAM or new:drums") from None
    if not rest:
        return [TrackFill(track, request)]
    try:
        return [BarFill(track, span, request) for span in _fill_spans(rest)]
    except BarRangeError as err:
        raise BarRangeError(f"--fill '{text}': {err}") from None


def fills_from_args(args) -> list[Fill]:
    """--fill, or --track with --bars (bar fills) or without (the whole track), or --new-track."""
    request = parse_request(args)
    if args.drums and args.new_track is None:
        raise MidiRwkvError("--drums goes with --new-track")
    if args.fill:
        if args.track is not None or args.bars or args.new_track is not None:
            raise MidiRwkvError("--fill replaces --track, --bars and --new-track: use one or the other")
        fills = [f for text in args.fill for f in parse_fill(text, request)]
    elif args.new_track is not None:
        if args.track is not None or args.bars:
            raise MidiRwkvError("--new-track adds a track: it takes no --track or --bars")
        fills = [NewTrack(args.new_track, args.drums, request)]
    elif args.track is None:
        raise MidiRwkvError("say what to write: --track T [--bars A:B], --new-track PROGRAM, or --fill")
    elif args.bars:
        fills = [BarFill(args.track, span, request) for span in parse_spans(args.bars)]
    else:
        fills = [TrackFill(args.track, request)]
    return fills


def fills_label(fills: list[Fill]) -> str:
    """A file-name part for the request: track1_bars3-4,9-12 / track2_whole / new33 / newdrums, joined with +."""
    parts: list[str] = []
    for f in fills:
        if isinstance(f, BarFill):
            span = f"{f.bars[0] + 1}-{f.bars[1]}"
            if parts and parts[-1].startswith(f"track{f.track}_bars"):
                parts[-1] += f",{span}"
            else:
                parts.append(f"track{f.track}_bars{span}")
        elif isinstance(f, TrackFill):
            parts.append(f"track{f.track}_whole")
        else:
            parts.append("newdrums" if f.is_drum else f"new{f.program}")
    return "+".join(parts)
