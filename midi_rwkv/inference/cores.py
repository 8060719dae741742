"""How many CPUs other programs leave free: the reading behind both engines' thread counts.

On a machine shared with other programs, threads that meet at a barrier after every operation (llama.cpp's, and
PyTorch's OpenMP threads) spin while a partner is descheduled, so a second thread on a busy core makes a batch
several times slower (docs/inference.md, "Why prompt reading speed varies"). :class:`FreeCores` tells how many
CPUs this process could use without that.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

BUSY_LIMIT = 0.25  # a CPU on which other programs ran more than this share of the time is not free
MIN_WINDOW = 0.2  # seconds: the shortest span FreeCores reads (/proc/stat counts in 1/100 s)
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


class FreeCores:
    """How many of the CPUs this process may run on other programs left free since the last reading.

    Between two readings: the busy time of those CPUs (``/proc/stat``: user, nice, system, irq, softirq and
    steal) less this process's own CPU time (its spinning threads included) is what other programs used; a
    CPU counts as free when they used less than :data:`BUSY_LIMIT` of it. Where ``/proc/stat`` cannot be read
    (not Linux) it knows nothing and says None.
    """

    def __init__(self, stat: str | Path = "/proc/stat", cpus: set[int] | None = None,
                 clock=time.monotonic, own=time.process_time, sleep=time.sleep):
        self.stat, self.cpus = Path(stat), cpus if cpus is not None else _affinity()
        self.clock, self.own, self.sleep = clock, own, sleep
        self.lock = threading.Lock()
        self.mark = self._reading()
        self.last: int | None = None  # the previous answer, kept while a span is too short to read

    def _busy(self) -> float | None:
        """Seconds the CPUs in ``self.cpus`` have been busy since boot, or None."""
        try:
            lines = self.stat.read_text().splitlines()
        except OSError:
            return None
        busy, seen = 0, 0
        for line in lines:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in self.cpus:
                ticks = [int(f) for f in fields[:8]] + [0] * (8 - len(fields[:8]))
                busy += ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
                seen += 1
        return busy / _TICK if seen else None

    def _reading(self) -> tuple[float, float, float] | None:
        busy = self._busy()
        return None if busy is None else (self.clock(), busy, self.own())

    def others(self, now: tuple[float, float, float]) -> float:
        """CPUs' worth of time other programs used between the mark and ``now``."""
        (t0, busy0, own0), (t1, busy1, own1) = self.mark, now
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)

    def count(self) -> int | None:
        """The free CPUs (at least 1), read over the span since the previous count; None where unknown.

        A span shorter than :data:`MIN_WINDOW` keeps the previous answer (the span goes on growing); the first
        count waits out the rest of its span (at most MIN_WINDOW seconds after this object was made).
        """
        with self.lock:
            if self.mark is None:
                return None
            now = self._reading()
            if now is None:
                return None
            if now[0] - self.mark[0] < MIN_WINDOW:
                if self.last is not None:
                    return self.last
                self.sleep(MIN_WINDOW - (now[0] - self.mark[0]))
                now = self._reading()
                if now is None:
                    return None
            self.last = max(1, math.floor(len(self.cpus) - self.others(now) + BUSY_LIMIT))
            self.mark = now
            return self.last


_free_cores = FreeCores()  # one per process, reading from the import on (so the first span is rarely short)


def free_cores() -> FreeCores:
    return _free_cores


def core_meter(share_cores: bool, ceiling: int) -> FreeCores | None:
    """The meter an engine reads before each prompt and each set of candidates: none when it never runs more than
    one thread, or runs all of them however busy the CPUs are (``share_cores=False``)."""
    return free_cores() if share_cores and ceiling > 1 else None


def threads_to_run(meter: FreeCores | None, ceiling: int) -> int:
    """At most ``ceiling`` threads, and no more than the CPUs ``meter`` finds free (all of them without a meter, or
    where it knows nothing): the rule of both engines, read before each prompt and each set of candidates."""
    free = meter.count() if meter is not None else None
    return ceiling if free is None else min(ceiling, free)
