"""The evaluation run: prompts -> generations (stored, resumable) -> metrics -> report.

Layout of the output folder:
  prompts.json                       the prompts and the settings that chose them
  generations/SYSTEM/PROMPT.mid      the whole piece with the span infilled
  generations/SYSTEM/PROMPT.json     requested and realised controls, time, tokens
  results.csv, summary.md, *.png     written by :mod:`midi_rwkv.metrics.report`

Re-running with the same folder skips every generation already on disk (the JSON is written last,
so a generation interrupted half-way is redone). Each JSON records the system's identity (its settings, the
sampling it got, the sha256 of its files); a system whose identity changed under the same name is refused.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from symusic import Score
from tqdm import tqdm

from midi_rwkv.data.corpora import open_corpus
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.inference.requests import BarFill, InfillRequest, TrackFill
from midi_rwkv.model.checkpoint import default_tokenizer, resolve_model
from midi_rwkv.io import atomic_write, atomic_write_json
from midi_rwkv.metrics.adherence import adherence, density_deltas
from midi_rwkv.metrics.copying import copy_rate
from midi_rwkv.metrics.music import music_metrics
from midi_rwkv.metrics.prompts import Prompt, choose_prompts
from midi_rwkv.metrics.region import Region
from midi_rwkv.metrics.systems import REFERENCES, TRACK_REFERENCES, System, parse_system, reference_score
from midi_rwkv.settings import require, setting
from midi_rwkv.structure import REPEAT_THRESHOLD, SongStructure
from midi_rwkv.tokenizer import BarControls, InfillTokenizer, Piece
from midi_rwkv.tokenizer.controls import TrackControls, control_error


def _track(text: str) -> int | str:
    return text if text == "random" else int(text)


@dataclass
class EvalConfig:
    out: str = setting(help="report folder: generations, results.csv, summary.md, plots (re-running resumes)")
    system: list[str] = setting(help="a system to evaluate, repeatable; its keys are 'midi-rwkv infill''s settings "
                                "(n rank context context_tokens max_tokens free register strict_density structure "
                                "engine threads and the sampling's, '-' written '_'), the files it loads (model "
                                "tokenizer state lora), layout (file-order, target-last; default: the model's) and "
                                "structure_weight structure_floor source_timing structure_durations structure_tracks",
                                factory=lambda: ["model", "free:free=1"], metavar="NAME[:key=value,...]")
    model: str | None = setting(None, "the systems' model unless they name one (default: the shipped midi_rwkv.pth)")
    data: str = setting("pop909:../shared/data/pop909", "corpus to draw prompts from")
    tokenizer: str | None = setting(None, "tokenizer that chooses prompts (default: the first system's)")
    prompts: int = setting(40, "prompts, one per piece")
    bars: int = setting(4, "bars to infill, N")
    context: int = setting(16, "bars of context on each side, C (a system's context key overrides it)")
    track: int | str = setting(0, "track to infill, or 'random' for one per piece (POP909: 0 is the melody, as in the "
                               "paper)", parse=_track)
    split: str = setting("test", "split to draw from, as training splits the corpus, or all pieces",
                         choices=("train", "validation", "test", "all"))
    seed: int = setting(0, "prompt and sampling seed")
    min_bars: int = setting(0, "draw prompts only from pieces with at least this many bars (e.g. long pieces for a "
                            "context-length sweep)")
    max_tokens: int | None = setting(None, "every system's token limit per generation unless it gives max_tokens "
                                     "(default: the infill request's)")
    faithful: bool = setting(False, "the original release's metric definitions (silence scores 0, ...)")
    mode: str = setting("bars", "what each prompt asks for: N bars of a track (infill), or a whole track written "
                        "again after the others (track infill)", choices=("bars", "track"))
    no_references: bool = setting(False, "leave out the reference rows ('original', 'silence', and 'copy' or "
                                  "'other-track')")
    systems: list[System] = field(init=False, repr=False, metadata={"help": "parsed from system", "cli": False})

    def __post_init__(self):
        for name in ("prompts", "bars"):
            require(getattr(self, name) >= 1, f"--{name} must be 1 or more")
        require(self.context >= 0, "--context must be 0 or more")
        require(self.track == "random" or (isinstance(self.track, int) and self.track >= 0),
                f"--track must be a track number or 'random', got {self.track!r}")
        needs_default = self.model is None and any("model=" not in text for text in self.system)
        model = str(resolve_model(None)) if needs_default else self.model
        shared = {"context": str(self.context)} | ({"max_tokens": str(self.max_tokens)} if self.max_tokens else {})
        self.systems = [parse_system(text, model, shared) for text in self.system]
        names = [s.name for s in self.systems]
        require(len(set(names)) == len(names), f"system names must be unique: {names}")

    @property
    def references(self) -> tuple[str, ...]:
        if self.no_references:
            return ()
        return TRACK_REFERENCES if self.mode == "track" else REFERENCES

    def prompt_settings(self) -> dict:
        keys = ("data", "prompts", "bars", "context", "track", "split", "seed")
        keys += ("min_bars",) if self.min_bars else ()  # older reports, without these, still resume
        keys += ("mode",) if self.mode != "bars" else ()
        settings = {k: getattr(self, k) for k in keys}
        return settings | {"track": None if self.track == "random" else self.track}


def _controls_to_json(controls: list) -> list[dict]:
    """Bar controls, or one track's controls (they have a repetition and a (min, max) density)."""
    return [asdict(c) for c in controls]


