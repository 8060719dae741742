"""The live accompanist: the player finishes a bar, the engine writes the bar after next of every part.

Bar-ahead scheduling. When the player's bar ``n`` ends, bar ``n + 1`` is already playing (written when bar ``n - 1``
ended), so the engine reads bar ``n`` and writes bar ``n + 2`` of each part: it is due when bar ``n + 1`` ends, one
bar's time later (:attr:`BarStep.due`). Before the first played bar, :meth:`LiveEngine.start` writes the first two
(a count-in). Parts are written one after another, each seeing the bars just written by those before it.

Each part's bar is a one-bar infill in the model's own prompt layout, built from a window of recent bars
(:mod:`midi_rwkv.live.window`); the shared starts of consecutive prompts are read once (:mod:`midi_rwkv.live.prompts`).
Its candidates (``LiveOptions.candidates``) are forked from one state. Controls (:class:`LiveControls`) may change at
any time; a change applies from the next bar written.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from symusic import Score

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.constraints import BarInfillConstraint
from midi_rwkv.inference.form import candidate_weights
from midi_rwkv.inference.generator import Generator
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.inference.requests import NewTrack
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.live.bars import GridBar, LiveNote, from_ticks
from midi_rwkv.live.constraints import LiveBar, LiveFollow
from midi_rwkv.live.form import LiveForm, LiveSource, plan
from midi_rwkv.live.options import LiveControls, LiveOptions
from midi_rwkv.live.parts import LOOK_BACK, LivePart, note_limits, part_register, requested_controls, resolve_part
from midi_rwkv.live.prompts import CountingEngine, common_start, shared_prefixes
from midi_rwkv.live.take import Take
from midi_rwkv.live.window import window_start
from midi_rwkv.tokenizer.sequences import build_bar_infill

CONTEXT_REACH = 32  # the 'context' structure setting widens a window at most this many bars back
CACHE_PER_PART = 12  # prompt states kept per part (its prompt and the prefixes worth keeping)


@dataclass
class PartBar:
    """One bar a part will play: quarter notes from the bar's start."""

    track: int
    bar: int
    notes: list[LiveNote]
    form: str | None = None

    def as_dict(self) -> dict:
        return {"track": self.track, "bar": self.bar, "notes": [n.as_list() for n in self.notes], "form": self.form}


@dataclass
class BarStep:
    """What one played bar (or the count-in) produced, and what it cost."""

    played: int | None  # the bar the player finished; None for the count-in
    written: list[GridBar]
    parts: list[PartBar] = field(default_factory=list)
    seconds: float = 0.0  # from the played bar's end until every written bar was ready (compute time)
    due: float | None = None  # seconds from the played bar's end until the written bar starts
    prompt_tokens: int = 0  # of every prompt this step built
    tokens_read: int = 0  # of those, read by the model (the rest continued from cached states)
    generated: int = 0  # tokens fed while writing (sampled and injected)

    @property
    def margin(self) -> float | None:
        """Seconds to spare before the written bar is due (negative: late)."""
        return None if self.due is None else self.due - self.seconds


