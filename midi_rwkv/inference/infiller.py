"""Infilling MIDI: prompt from the piece, K candidates from the generator, merged back and measured."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from symusic import Score, Track

from midi_rwkv.errors import ControlError, MidiRwkvError
from midi_rwkv.inference.constraints import BarInfillConstraint, TokenTables
from midi_rwkv.inference.follow import FollowEarlierBars, FollowSource
from midi_rwkv.inference.form import (
    STRUCTURE_SETTINGS,
    FollowSettings,
    FormPlan,
    candidate_weights,
    context_to_reach,
    no_plan,
    plan_form,
)
from midi_rwkv.inference.generator import Generation, Generator, TorchEngine
from midi_rwkv.inference.ggml import ENGINES, choose_engine, ggml_engine
from midi_rwkv.inference.sampler import TRACK_SAMPLER, SamplerConfig
from midi_rwkv.inference.ggml.gguf import read_layout
from midi_rwkv.inference.options import RANKINGS, InfillOptions, token_budget
from midi_rwkv.model.checkpoint import check_vocab, model_layout, open_model, open_tokenizer, resolve_model
from midi_rwkv.inference.requests import (
    BarFill,
    ControlRequest,
    Fill,
    InfillRequest,
    NewTrack,
    TrackFill,
)
from midi_rwkv.structure import REPEAT_THRESHOLD, SongStructure
from midi_rwkv.structure.copying import copy_bars
from midi_rwkv.tokenizer import InfillTokenizer, Piece
from midi_rwkv.tokenizer.controls import DENSITY_MAX, BarControls, TrackControls, control_error, typical_track_controls
from midi_rwkv.tokenizer.merge import MergeReport
from midi_rwkv.tokenizer.requested import apply_track_request


@dataclass
class Candidate:
    """One candidate: the whole score, and what its (last) fill asked for and got.

    ``requested``/``realised`` are per-bar :class:`BarControls` for a bar fill, and one
    :class:`TrackControls` for a whole or new track. ``previous`` holds the earlier fills of a
    several-part request, in order.
    """

    score: Score
    report: MergeReport
    requested: list
    realised: list
    generation: Generation
    fill: Fill | None = None
    previous: list[Candidate] = field(default_factory=list)
    form: str | None = None  # what the song's form contributed (a bar fill with the structure setting on)

    @property
    def control_error(self) -> float:
        """Of every fill: see :func:`midi_rwkv.tokenizer.controls.control_error` (0 = every control honoured)."""
        return control_error(self.requested, self.realised) + sum(p.control_error for p in self.previous)

    @property
    def mean_logprob(self) -> float:
        """Of every fill: the model's mean log-probability per sampled token (higher: the model likes it more)."""
        steps = self.steps
        sampled = sum(s.generation.sampled for s in steps)
        return sum(s.generation.logprob for s in steps) / sampled if sampled else float("-inf")

    @property
    def steps(self) -> list[Candidate]:
        """Every fill of the request, in order (this one last)."""
        return [*self.previous, replace(self, previous=[])]


def _gguf_engine(path: Path, tokenizer: InfillTokenizer, engine: str, threads: int, state, lora):
    """A GGUF file as it is: adapters are checked against (and merged into) the .pth model, not this."""
    from midi_rwkv.inference.ggml.engine import GGMLEngine

    if engine == "torch":
        raise MidiRwkvError(f"{path.name} is a GGUF model: it runs on the GGML engine (--engine ggml)")
    if state or lora:
        raise MidiRwkvError("--state and --lora need the .pth model (they are checked against its weights)")
    engine = GGMLEngine(path, threads=threads)
    check_vocab(path, engine.config, tokenizer.vocab_size)
    return engine


DEFAULTS = InfillOptions()  # the one default of every setting, for the Python API too
REGISTER_MARGIN = 1  # semitones past the track's own range that a kept register still allows
# A generated bar holds at most this many times the notes of the piece's densest bar (and at least MIN_BAR_LIMIT):
# a guard against the loops in which a small model writes hundreds of notes at one position.
BAR_LIMIT_FACTOR = 2
MIN_BAR_LIMIT = 32


