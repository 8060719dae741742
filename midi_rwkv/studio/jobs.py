"""Generation jobs: K candidates made one by one on a worker thread, so the page can show each as it arrives,
report progress, and cancel between candidates."""

from __future__ import annotations

import copy
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.form import DEFAULT_STRUCTURE
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.inference.requests import ControlRequest, NewTrack
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.studio.session import Song, new_id

JOB_SECONDS = 120.0  # a job stops starting new candidates after this long
MAX_TOKENS = 1500  # per bar candidate: bounds its time (a whole track gets 2000 + 160 per bar)


@dataclass
class Request:
    """One Generate click, checked (see :func:`midi_rwkv.studio.server.parse_generate`)."""

    track: int
    bars: tuple[int, int]
    n: int
    sampler: SamplerConfig
    controls: ControlRequest
    free: bool
    style: str | None
    seed: int
    mode: str = "bars"  # bars | track (the whole track again) | new (a new track)
    program: int = 0  # the new track's General MIDI program
    drums: bool = False  # the new track is drums
    keep_register: bool = True  # only pitches in the register the part plays (Infiller's keep_register)
    structure: str = DEFAULT_STRUCTURE  # follow the song's form (inference.form): follow | vary | context | off


@dataclass
class Job:
    id: str
    song: Song
    request: Request
    status: str = "running"  # running | done | cancelled | error
    candidates: list[dict] = field(default_factory=list)
    error: str | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def view(self) -> dict:
        return {"id": self.id, "status": self.status, "done": len(self.candidates), "total": self.request.n,
                "candidates": list(self.candidates), "error": self.error}


class Jobs:
    """Runs jobs one at a time (the model is shared) on a daemon thread; keeps the last 64."""

    def __init__(self, infiller_for):
        self.infiller_for = infiller_for  # style name or None -> Infiller
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()  # one generation at a time

    def start(self, song: Song, request: Request) -> Job:
        job = Job(new_id(), song, request)
        self.jobs[job.id] = job
        while len(self.jobs) > 64:
            self.jobs.popitem(last=False)
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return job

    def _run(self, job: Job) -> None:
        with self.lock:
            started = time.monotonic()
            try:
                infiller: Infiller = self.infiller_for(job.request.style)
                r = job.request
                for i in range(r.n):
                    if job.cancelled.is_set():
                        job.status = "cancelled"
                        return
                    if time.monotonic() - started > JOB_SECONDS:
                        job.status, job.error = "done", f"stopped after {JOB_SECONDS:.0f} s"
                        return
                    with job.song.lock:
                        piece = job.song.piece()
                    seed = r.seed + i
                    c = _candidate(infiller, piece, r, seed, i)
                    with job.song.lock:
                        job.candidates.append(job.song.keep(c, seed, r))
                job.status = "done"
            except MidiRwkvError as err:
                job.status, job.error = "error", str(err)
            except Exception as err:  # never a stack trace in the page; the server log has it
                job.status, job.error = "error", f"generation failed ({type(err).__name__})"
                raise

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)


def _candidate(infiller: Infiller, piece, r: Request, seed: int, index: int):
    """Candidate ``index`` of the request (made one at a time: under ``follow`` only the first is the repeat)."""
    if infiller.keep_register != r.keep_register:  # the same model and engine, another register setting
        infiller = copy.copy(infiller)
        infiller.keep_register = r.keep_register
    if infiller.structure != r.structure:
        infiller = infiller.with_structure(r.structure)
    if r.mode == "track":
        return infiller.regenerate_track(piece, r.track, r.controls, 1, r.sampler, seed=seed)[0]
    if r.mode == "new":
        return infiller.add_track(piece, NewTrack(r.program, r.drums, r.controls), 1, r.sampler, seed=seed)[0]
    return infiller.infill(piece, r.track, r.bars, None if r.free else r.controls, 1, r.sampler,
                           max_tokens=MAX_TOKENS, seed=seed, free=r.free, first_candidate=index)[0]


def random_seed() -> int:
    return random.SystemRandom().randrange(1 << 31)