class LiveEngine:
    """Running state of one live take; see the module docstring. Not thread-safe except :meth:`set_controls`."""

    def __init__(self, infiller: Infiller, song: Score | None, parts: list[int | NewTrack],
                 player: int | NewTrack | None = None, options: LiveOptions = LiveOptions(),
                 controls: LiveControls | None = None):
        if not parts:
            raise MidiRwkvError("name at least one part to accompany with")
        self.options, self.layout, self.tables = options, infiller.layout, infiller.tables
        self.tokenizer = infiller.tokenizer
        self.take = Take(song, self.tokenizer)
        metre, qpm = self.take.metre_and_tempo()
        self._controls = self._checked(controls or LiveControls(qpm=qpm, metre=metre))
        self._lock = threading.Lock()
        programs = set(self.tokenizer.miditok.config.programs)
        start = self.take.song_bars

        def history(track: int):
            return self.take.history(track, start, LOOK_BACK)

        default = NewTrack(0, name="Player")
        self.player = resolve_part(self.take.score, default if player is None else player, start, programs, "player")
        self.parts = [resolve_part(self.take.score, p, start, programs, "part", history) for p in parts]
        numbers = [self.player.track] + [p.track for p in self.parts]
        if len(set(numbers)) != len(numbers):
            raise MidiRwkvError("the player's track and the parts must all be different tracks")
        for part in [self.player, *self.parts]:
            self.take.final[part.track] = start
        self.others = [t for t in range(len(self.take.score.tracks)) if t not in numbers]
        self.next_played = self.next_written = start
        self.anchor: int | None = None
        engine = CountingEngine(infiller.generator.engine)
        self.generator = Generator(engine, cache_size=8 + CACHE_PER_PART * len(self.parts))
        self.reads = engine.count

    @property
    def controls(self) -> LiveControls:
        return self._controls

    def set_controls(self, controls: LiveControls) -> None:
        """New controls, for every bar written from now on (safe to call from any thread)."""
        self._checked(controls)
        with self._lock:
            self._controls = controls

    def update(self, **changes) -> LiveControls:
        """Change some controls (``qpm``, ``metre``, ``structure``), keeping the rest; returns the new ones."""
        with self._lock:
            self._controls = self._checked(replace(self._controls, **changes))
            return self._controls

    def _checked(self, controls: LiveControls) -> LiveControls:
        """``controls``, once its metre is known to be one the tokenizer can write (UnsupportedMetreError if not)."""
        self.take.encoder.metres(*controls.metre)
        return controls

    def bar(self, index: int) -> GridBar:
        return self.take.grid[index]

    @property
    def tpq(self) -> int:
        return self.take.tpq

    def start(self) -> BarStep:
        """The count-in: the first two live bars of every part, before the player plays."""
        if self.next_written != self.next_played:
            raise MidiRwkvError("the take has started already")
        begin = time.perf_counter()
        step = BarStep(None, [])
        for _ in range(2):
            self._write(step)
        step.seconds = time.perf_counter() - begin
        return step

    def play_bar(self, notes: list[LiveNote]) -> BarStep:
        """The player finished bar :attr:`next_played` with ``notes``: write the bar after next of every part."""
        begin = time.perf_counter()
        if self.next_written < self.next_played + 2:
            raise MidiRwkvError("start the take first (the count-in writes its first two bars)")
        played = self.next_played
        self.take.write(self.player.track, played, notes)
        self.next_played += 1
        step = BarStep(played, [], due=self.bar(played + 1).seconds(self.tpq))
        self._write(step)
        step.seconds = time.perf_counter() - begin
        return step

    def played_notes(self, index: int) -> list[LiveNote]:
        """The player's notes of bar ``index`` as the take holds them."""
        return from_ticks(self.take.notes(self.player.track, index), self.tpq)

    def _write(self, step: BarStep) -> None:
        with self._lock:
            controls = self._controls
        target = self.next_written
        bar = self.take.add_bar(controls.metre, controls.qpm)
        step.written.append(bar)
        form = None
        if controls.structure != "off":
            form = LiveForm(self.take.score, self.take.bars(), self.next_played)
        self.anchor = window_start(self.anchor, target, self.options.context, self.options.hop)
        read_before = self.reads.tokens
        for index, part in enumerate(self.parts):
            step.parts.append(self._write_part(part, index, target, controls, form, step))
        step.tokens_read += self.reads.tokens - read_before
        self.next_written += 1

    def _write_part(self, part: LivePart, index: int, target: int, controls: LiveControls, form: LiveForm | None,
                    step: BarStep) -> PartBar:
        take, user = self.take, controls.part(part.track)
        token_bars = len(take.encoder.metres(*controls.metre))
        requested = requested_controls(part, user, token_bars)
        source = plan(form, part.track, target, part.first_bar, requested,
                      lambda b: take.encoded(part.track, b)) if form is not None else None
        start = self.anchor
        if controls.structure == "context" and source is not None and target - source.bar <= CONTEXT_REACH:
            start = min(start, source.bar)
        window = take.window(self.track_order(index, start, target), start, target + 1)
        t = window.grid.track_index(part.track)
        seq = build_bar_infill(window, self.tokenizer.codec, part.track, (target - start, target - start + 1),
                               controls=requested, with_target=False, layout=self.layout)
        if self.options.prime:
            self._keep_prefixes(window, t, seq.ids, index, start, target)
        following = source if controls.structure in ("follow", "vary") else None
        constraints = self._constraints(seq, part, user, requested, following, controls.structure)
        generations = self.generator.generate(seq.ids, constraints, SamplerConfig(), self.options.max_tokens,
                                              self._seed(target, index))
        best = 0
        if self.options.rank == "likelihood":
            best = max(range(len(generations)), key=lambda i: generations[i].mean_logprob)
        chosen, constraint = generations[best], constraints[best]
        step.prompt_tokens += len(seq.ids)
        step.generated += sum(len(g.ids) for g in generations)
        section = seq.ids[seq.ids.index(self.tokenizer.codec.vocab["FillBar_Start"]) + 1:] + chosen.ids
        bar = take.grid[target]
        if isinstance(constraint, LiveFollow) and all(constraint.exact):  # the source bar itself: its own notes
            notes = from_ticks(take.notes(part.track, following.bar), self.tpq)
        else:
            notes = take.encoder.decode(section, bar, part.program)
        take.write(part.track, target, notes)
        return PartBar(part.track, target, notes, following.note if following is not None else None)

    def _keep_prefixes(self, window, t: int, ids: list[int], index: int, start: int, target: int) -> None:
        """Read the prompt's shared starts into the generator's cache (:func:`shared_prefixes`): the first track's
        final bars, and the tracks that the later parts' prompts in this bar start with (their orders as they stand)."""
        mine = [window.grid.track_ids[k] for k in window.emitted(t, self.layout)][:-1]
        blocks, written = 0, self.parts[index].track
        for later in range(index + 1, len(self.parts)):
            theirs = [tr for tr in self.track_order(later, start, target) if tr in mine or tr == written]
            blocks = max(blocks, common_start(mine, theirs))
        final = [max(0, min(self.take.final.get(tr, target + 1), target + 1) - start) for tr in window.grid.track_ids]
        track_start = self.tokenizer.codec.vocab["Track_Start"]
        for length in shared_prefixes(window, t, self.layout, ids, track_start, final, blocks):
            self.generator.prefill(ids[:length])

    def track_order(self, index: int, start: int, target: int) -> list[int]:
        """The order part ``index``'s prompt for bar ``target`` (window from bar ``start``) writes the tracks in; the
        target then moves last in the target-last layout.

        First the track whose final bars in the window are the most tokens (the next bar's prompt for this part starts
        with them too), then the song's other tracks, the parts already written in this bar (final through the
        window, so the later parts' prompts share them), the player, and the parts still to write."""
        parts = [p.track for p in self.parts]
        order = self.others + parts[:index] + [self.player.track] + parts[index:]
        bars = range(start, target + 1)

        def final_tokens(track: int) -> int:
            return sum(self.take.encoded(track, b).cost for b in bars if self.take.is_final(track, b))

        sounding = [t for t in order if t != parts[index] and any(self.take.encoded(t, b).count for b in bars)]
        if sounding:
            first = max(sounding, key=final_tokens)
            order = [first] + [t for t in order if t != first]
        return order

    def _constraints(self, seq, part: LivePart, user, requested, source: LiveSource | None,
                     structure: str) -> list[BarInfillConstraint]:
        section = [(s.header, s.controls) for s in seq.section]
        register = part_register(part, user, self.options.register == "keep")
        limits = note_limits(requested, part.base, self.options.strict_density)
        # a drum part writes drum hits only, a pitched part pitches only (whatever its register)
        kind = (self.tables.pitch_low < 128) if part.is_drum else self.tables.drum_pitch
        out = []
        for i in range(self.options.candidates):
            if source is None:
                constraint = LiveBar(self.tables, section, register=register, max_notes=limits)
            else:
                bodies = [b for _, b in self.take.encoded(part.track, source.bar).bars]
                constraint = LiveFollow(self.tables, section, bodies, candidate_weights(source.weights, i, structure),
                                        self.tables.bar, register=register, max_notes=limits)
            constraint.also_banned = kind
            out.append(constraint)
        return out

    def _seed(self, bar: int, part: int) -> int | None:
        if self.options.seed is None:
            return None
        return (self.options.seed * 1_000_003 + bar * 131 + part) % 2**62
