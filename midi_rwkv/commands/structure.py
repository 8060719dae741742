"""``midi-rwkv structure``: a song's sections, and where else it plays what a span's other tracks play."""

from __future__ import annotations

from pathlib import Path

from midi_rwkv.commands.options import parse_spans
from midi_rwkv.errors import BarRangeError, MidiRwkvError, TrackIndexError
from midi_rwkv.structure.song import REPEAT_THRESHOLD, SongStructure, has_repeat, song_bars
from midi_rwkv.tokenizer.score import load_score


def _metre(bars) -> str:
    signatures = sorted({bar.time_signature for bar in bars}, key=lambda ts: -sum(b.time_signature == ts for b in bars))
    return ", ".join(signatures[:3]) + (", ..." if len(signatures) > 3 else "")


def _track_name(track, index: int) -> str:
    kind = "drums" if track.is_drum else f"program {track.program}"
    return f"{index}: {track.name.strip() or 'unnamed'} ({kind})"


def _print_sources(structure: SongStructure, track: int, span: tuple[int, int], k: int) -> list:
    start, end = span
    n = end - start
    head = f"track {track}, bars {start + 1}-{end}"
    sources = structure.sources(track, span, k)
    if not sources:
        if structure.num_tracks == 1:
            print(f"{head}: no source (no other track to match on)")
        else:
            print(f"{head}: no source (the song is too short to hold another {n} bar{'s' if n > 1 else ''} beside "
                  f"these)")
        return []
    print(f"{head}: sources, best first (match: the other tracks' chroma, drums' rhythm, 0-1)")
    print(f"  {'rank':>4}  {'bars':>9}  {'match':>5}  {f'track {track} there':>15}  {'distance':>8}")
    for rank, source in enumerate(sources, 1):
        notes = f"{source.target_notes} notes" if source.target_notes else "rests"
        bars = f"{source.start + 1}-{source.start + n}"
        print(f"  {rank:>4}  {bars:>9}  {source.match:5.3f}  {notes:>15}  {source.distance:>5} bars")
    verdict = "a repeat" if has_repeat(sources) else "no repeat"
    print(f"  {verdict}: the best match {sources[0].match:.3f} is {'at least' if has_repeat(sources) else 'below'} "
          f"{REPEAT_THRESHOLD}")
    return sources


def run_structure(args) -> int:
    if args.k < 1:
        raise MidiRwkvError("-k must be 1 or more")
    if args.bars and args.track is None:
        raise MidiRwkvError("--bars needs --track: the track whose bars are asked for")
    source = Path(args.midi)
    score = load_score(source)
    name = str(source)
    if args.track is not None and not 0 <= args.track < len(score.tracks):
        raise TrackIndexError(
            f"{name}: track {args.track} does not exist (the file has tracks 0-{len(score.tracks) - 1})"
        )
    spans = parse_spans(args.bars) if args.bars else []
    bars = song_bars(score)
    for start, end in spans:
        if end > len(bars):
            raise BarRangeError(f"{name}: bars {start + 1}-{end} (counted from 1) are outside the piece, which has "
                                f"{len(bars)} bars")
    structure = SongStructure.of(score, bars)
    print(f"{name}: {len(bars)} bars ({_metre(bars)}, from the file's time signatures), {len(score.tracks)} tracks")
    for index, track in enumerate(score.tracks):
        print(f"  {_track_name(track, index)}")
    print("sections (bars counted from 1; sections with one letter sound alike):")
    for section in structure.sections():
        length = section.end - section.start
        print(f"  {section.label:>3}  bars {section.start + 1}-{section.end} ({length} bar{'s' if length > 1 else ''})")
    found = [(span, _print_sources(structure, args.track, span, args.k)) for span in spans]
    if args.plot:
        from midi_rwkv.structure.plot import render  # matplotlib: only when asked for

        path = Path(args.plot) if args.plot is not True else Path(f"{source.stem}-structure.png")
        span, sources = found[0] if found else (None, [])
        title = f"{source.name}" + (f": track {args.track}, bars {span[0] + 1}-{span[1]}" if span else "")
        tracks = [args.track] if args.track is not None else []
        print(f"plot: {render(structure, path, tracks, title, span, sources)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "structure",
        help="print a song's sections and, for a span, where else the song plays what its other tracks play",
        description="Compare every two bars of every track (chroma and onset grid, as the metrics compute them) and "
        "print the song's sections (A B A C ...). With --track T --bars A:B, also rank the windows of the same length "
        "elsewhere in the song by how well the other tracks there match the span's other tracks: where the song "
        f"repeats those bars (a best match of at least {REPEAT_THRESHOLD}: 'a repeat'), and whether track T plays "
        "there. Bars are those of the file's own time signatures, as 'midi-rwkv infill' counts them.",
    )
    p.add_argument("midi", help="input MIDI file")
    p.add_argument("--track", type=int, help="track whose bars are asked for, counted from 0 as in the file (alone: "
                   "its own matrix is added to the plot)")
    p.add_argument("--bars", help="bars to find sources for, FIRST:LAST counted from 1, inclusive; several spans: "
                   "3:4,9:12 (the plot marks the first)")
    p.add_argument("-k", type=int, default=5, help="sources to print per span (default: 5)")
    p.add_argument("--plot", nargs="?", const=True, metavar="PNG",
                   help="draw the self-similarity matrix with the sections (and the span's sources) to PNG (default "
                   "when given alone: FILE_STEM-structure.png in the current folder)")
    p.set_defaults(run=run_structure)