def _controls_from_json(rows: list[dict]) -> list:
    out = []
    for r in rows:
        polyphony = tuple(r["polyphony"]) if r["polyphony"] else None
        durations = tuple(r["durations"]) if r["durations"] is not None else None
        if "repetition" in r:
            out.append(TrackControls(tuple(r["density"]), r["repetition"], polyphony, durations))
        else:
            out.append(BarControls(r["density"], polyphony, durations))
    return out


class Evaluation:
    def __init__(self, config: EvalConfig, progress: bool = True):
        self.config, self.progress = config, progress
        self.out = Path(config.out)
        model_systems = [s for s in config.systems if not s.is_reference]
        for system in model_systems:
            for kind in ("model", "tokenizer", "state", "lora"):
                path = getattr(system, kind)
                if path and not Path(path).is_file():
                    raise MidiRwkvError(f"system '{system.name}': no {kind} at {path}")
        if not model_systems and not config.tokenizer:
            raise MidiRwkvError("give at least one model system, or --tokenizer for reference rows alone")
        self.tokenizer = InfillTokenizer.load(config.tokenizer or self._tokenizer_of(model_systems[0]))
        self.systems = list(config.systems) + [System(name) for name in config.references]
        self._pieces: dict[str, Piece] = {}
        self._corpora: dict = {}
        self.skips: dict[str, str] = {}  # "system/prompt" -> why that row has no generation (filled by measure)

    @staticmethod
    def _tokenizer_of(system: System) -> Path:
        return Path(system.tokenizer) if system.tokenizer else default_tokenizer(Path(system.model))

    # ---- prompts --------------------------------------------------------------------------
    def prompts(self) -> list[Prompt]:
        path = self.out / "prompts.json"
        settings = self.config.prompt_settings()
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved["settings"] != settings:
                raise MidiRwkvError(
                    f"{self.out} holds an evaluation with other prompt settings ({saved['settings']}); "
                    "use another --out"
                )
            return [Prompt(**p) for p in saved["prompts"]]
        c = self.config
        track = None if c.track == "random" else c.track
        prompts = choose_prompts(
            c.data, self.tokenizer, c.prompts, c.bars, c.context, track, c.split, c.seed, self.progress, c.min_bars,
            whole_track=c.mode == "track",
        )
        if not prompts:
            raise MidiRwkvError(f"{c.data}: no piece of the {c.split} split has {c.bars} bars with notes to infill")
        atomic_write_json(path, {"settings": settings, "prompts": [p.to_dict() for p in prompts]})
        return prompts

    def piece(self, prompt: Prompt) -> Piece:
        if prompt.id not in self._pieces:
            if prompt.corpus not in self._corpora:  # prompts from a compiled corpus may name several sources
                self._corpora[prompt.corpus] = open_corpus(prompt.corpus)
            corpus = self._corpora[prompt.corpus]
            index = corpus.ids.index(prompt.piece)
            self._pieces[prompt.id] = self.tokenizer.prepare(corpus.load(index), prompt.piece)
        return self._pieces[prompt.id]

    # ---- generations ----------------------------------------------------------------------
    def _paths(self, system: System, prompt: Prompt) -> tuple[Path, Path]:
        folder = self.out / "generations" / system.name
        return folder / f"{prompt.id}.mid", folder / f"{prompt.id}.json"

    def generate(self, prompts: list[Prompt]) -> None:
        infillers: dict[tuple, Infiller] = {}
        position = {prompt.id: i for i, prompt in enumerate(prompts)}  # the sampling seed of each prompt
        for system in self.systems:
            identity = system.identity(self.config.mode)
            todo = []
            for prompt in prompts:
                meta = self._paths(system, prompt)[1]
                if meta.is_file():
                    self._same_system(system.name, json.loads(meta.read_text()).get("system", {}), identity)
                else:
                    todo.append(prompt)
            if not todo:
                continue
            if not system.is_reference:
                o = system.options
                key = (system.model, system.tokenizer, system.state, system.lora, o.engine, o.threads, system.layout)
                if key not in infillers:
                    infillers[key] = Infiller.open(o, system.model, system.tokenizer, system.state, system.lora,
                                                   system.layout)
                infiller = infillers[key].with_structure(o.structure, system.follow)
            for prompt in tqdm(todo, desc=f"generating {system.name}", unit="prompt", disable=not self.progress):
                piece = self.piece(prompt)
                bars = (prompt.start, prompt.end)
                midi, meta = self._paths(system, prompt)
                if system.is_reference:
                    try:
                        record = self._reference(system.name, piece, prompt, bars)
                    except MidiRwkvError as err:  # one piece never stops an evaluation: its reason is reported
                        atomic_write_json(meta, {"prompt": prompt.to_dict(), "system": identity,
                                                 "skipped": str(err)})
                        continue
                    score = record.pop("score")
                else:
                    seed = self.config.seed * 1_000_003 + position[prompt.id]
                    c = self._model_candidate(infiller, system, piece, prompt, seed)
                    score = c.score
                    record = {
                        "requested": _controls_to_json(c.requested),
                        "realised": _controls_to_json(c.realised),
                        "seconds": round(c.generation.seconds, 3),
                        "tokens": c.generation.sampled,
                        "prompt_tokens": c.generation.prompt_tokens,
                        "mean_logprob": round(c.mean_logprob, 4),
                        "stopped": c.generation.stopped,
                        "notes_added": c.report.notes_added,
                    }
                atomic_write(midi, score.dump_midi)
                atomic_write_json(meta, {"prompt": prompt.to_dict(), "system": identity, **record})

    def _same_system(self, name: str, stored: dict, current: dict) -> None:
        """Refuse to reuse generations that another system made under this name (other settings, another model
        file behind the same path). Keys an older record lacks, or its unresolved default sampler, are not compared."""
        for key, then in stored.items():
            if key not in current or (key == "sampler" and then is None):
                continue
            now = current[key]
            if key == "sha256":
                then, now = {k: v for k, v in then.items() if k in now}, {k: v for k, v in now.items() if k in then}
            if then != now:
                raise MidiRwkvError(
                    f"{self.out}: system '{name}' was generated with {key} {then}, and is now {now}: give it "
                    "another name, or another --out"
                )

    def _model_candidate(self, infiller: Infiller, system: System, piece: Piece, prompt: Prompt, seed: int):
        """The system's candidate for the prompt, from the request ``midi-rwkv infill`` would make with its
        settings: the first one, or with a ranking the best of its ``n``."""
        fill = TrackFill(prompt.track) if self.config.mode == "track" else BarFill(prompt.track,
                                                                                  (prompt.start, prompt.end))
        options = replace(system.options, n=system.candidates, seed=seed)
        return infiller.write(piece, InfillRequest((fill,), options, system.sampler))[0]

    def _reference(self, name: str, piece: Piece, prompt: Prompt, bars: tuple[int, int]) -> dict:
        score = reference_score(name, piece, prompt.track, bars)
        if self.config.mode == "track":
            silent = TrackControls((0, 0), 0.0)
            requested = [self.tokenizer.track_controls_of(piece, piece.name, prompt.track) or silent]
            realised = [self.tokenizer.track_controls_of(score, piece.name, prompt.track) or silent]
        else:
            requested = self.tokenizer.requested_controls(piece, prompt.track, bars)
            is_drum = piece.original.tracks[prompt.track].is_drum
            realised = self.tokenizer.realised_controls(score, piece.name, prompt.track, bars, len(requested), is_drum)
        return {
            "score": score,
            "requested": _controls_to_json(requested),
            "realised": _controls_to_json(realised),
            "seconds": 0.0,
            "tokens": 0,
            "stopped": "done",
            "notes_added": 0,
        }

    # ---- metrics --------------------------------------------------------------------------
    def measure(self, prompts: list[Prompt]) -> list[dict]:
        """One row per (prompt, system, metric); density deltas per bar go in ``metric = density_delta_bar_K``."""
        rows = []
        for prompt in tqdm(prompts, desc="measuring", unit="prompt", disable=not self.progress):
            piece = self.piece(prompt)
            region = Region(
                prompt.track, tuple(piece.bars[prompt.start : prompt.end]), piece.original.ticks_per_quarter
            )
            form = {} if self.config.mode == "track" else self._form(piece, prompt)
            for system in self.systems:
                midi, meta = self._paths(system, prompt)
                if not meta.is_file():
                    continue
                record = json.loads(meta.read_text())
                if "skipped" in record:  # e.g. no bars next to the span to copy
                    self.skips[f"{system.name}/{prompt.id}"] = record["skipped"]
                    continue
                generated = _stored_generation(midi, piece.original, prompt.track)
                values = music_metrics(generated, piece.original, region, self.config.faithful)
                if self.config.mode != "track":
                    values["copy_rate"] = copy_rate(generated, piece.original, region, piece.bars)
                    values |= form
                requested, realised = _controls_from_json(record["requested"]), _controls_from_json(record["realised"])
                if self.config.mode == "track":  # one set of track controls: their total error
                    values["control_error"] = control_error(requested, realised)
                else:
                    values |= adherence(requested, realised)
                    for i, delta in enumerate(density_deltas(requested, realised)):
                        values[f"density_delta_bar_{i}"] = delta
                values["seconds"] = record["seconds"]
                rows += [
                    {"prompt": prompt.id, "system": system.name, "metric": k, "value": v} for k, v in values.items()
                ]
        return rows

    def _form(self, piece: Piece, prompt: Prompt) -> dict[str, float]:
        """Whether the span repeats elsewhere in the song (its best source window's other tracks match at least
        :data:`~midi_rwkv.structure.REPEAT_THRESHOLD`), for the report's split; the same for every system."""
        sources = SongStructure.of_piece(piece).sources(prompt.track, (prompt.start, prompt.end), k=1)
        match = sources[0].match if sources else 0.0
        return {"source_match": match, "has_repeat": float(match >= REPEAT_THRESHOLD)}

    def run(self) -> list[dict]:
        prompts = self.prompts()
        self.generate(prompts)
        rows = self.measure(prompts)
        atomic_write(self.out / "results.csv", lambda tmp: _write_csv(tmp, rows))
        return rows


def _stored_generation(midi: Path, original: Score, track: int) -> Score:
    """A stored generation, with the written track back at its index when it came out empty.

    The file keeps an empty track, but symusic drops tracks without notes when it reads one, so an empty whole
    track used to shift every later track down one, and the metrics measured the next track instead. Every
    other track is the original's (read the same way, so never empty), so a file one track short is missing
    exactly the written one.
    """
    generated = Score(str(midi))
    if len(generated.tracks) == len(original.tracks) - 1:
        empty = original.tracks[track].copy()
        empty.notes.clear()
        generated.tracks.insert(track, empty)
    return generated


def _write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["prompt", "system", "metric", "value"])
        writer.writeheader()
        writer.writerows(rows)