def bar_note_limit(piece: Piece, controls: TrackControls | None = None) -> int:
    """Notes one generated bar may hold: a whole track's own density control (its busiest bar) where it
    names a number, else the runaway guard (:data:`BAR_LIMIT_FACTOR` x the piece's densest bar)."""
    if controls is not None and controls.density[1] < DENSITY_MAX:
        return controls.density[1]
    return max(MIN_BAR_LIMIT, BAR_LIMIT_FACTOR * piece.densest_bar())


def density_limits(controls: list[BarControls], guard: int) -> list[int]:
    """Per bar, at most the notes its density control asks for (strict density); "18+" bars get ``guard``."""
    return [c.density if c.density < DENSITY_MAX else guard for c in controls]


def track_register(piece: Piece, track: int, span: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """The pitch range ``track`` plays outside real bars ``span`` (all of it without one), widened by
    :data:`REGISTER_MARGIN`; None for drums or when it plays nothing there."""
    source = piece.original.tracks[track]
    if source.is_drum:
        return None
    lo, hi = (piece.bars[span[0]].start, piece.bars[span[1] - 1].end) if span else (0, -1)
    pitches = [n.pitch for n in source.notes if not lo <= n.time < hi]
    if not pitches:
        return None
    return min(pitches) - REGISTER_MARGIN, max(pitches) + REGISTER_MARGIN


def program_register(program: int) -> tuple[int, int]:
    """A General MIDI instrument's playable range (as MidiTok lists it): a new part's register."""
    from miditok.constants import MIDI_INSTRUMENTS

    allowed = MIDI_INSTRUMENTS[program]["pitch_range"]
    return allowed.start, allowed.stop - 1


def keep_source_timing(score: Score, piece: Piece, track: int, bars: tuple[int, int], source: int | None,
                       exact: list[bool]) -> None:
    """In place: each written bar that is its source bar token for token gets the source bar's own notes (its
    timing, velocities and durations, which the tokenizer quantises), as a composer's copy of a repeat would."""
    n = bars[1] - bars[0]
    if source is None or len(exact) != n or not any(exact):  # tokenizer bars that split a real bar: leave them
        return
    pairs = [(bars[0] + k, source + k) for k in range(n) if exact[k]]
    copy_bars(score, piece.original, track, piece.bars, pairs, piece.bars[bars[1] - 1].end)


def rank(candidates: list[Candidate], by: str) -> list[Candidate]:
    """Best first: ``controls`` by control error (lowest first), ``likelihood`` by the model's mean log-probability
    per sampled token (highest first); ties keep their order. ``none`` keeps the order they were sampled in."""
    if by == "none":
        return list(candidates)
    if by == "controls":
        return sorted(candidates, key=lambda c: c.control_error)
    if by == "likelihood":
        return sorted(candidates, key=lambda c: -c.mean_logprob)
    raise MidiRwkvError(f"unknown ranking '{by}': choose from {', '.join(RANKINGS)}")


class Infiller:
    """MIDI in, candidates out.

    ``keep_register``: the model may write only pitches in the register the track plays around what it writes
    (a new track: its instrument's range), see :func:`track_register`. On by default.
    ``layout``: where bar-infill prompts put the infilled track (``tokenizer.sequences.LAYOUTS``): the one the model
    was trained with, which :meth:`load` reads off the model.
    ``strict_density``: a bar with a density control holds at most the notes it asks for (the model still chooses
    fewer, and where); see :func:`density_limits`. On by default. Free infilling has no controls, so it is never
    limited this way. Why both are on: docs/inference.md (the measurements behind every default).
    """

    def __init__(self, generator: Generator, tokenizer: InfillTokenizer, keep_register: bool = DEFAULTS.keep_register,
                 layout: str = "file-order", strict_density: bool = DEFAULTS.strict_density,
                 structure: str = DEFAULTS.structure):
        if structure not in STRUCTURE_SETTINGS:
            raise MidiRwkvError(f"unknown structure setting '{structure}': choose from {', '.join(STRUCTURE_SETTINGS)}")
        self.generator, self.tokenizer, self.keep_register, self.layout = generator, tokenizer, keep_register, layout
        self.strict_density, self.structure, self.follow = strict_density, structure, FollowSettings()
        self.tables = TokenTables.build(tokenizer.codec)

    def with_structure(self, structure: str, follow: FollowSettings | None = None) -> Infiller:
        """This infiller (the same model, loaded once) with another structure setting (and how it follows)."""
        if structure not in STRUCTURE_SETTINGS:
            raise MidiRwkvError(f"unknown structure setting '{structure}': choose from {', '.join(STRUCTURE_SETTINGS)}")
        other = copy.copy(self)
        other.structure, other.follow = structure, follow or self.follow
        return other

    @classmethod
    def open(cls, options: InfillOptions, model_path: str | Path | None = None,
             tokenizer_path: str | Path | None = None, state: str | Path | None = None,
             lora: str | Path | None = None, layout: str | None = None) -> Infiller:
        """The model (default: the shipped one) on the engine and with the settings ``options`` ask for: the one
        place a model is opened for a request (the command line, the studio and the evaluation). On an engine other
        than PyTorch it gives the sampler one torch thread: llama.cpp has threads of its own, and a second torch
        thread spin-waiting beside them on a shared core slows decoding several times (docs/inference.md, "Why
        prompt reading speed varies")."""
        infiller = cls.load(model_path, tokenizer_path, state, lora, options.engine, options.threads,
                            options.keep_register, layout, options.strict_density, options.structure)
        if not isinstance(infiller.generator.engine, TorchEngine):
            torch.set_num_threads(1)
        return infiller

    def configured(self, options: InfillOptions) -> Infiller:
        """This infiller (the same model, loaded once) with the register, density and structure settings of
        ``options``; itself when they are its own."""
        if (self.keep_register, self.strict_density, self.structure) == (
                options.keep_register, options.strict_density, options.structure):
            return self
        other = self.with_structure(options.structure)
        other.keep_register, other.strict_density = options.keep_register, options.strict_density
        return other

    def write(self, piece: Piece, request: InfillRequest, first_candidate: int = 0) -> list[Candidate]:
        """The request's candidates, ranked as it asks (``first_candidate``: see :meth:`infill`)."""
        o = request.options
        results = self.configured(o).fill(piece, list(request.fills), o.n, request.sampler, o.context_bars,
                                          o.max_tokens, o.seed, free=o.free, context_tokens=o.context_tokens,
                                          first_candidate=first_candidate)
        return rank(results, o.rank)

    @classmethod
    def load(
        cls,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        state: str | Path | None = None,
        lora: str | Path | None = None,
        engine: str = DEFAULTS.engine,
        threads: int | None = None,
        keep_register: bool = DEFAULTS.keep_register,
        layout: str | None = None,
        strict_density: bool = DEFAULTS.strict_density,
        structure: str = DEFAULTS.structure,
    ) -> Infiller:
        """A model, its tokenizer, and optionally a tuned state (``--state``) and a LoRA merged in (``--lora``).

        ``engine``: torch, ggml (f16 matrices), ggml-f32, or auto (ggml where it is installed and can run
        the model, else torch); see :mod:`midi_rwkv.inference.ggml`.
        ``threads``: at most this many threads, fewer while other programs keep CPUs busy: llama.cpp's on the GGML
        engine (default 1), torch's on the PyTorch engine (default: the process's torch threads when it loads). A
        ``.gguf`` model runs on the GGML engine.
        ``keep_register``, ``strict_density``: see the class. ``layout``: the model's own (its sidecar's) unless
        given (to measure another, e.g. a file-order model's prompts written target-last).
        """
        from midi_rwkv.peft.adapters import StateAdapter, load_adapter, merge_lora

        if engine not in (*ENGINES, "auto"):
            raise MidiRwkvError(f"unknown engine '{engine}': choose from auto, {', '.join(ENGINES)}")
        model_path = resolve_model(model_path)
        if model_path.suffix == ".gguf":
            tokenizer = open_tokenizer(model_path, tokenizer_path)
            engine = "ggml" if engine == "auto" else engine
            ggml = _gguf_engine(model_path, tokenizer, engine, threads or 1, state, lora)
            return cls(Generator(ggml), tokenizer, keep_register, layout or read_layout(model_path), strict_density,
                       structure)
        model, tokenizer, _ = open_model(model_path, tokenizer_path)
        layout = layout or model_layout(model_path)
        initial = None
        if state:
            adapter = load_adapter(state, model)  # checked against the base before anything changes it
            if not isinstance(adapter, StateAdapter):
                raise MidiRwkvError(f"{state} is a {adapter.kind} adapter; pass it with --lora")
            initial = adapter.initial_state(1)
        if lora:
            merge_lora(lora, model)
        engine = choose_engine(engine, model.config.head_size)
        if engine == "torch":
            generator = Generator(TorchEngine(model, initial, threads or torch.get_num_threads()))
        else:
            generator = Generator(ggml_engine(model, engine, threads or 1, initial, layout))
        return cls(generator, tokenizer, keep_register, layout, strict_density, structure)

    def infill(
        self,
        piece: Piece,
        track: int,
        bars: tuple[int, int],
        request: ControlRequest | None = None,
        n: int = 4,
        sampler: SamplerConfig | None = None,
        context_bars: int | None = 16,
        max_tokens: int | None = None,
        seed: int | None = None,
        free: bool = False,
        context_tokens: int | None = None,
        first_candidate: int = 0,
    ) -> list[Candidate]:
        """K candidates for real bars ``bars`` = [start, end) of ``track``.

        ``free``: give the model no bar controls (it chooses); ``requested`` then holds the original
        bars' controls, so that adherence can still be measured against them. ``context_bars``: bars of
        context on each side; ``None``: the whole song (read in chunks, at constant memory).
        ``context_tokens``: at most this many tokens in all, context widened evenly on both sides (default: 4x the
        model's training length when ``context_bars`` is set, else no limit). ``max_tokens``: per candidate
        (default 2000). ``first_candidate``: the index of the first of these among the request's candidates, when
        they are made one at a time (under the ``follow`` structure setting only candidate 0 is the repeat itself).
        """
        if free and request is not None and request != ControlRequest():
            raise ControlError("--free takes no --density, --polyphony or --duration (free infilling gets no controls)")
        tok = self.tokenizer
        enc = tok.encode(piece)
        is_drum = enc.tracks[piece.track_index(track)].is_drum
        requested = tok.requested_controls(piece, track, bars, request, enc)
        plan = self.form_plan(piece, enc, track, bars, requested, free)
        if self.structure == "context":
            context_bars = context_to_reach(bars, plan.source, context_bars)
        # RWKV reads past its training length; with a bounded context, 4x ctx_len bounds the time spent on the prompt
        max_len = context_tokens
        if max_len is None and context_bars is not None:
            max_len = self.generator.config.ctx_len * 4
        seq = tok.bar_infill(enc, track, bars, controls=requested, context_bars=context_bars, max_len=max_len,
                             with_target=False, free=free, layout=self.layout)
        section = [(s.header, s.controls) for s in seq.section]
        register = track_register(piece, track, bars) if self.keep_register else None
        limit = self.note_limits(piece, requested, free)
        constraints = [self._bar_constraint(section, register, limit, plan, first_candidate + i) for i in range(n)]
        generations = self.generator.generate(seq.ids, constraints, sampler, token_budget(max_tokens), seed)
        fill = BarFill(track, tuple(bars), request)
        candidates = []
        for g, constraint in zip(generations, constraints):
            score, report = tok.merge(piece, seq, g.ids)
            if isinstance(constraint, FollowSource) and self.follow.source_timing:
                keep_source_timing(score, piece, track, bars, plan.source, constraint.exact)
            realised = tok.realised_controls(score, piece.name, track, bars, len(requested), is_drum)
            note = plan.note if self.structure != "off" else None
            candidates.append(Candidate(score, report, requested, realised, g, fill, form=note))
        return candidates

    def _bar_constraint(self, section, register, limit, plan: FormPlan, candidate: int) -> BarInfillConstraint:
        if self.structure in ("follow", "vary") and plan.active:
            return FollowSource(self.tables, section, plan.bodies, plan.weights_for(candidate, self.structure),
                                self.tables.bar, register=register, max_notes=limit)
        return BarInfillConstraint(self.tables, section, register=register, max_notes=limit)

    def form_plan(self, piece: Piece, enc, track: int, bars: tuple[int, int], requested: list[BarControls],
                  free: bool) -> FormPlan:
        """The source window and per-bar weights for the structure setting (see :mod:`midi_rwkv.inference.form`);
        free infilling asks for no controls, so none gate the copy."""
        if self.structure == "off":
            return no_plan(len(requested), "")
        return plan_form(piece, enc, SongStructure.of_piece(piece), track, bars, requested, gate=not free,
                         settings=self.follow)

    def note_limits(self, piece: Piece, requested: list[BarControls], free: bool) -> int | list[int]:
        """Notes each infilled bar may hold: the runaway guard, or with ``strict_density`` (and controls) each bar's
        own density control."""
        guard = bar_note_limit(piece)
        return density_limits(requested, guard) if self.strict_density and not free else guard

    def regenerate_track(self, piece: Piece, track: int, request: ControlRequest | None = None, n: int = 4,
                         sampler: SamplerConfig | None = None, max_tokens: int | None = None,
                         seed: int | None = None) -> list[Candidate]:
        """K candidates in which ``track`` is written again from start to end, after every other track, with
        its own track controls unless ``request`` changes them; its program, name and channel are kept.
        ``sampler``: default :data:`~midi_rwkv.inference.sampler.TRACK_SAMPLER` (so for :meth:`add_track`)."""
        t = piece.track_index(track)
        original = piece.original.tracks[track]
        base = self.tokenizer.track_controls_of(piece, piece.name, track)
        controls = apply_track_request(base, request or ControlRequest(), track, original.is_drum)
        program = -1 if original.is_drum else piece.score.tracks[t].program
        fill = TrackFill(track, request)
        return self._write_track(piece, fill, program, controls, None, n, sampler, max_tokens, seed)

    def add_track(self, piece: Piece, new: NewTrack, n: int = 4, sampler: SamplerConfig | None = None,
                  max_tokens: int | None = None, seed: int | None = None) -> list[Candidate]:
        """K candidates with a new track under the existing ones (every other track unchanged); its controls are
        the request's, else the typical ones of the other tracks."""
        index = len(piece.original.tracks)
        others = [self.tokenizer.track_controls_of(piece, piece.name, i) for i in piece.track_ids
                  if piece.original.tracks[i].is_drum == new.is_drum]
        base = typical_track_controls([c for c in others if c is not None], new.is_drum)
        controls = apply_track_request(base, new.controls or ControlRequest(), index, new.is_drum)
        template = Track(name=new.name or ("Drums" if new.is_drum else f"Program {new.program}"),
                         program=0 if new.is_drum else new.program, is_drum=new.is_drum)
        program = -1 if new.is_drum else new.program
        return self._write_track(piece, new, program, controls, template, n, sampler, max_tokens, seed)

    def _write_track(self, piece: Piece, fill: Fill, program: int, controls, template: Track | None, n: int,
                     sampler: SamplerConfig | None, max_tokens: int | None, seed: int | None) -> list[Candidate]:
        tok = self.tokenizer
        replace_track = None if template is not None else fill.track
        seq = tok.track_generation(piece, program, controls, replace=replace_track)
        section = [(s.header, ()) for s in seq.section]
        budget = token_budget(max_tokens, len(section))
        register = None
        if self.keep_register and program >= 0:  # not drums
            register = track_register(piece, fill.track) if template is None else program_register(program)
        limit = bar_note_limit(piece, controls)
        # rest no longer than the track did (a new track: than the most resting other track)
        rest = piece.longest_rest(None if template is not None else piece.track_index(fill.track))
        earlier, weights = self.track_repeats(piece, replace_track, len(section))
        constraints = []
        for i in range(n):
            options = dict(end=self.tables.track_end, register=register, max_notes=limit, max_rest=rest)
            if earlier is None:
                constraints.append(BarInfillConstraint(self.tables, section, **options))
            else:
                constraints.append(FollowEarlierBars(self.tables, section, earlier,
                                                     candidate_weights(weights, i, self.structure), self.tables.bar,
                                                     **options))
        generations = self.generator.generate(seq.ids, constraints, sampler or TRACK_SAMPLER, budget, seed)
        candidates = []
        for g in generations:
            score, report = tok.merge(piece, seq, g.ids, new_track=template)
            got = tok.track_controls_of(score, piece.name, seq.track)
            realised = [got if got is not None else replace(controls, density=(0, 0))]
            candidates.append(Candidate(score, report, [controls], realised, g, fill))
        return candidates

    def track_repeats(self, piece: Piece, track: int | None, bars: int) -> tuple[list | None, list[float]]:
        """For a track written from start to end (``track``: the one replaced, None for a new one): per bar, the
        earlier bar it follows where the other tracks repeat (at least the repeat threshold), and its weight; None
        when the structure setting is off, ``FollowSettings.tracks`` is (the default), or the tokenizer's bars are not
        the song's."""
        if self.structure not in ("follow", "vary") or not self.follow.tracks or bars != piece.num_bars:
            return None, []
        earlier, match = SongStructure.of_piece(piece).earlier_repeats(exclude=track)
        repeats = (earlier >= 0) & (match >= REPEAT_THRESHOLD)
        if not repeats.any():
            return None, []
        return ([int(e) if r else None for e, r in zip(earlier, repeats)],
                [self.follow.weight if r else 0.0 for r in repeats])

    def check_fills(self, piece: Piece, fills: list[Fill]) -> None:
        """Every track and span of the input file that ``fills`` name exists (before anything is generated)."""
        for fill in fills:
            if isinstance(fill, (BarFill, TrackFill)) and fill.track < len(piece.original.tracks):
                piece.track_index(fill.track)
                if isinstance(fill, BarFill):
                    piece.token_span(*fill.bars)

    def fill(self, piece: Piece, fills: list[Fill], n: int = 4, sampler: SamplerConfig | None = None,
             context_bars: int | None = 16, max_tokens: int | None = None, seed: int | None = None,
             free: bool = False, context_tokens: int | None = None, first_candidate: int = 0) -> list[Candidate]:
        """K candidates of a several-part request: the fills run one after another, each on the score the
        earlier ones made (so each sees their results); the first fill forks the K candidates.

        Track numbers refer to the input file; a :class:`NewTrack` becomes the next track number. ``free``, and
        the context settings, apply to bar fills (see :meth:`infill`).
        """
        if not fills:
            raise MidiRwkvError("nothing to fill")
        options = dict(sampler=sampler, max_tokens=max_tokens)
        bar_options = dict(context_bars=context_bars, free=free, context_tokens=context_tokens)
        results = self._one(piece, fills[0], n, bar_options | {"first_candidate": first_candidate}, seed=seed,
                            **options)
        for fill in fills[1:]:
            later = []
            for c in results:
                current = self.tokenizer.prepare(c.score, piece.name)
                (new,) = self._one(current, fill, 1, bar_options, seed=seed, **options)
                later.append(replace(new, previous=c.steps))
            results = later
        return results

    def _one(self, piece: Piece, fill: Fill, n: int, bar_options: dict, **options) -> list[Candidate]:
        if isinstance(fill, BarFill):
            return self.infill(piece, fill.track, fill.bars, fill.controls, n, **bar_options, **options)
        if isinstance(fill, TrackFill):
            return self.regenerate_track(piece, fill.track, fill.controls, n, **options)
        if isinstance(fill, NewTrack):
            return self.add_track(piece, fill, n, **options)
        raise TypeError(f"not a fill: {fill!r}")
