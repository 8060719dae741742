"""Reading live prompts once: which prompt prefixes to keep, and counting what the engine really reads.

The tokenizer is track-major: a new bar lands inside every track's block, not at the end of the prompt, so a bar's
prompt is never simply the last one plus a bar. What consecutive prompts do share is their start:

  * within one bar, every part's prompt starts with the same tracks (the song's other tracks and the player, then
    the parts already written), up to the first track that differs;
  * from one bar to the next (while the window's first bar stays, see :func:`~midi_rwkv.live.window.window_start`),
    the first track that changes keeps its start up to its last final bar.

The generator's cache continues a prompt from the longest cached prompt it extends, so the engine reads these
prefixes once (:func:`shared_prefixes`, then ``Generator.prefill`` on each) and every later prompt continues from
them. :class:`CountingEngine` counts the tokens the model reads, to measure what the cache saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from midi_rwkv.live.window import LiveWindow


def shared_prefixes(window: LiveWindow, target: int, layout: str, ids: list[int], track_start: int,
                    final_bars: list[int], blocks: int) -> list[int]:
    """Prompt lengths worth keeping the state at, shortest first, for the prompt ``ids`` that writes window track
    ``target``: inside the first track written, the end of its final bars (the next bar's prompt for the same part
    starts so too), and the end of each of the first ``blocks`` tracks (that many start a later part's prompt in
    this bar too).

    ``final_bars``: per window track, how many of the window's bars are final. An unexpected layout gives ``[]``."""
    out, position = [], 0
    for k, track in enumerate(window.emitted(target, layout)):
        if track == target or (k > 0 and k >= blocks):
            break
        if position >= len(ids) or ids[position] != track_start:
            return []  # not the layout this expects: keep nothing rather than something wrong
        if k == 0 and final_bars[track] > 0:
            out.append(window.prefix_length(track, min(final_bars[track], window.grid.num_bars)))
        position += window.block_length(track)
        if k < blocks:
            out.append(position)
    return sorted({p for p in out if 0 < p < len(ids)})


def common_start(first: list[int], second: list[int]) -> int:
    """How many leading items two track orders share."""
    count = 0
    for a, b in zip(first, second):
        if a != b:
            break
        count += 1
    return count


@dataclass
class ReadCount:
    tokens: int = 0  # tokens the engine read from prompts
    calls: int = 0


class CountingEngine:
    """An engine (PyTorch or GGML) that counts the prompt tokens it reads; everything else is the engine's."""

    def __init__(self, engine: Any):
        self.inner, self.count = engine, ReadCount()
        self.config, self.name = engine.config, engine.name

    def prefill(self, tokens: list[int], state: Any | None) -> tuple[Tensor, Any]:
        self.count.tokens += len(tokens)
        self.count.calls += 1
        return self.inner.prefill(tokens, state)

    def fork(self, state: Any, k: int):
        return self.inner.fork(state, k)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)
