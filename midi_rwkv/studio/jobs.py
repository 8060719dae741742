"""Generation jobs: K candidates made one by one on a worker thread, so the page can show each as it arrives,
report progress, and cancel between candidates."""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.inference.requests import BarFill, ControlRequest, Fill, InfillRequest, NewTrack, TrackFill
from midi_rwkv.studio.session import Song, new_id

JOB_SECONDS = 120.0  # a job stops starting new candidates after this long


@dataclass(frozen=True)
class Target:
    """What a Generate click writes, as the song keeps its candidates: bars of a track, the whole track again
    (``bars`` then covers the piece), or a new track (``track`` is the next track number)."""

    mode: str  # bars | track | new
    track: int
    bars: tuple[int, int]
    program: int = 0  # the track's General MIDI program (a new track's, or the one kept)
    drums: bool = False

    def fill(self, controls: ControlRequest) -> Fill:
        if self.mode == "new":
            return NewTrack(self.program, self.drums, controls)
        if self.mode == "track":
            return TrackFill(self.track, controls)
        return BarFill(self.track, self.bars, controls)


@dataclass
class Job:
    id: str
    song: Song
    request: InfillRequest  # one fill; its options' seed is the first candidate's
    target: Target
    style: str | None = None  # a style preset's name (None: the launch's --state, if any)
    status: str = "running"  # running | done | cancelled | error
    candidates: list[dict] = field(default_factory=list)
    error: str | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def view(self) -> dict:
        return {"id": self.id, "status": self.status, "done": len(self.candidates), "total": self.request.options.n,
                "candidates": list(self.candidates), "error": self.error}


class Jobs:
    """Runs jobs one at a time (the model is shared) on a daemon thread; keeps the last 64."""

    def __init__(self, infiller_for):
        self.infiller_for = infiller_for  # style name or None -> Infiller
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()  # one generation at a time

    def start(self, song: Song, request: InfillRequest, target: Target, style: str | None = None) -> Job:
        job = Job(new_id(), song, request, target, style)
        self.jobs[job.id] = job
        while len(self.jobs) > 64:
            self.jobs.popitem(last=False)
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return job

    def _run(self, job: Job) -> None:
        with self.lock:
            started = time.monotonic()
            try:
                infiller: Infiller = self.infiller_for(job.style)
                for i in range(job.request.options.n):
                    if job.cancelled.is_set():
                        job.status = "cancelled"
                        return
                    if time.monotonic() - started > JOB_SECONDS:
                        job.status, job.error = "done", f"stopped after {JOB_SECONDS:.0f} s"
                        return
                    with job.song.lock:
                        piece = job.song.piece()
                    c = candidate(infiller, piece, job.request, i)
                    with job.song.lock:
                        job.candidates.append(job.song.keep(c, job.request.options.seed + i, job.target))
                job.status = "done"
            except MidiRwkvError as err:
                job.status, job.error = "error", str(err)
            except Exception as err:  # never a stack trace in the page; the server log has it
                job.status, job.error = "error", f"generation failed ({type(err).__name__})"
                raise

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)


def candidate(infiller: Infiller, piece, request: InfillRequest, index: int):
    """Candidate ``index`` of the request, made alone (so the page shows each as it arrives): seed + index, and under
    the ``follow`` structure setting only the first is the repeat itself. The shared infiller is not changed."""
    options = replace(request.options, n=1, seed=request.options.seed + index)
    return infiller.write(piece, replace(request, options=options), first_candidate=index)[0]


def random_seed() -> int:
    return random.SystemRandom().randrange(1 << 31)
