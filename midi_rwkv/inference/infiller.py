"""Infilling MIDI: prompt from the piece, K candidates from the generator, merged back and measured."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from symusic import Score

from midi_rwkv.errors import ControlError, MidiRwkvError
from midi_rwkv.inference.constraints import BarInfillConstraint, TokenTables
from midi_rwkv.inference.generator import Generator, Generation
from midi_rwkv.inference.ggml import ENGINES, choose_engine, ggml_backend
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.model.checkpoint import check_vocab, open_model, open_tokenizer, resolve_model
from midi_rwkv.tokenizer import BarControls, InfillTokenizer, Piece
from midi_rwkv.tokenizer.controls import check_drum_controls, control_error
from midi_rwkv.tokenizer.sequences import resolve_bar_controls
from midi_rwkv.tokenizer.merge import MergeReport


@dataclass
class ControlRequest:
    """What the user asked for; ``None`` fields keep the original bars' values."""

    density: list[int] | None = None  # one per real bar, or one for all
    polyphony: tuple[int, int] | None = None
    durations: tuple[bool, ...] | None = None


@dataclass
class Candidate:
    score: Score
    report: MergeReport
    requested: list[BarControls]
    realised: list[BarControls]
    generation: Generation

    @property
    def control_error(self) -> float:
        """See :func:`midi_rwkv.tokenizer.controls.control_error` (0 = every control honoured)."""
        return control_error(self.requested, self.realised)


def apply_request(piece: Piece, track: int, base: list[BarControls], bars: tuple[int, int], request: ControlRequest,
                  is_drum: bool) -> list[BarControls]:
    """Per tokenizer bar controls: the original bars', overridden by the request."""
    check_drum_controls(track, is_drum, request.polyphony, request.durations)
    n_real = bars[1] - bars[0]
    density = request.density
    if density is not None and len(density) not in (1, n_real):
        raise ControlError(f"--density has {len(density)} values for {n_real} bars (give one, or one per bar)")
    out, first = [], piece.first_token_bar
    for real in range(*bars):
        parts = range(first[real] - first[bars[0]], first[real + 1] - first[bars[0]])
        for part in parts:
            c = base[part]
            if density is not None:  # a real bar written as several tokenizer bars shares its density
                value = density[0] if len(density) == 1 else density[real - bars[0]]
                c = replace(c, density=round(value / len(parts)))
            if request.polyphony and not is_drum:
                c = replace(c, polyphony=request.polyphony)
            if request.durations and not is_drum:
                c = replace(c, durations=request.durations)
            out.append(c)
    return out


def _gguf_backend(path: Path, tokenizer: InfillTokenizer, engine: str, threads: int, state, lora):
    """A GGUF file as it is: adapters are checked against (and merged into) the .pth model, not this."""
    from midi_rwkv.inference.ggml.backend import GGMLBackend

    if engine == "torch":
        raise MidiRwkvError(f"{path.name} is a GGUF model: it runs on the GGML engine (--engine ggml)")
    if state or lora:
        raise MidiRwkvError("--state and --lora need the .pth model (they are checked against its weights)")
    backend = GGMLBackend(path, threads=threads)
    check_vocab(path, backend.config, tokenizer.vocab_size)
    return backend


class Infiller:
    def __init__(self, generator: Generator, tokenizer: InfillTokenizer):
        self.generator, self.tokenizer = generator, tokenizer
        self.tables = TokenTables.build(tokenizer.codec)

    @classmethod
    def load(
        cls,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        state: str | Path | None = None,
        lora: str | Path | None = None,
        engine: str = "torch",
        threads: int = 1,
    ) -> Infiller:
        """A model, its tokenizer, and optionally a tuned state (``--state``) and a LoRA merged in (``--lora``).

        ``engine``: torch, ggml (f16 matrices), ggml-f32, or auto (ggml where it is installed and can run
        the model, else torch); see :mod:`midi_rwkv.inference.ggml`.
        ``threads``: llama.cpp's threads on the GGML engine. A ``.gguf`` model runs on the GGML engine.
        """
        from midi_rwkv.peft.adapters import StateAdapter, load_adapter, merge_lora

        if engine not in (*ENGINES, "auto"):
            raise MidiRwkvError(f"unknown engine '{engine}': choose from auto, {', '.join(ENGINES)}")
        model_path = resolve_model(model_path)
        if model_path.suffix == ".gguf":
            tokenizer = open_tokenizer(model_path, tokenizer_path)
            engine = "ggml" if engine == "auto" else engine
            return cls(Generator(_gguf_backend(model_path, tokenizer, engine, threads, state, lora)), tokenizer)
        model, tokenizer, _ = open_model(model_path, tokenizer_path)
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
            return cls(Generator(model, initial_state=initial), tokenizer)
        return cls(Generator(ggml_backend(model, engine, threads, initial)), tokenizer)

    def infill(
        self,
        piece: Piece,
        track: int,
        bars: tuple[int, int],
        request: ControlRequest | None = None,
        n: int = 4,
        sampler: SamplerConfig | None = None,
        context_bars: int = 16,
        max_tokens: int = 2000,
        seed: int | None = None,
        free: bool = False,
    ) -> list[Candidate]:
        """K candidates for real bars ``bars`` = [start, end) of ``track``.

        ``free``: give the model no bar controls (it chooses); ``requested`` then holds the original
        bars' controls, so that adherence can still be measured against them.
        """
        if free and request is not None and request != ControlRequest():
            raise ControlError("--free takes no --density, --polyphony or --duration (free infilling gets no controls)")
        tok = self.tokenizer
        enc = tok.encode(piece)
        t = piece.track_index(track)
        span = piece.token_span(*bars)
        base = resolve_bar_controls(enc, t, span, None)
        requested = apply_request(piece, track, base, bars, request or ControlRequest(), enc.tracks[t].is_drum)
        # RWKV reads past its training length; 4x ctx_len only bounds the time spent on the prompt
        seq = tok.bar_infill(
            enc,
            track,
            bars,
            controls=requested,
            context_bars=context_bars,
            max_len=self.generator.config.ctx_len * 4,
            with_target=False,
            free=free,
        )
        section = [(s.header, s.controls) for s in seq.section]
        generations = self.generator.generate(
            seq.ids, [BarInfillConstraint(self.tables, section) for _ in range(n)], sampler, max_tokens, seed
        )
        candidates = []
        for g in generations:
            score, report = tok.merge(piece, seq, g.ids)
            realised = tok.realised_controls(score, piece.name, track, bars, len(requested), enc.tracks[t].is_drum)
            candidates.append(Candidate(score, report, requested, realised, g))
        return candidates
