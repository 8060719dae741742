"""The generation loop: token ids in, token ids out. MIDI and the tokenizer stay outside it.

An engine computes the numbers: the PyTorch engine or the GGML engine, the user's choice (``--engine``). Both run
under this one :class:`Generator`. ("Backend" means only the WKV kernel under the PyTorch model:
``midi_rwkv.model.kernels``.)

A prompt is read once in sequence mode. Its state is cached, keyed by the prompt, and a longer
prompt that extends a cached one continues from it. K candidates start from copies of that state
and advance together, one token per stream per step. Per-stream rules (banned tokens, tokens to
inject, when to stop) come from a :class:`Constraint`.

The numbers come from an engine: :class:`TorchEngine` (the PyTorch model) or the
GGML engine (llama.cpp, ``midi_rwkv.inference.ggml``). Sampling, control injection and the
prompt cache are the generator's, the same for both.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from midi_rwkv.inference.cores import core_meter, threads_to_run
from midi_rwkv.inference.sampler import SamplerConfig, sample
from midi_rwkv.model import RWKV7, RWKVConfig, RWKVState


class Streams(Protocol):
    def step(self, tokens: list[int | None]) -> Tensor:
        """Feed one token per stream (None: the stream has finished) and return logits [K, V]."""


class Engine(Protocol):
    config: RWKVConfig
    name: str  # for people: which engine, which settings

    def prefill(self, tokens: list[int], state: Any | None) -> tuple[Tensor, Any]:
        """Read ``tokens`` from ``state`` (None: the initial state); logits [V] after the last one, and the state."""

    def fork(self, state: Any, k: int) -> Streams:
        """K streams, each starting from ``state``."""


# Tokens read at once. Peak memory of `midi-rwkv infill` stays flat (shipped model, a Beethoven quartet movement:
# 306 MB with 4 bars of context, 325 MB with the whole 10k-token song; 8,192-token chunks took 486 MB), at the same
# speed; what remains grows with the piece (its encoding), not with the prompt.
PREFILL_CHUNK = 1024


class TorchEngine:
    """The PyTorch model; ``initial_state`` (batch 1), e.g. a tuned style, starts every prompt.

    ``threads``: at most this many torch threads, set before each prompt and each set of candidates; with
    ``share_cores`` (the default) no more than :class:`~midi_rwkv.inference.cores.FreeCores` finds CPUs free,
    as the GGML engine does: PyTorch's OpenMP threads spin at a barrier after each operation too, and a second
    one on a core another program holds made an infill twice as slow (docs/inference.md, "Why prompt reading
    speed varies"). ``threads=None`` leaves the process's torch threads as they are. ``threads_used``: the
    counts it chose.
    """

    name = "PyTorch"

    def __init__(self, model: RWKV7, initial_state: RWKVState | None = None, threads: int | None = None,
                 share_cores: bool = True):
        self.model, self.config, self.initial_state = model.eval(), model.config, initial_state
        self.threads = threads
        self.meter = core_meter(share_cores, threads) if threads is not None else None
        self.threads_used: set[int] = set()

    def _share_cores(self) -> None:
        if self.threads is None:
            return
        running = threads_to_run(self.meter, self.threads)
        if torch.get_num_threads() != running:
            torch.set_num_threads(running)
        self.threads_used.add(running)

    @torch.no_grad()
    def prefill(self, tokens: list[int], state: RWKVState | None) -> tuple[Tensor, RWKVState]:
        """Read the prompt in chunks of :data:`PREFILL_CHUNK` tokens, so memory does not grow with its length."""
        self._share_cores()
        state = state if state is not None else self.initial_state
        for start in range(0, len(tokens), PREFILL_CHUNK):
            out, state = self.model(torch.tensor([tokens[start : start + PREFILL_CHUNK]]), state, last_only=True)
        return out[0, -1], state

    def fork(self, state: RWKVState, k: int) -> TorchStreams:
        self._share_cores()
        return TorchStreams(self.model, state.select([0] * k))


class TorchStreams:
    def __init__(self, model: RWKV7, state: RWKVState):
        self.model, self.state = model, state

    @torch.no_grad()
    def step(self, tokens: list[int | None]) -> Tensor:
        feed = torch.tensor([0 if t is None else t for t in tokens])  # PAD for finished streams, outputs ignored
        logits, self.state = self.model.step(feed, self.state)
        return logits


class Constraint:
    """Default rules: nothing banned, every sampled token fed back, never done."""

    done: bool = False

    def banned(self) -> Tensor | None:
        """Boolean [V] mask of tokens that must not be sampled next (or None)."""
        return None

    def after_sample(self, token: int) -> list[int]:
        """Tokens to feed for a sampled ``token``: usually ``[token]``; may replace or extend it."""
        return [token]

    def proposal(self) -> tuple[int, float] | None:
        """A token to mix into the model's distribution at the next sample, and its weight w: the token is drawn
        from (1 - w) p_model + w [token] (a copy distribution, as in cache language models). None: the model's
        alone."""
        return None


@dataclass
class Generation:
    ids: list[int] = field(default_factory=list)  # every token fed after the prompt
    sampled: int = 0  # how many of them were sampled (the rest were injected)
    stopped: str = "max_tokens"  # "done" when the constraint finished, else "max_tokens"
    seconds: float = 0.0
    prompt_tokens: int = 0  # length of the prompt it continued
    logprob: float = 0.0  # sum of the model's log-probabilities of the sampled tokens (before any filtering)

    @property
    def mean_logprob(self) -> float:
        """The model's own judgement of the candidate: mean log-probability per sampled token."""
        return self.logprob / self.sampled if self.sampled else float("-inf")


class Generator:
    """K candidates from one prompt, on any :class:`Engine`, with per-stream :class:`Constraint` rules."""

    def __init__(self, engine: Engine | RWKV7, cache_size: int = 8, initial_state: RWKVState | None = None):
        """``engine``: an :class:`Engine`, or a PyTorch model (with an optional ``initial_state``)."""
        if isinstance(engine, RWKV7):
            engine = TorchEngine(engine, initial_state)
        elif initial_state is not None:
            raise ValueError("initial_state goes to the engine")
        self.engine = engine
        self.config = engine.config
        self.vocab_size = engine.config.vocab_size
        self._cache: OrderedDict[tuple[int, ...], tuple[Tensor, Any]] = OrderedDict()
        self.cache_size = cache_size

    def prefill(self, prompt: list[int]) -> tuple[Tensor, Any]:
        """Logits [V] after the prompt and the state, from the cache when possible."""
        key = tuple(prompt)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        start, state, logits = 0, None, None
        for cached in self._cache:  # the longest cached prefix of this prompt
            if len(cached) > start and key[: len(cached)] == cached:
                start, (logits, state) = len(cached), self._cache[cached]
        if start < len(key):
            logits, state = self.engine.prefill(list(key[start:]), state)
        self._cache[key] = (logits, state)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return logits, state

    @torch.no_grad()
    def generate(
        self,
        prompt: list[int],
        constraints: list[Constraint],
        sampler: SamplerConfig | None = None,
        max_tokens: int = 2000,
        seed: int | None = None,
    ) -> list[Generation]:
        """One candidate per constraint, generated together from the prompt's state."""
        sampler = sampler or SamplerConfig()
        k = len(constraints)
        start = time.perf_counter()
        logits, state = self.prefill(prompt)
        logits = logits.expand(k, -1).clone()
        streams = self.engine.fork(state, k)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        seen = torch.zeros(k, self.vocab_size, dtype=torch.bool)
        seen[:, torch.tensor(sorted(set(prompt)), dtype=torch.long)] = True
        out = [Generation(prompt_tokens=len(prompt)) for _ in range(k)]
        pending: list[list[int]] = [[] for _ in range(k)]
        finished = [False] * k
        for _ in range(max_tokens):
            need = [i for i in range(k) if not finished[i] and not pending[i]]
            if need:
                banned = [constraints[i].banned() for i in need]
                mask = torch.stack(
                    [b if b is not None else torch.zeros(self.vocab_size, dtype=torch.bool) for b in banned]
                )
                drawn = sample(logits[need], sampler, generator, seen[need], mask)
                _mix_proposals(drawn, [constraints[i].proposal() for i in need], mask, generator)
                scores = torch.log_softmax(logits[need].float(), dim=-1).gather(1, drawn[:, None])[:, 0]
                for i, token, score in zip(need, drawn.tolist(), scores.tolist()):
                    out[i].sampled += 1
                    out[i].logprob += score
                    pending[i] = constraints[i].after_sample(token)
            feed: list[int | None] = []
            for i in range(k):
                if finished[i] or not pending[i]:
                    feed.append(None)
                    continue
                token = pending[i].pop(0)
                out[i].ids.append(token)
                seen[i, token] = True
                feed.append(token)
                if not pending[i] and constraints[i].done:
                    finished[i] = True
                    out[i].stopped = "done"
            if all(finished):
                break
            logits = streams.step(feed)
        elapsed = time.perf_counter() - start
        for g in out:
            g.seconds = elapsed
        return out


def _mix_proposals(drawn: Tensor, proposals: list[tuple[int, float] | None], banned: Tensor,
                   generator: torch.Generator | None) -> None:
    """Sample from (1 - w) p_model + w [token] per stream, in place: with probability w a stream takes its
    proposed token (never a banned one) instead of the model's draw. The random stream is read only when some
    stream has a proposal, so generations without one are unchanged."""
    if not any(p is not None and p[1] > 0 for p in proposals):
        return
    coins = torch.rand(len(proposals), generator=generator)
    for row, (proposal, coin) in enumerate(zip(proposals, coins.tolist())):
        if proposal is not None and coin < proposal[1] and not banned[row, proposal[0]]:
            drawn[row] = proposal[0]
