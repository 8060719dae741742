"""Sampling from logits: temperature, repetition penalty, epsilon cutoff, top-k, top-p (in that order).

The paper evaluates with temperature 1.0 and a repetition penalty of 1.2 (docs/original-release.md#sampling); our
defaults, temperature 0.8 and no penalty, were chosen by measurement (docs/inference.md, "Sampling"): the penalty counts
every token of the prompt as seen, so it pushes the model away from the pitches and rhythms the song already
uses.
Whole and new tracks keep the paper's settings (:data:`TRACK_SAMPLER`).
Unlike the original, the repetition penalty has the usual (Hugging Face) meaning: a seen token's positive
logit is divided by the penalty and a negative one multiplied, so both become less likely (the original
divides negative logits, making seen tokens *more* likely, docs/original-release.md#repetition-penalty).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from midi_rwkv.settings import require, setting


@dataclass
class SamplerConfig:
    temperature: float = setting(0.8, "sampling temperature, 0 = greedy (the paper: 1.0)")
    top_k: int = setting(20, "keep the k most likely tokens, 0 = off")
    top_p: float = setting(0.95, "nucleus sampling threshold, 1 = off")
    epsilon: float = setting(9e-4, "drop tokens below this probability, 0 = off")
    repetition_penalty: float = setting(1.0, "penalty on tokens already seen (the prompt's too), 1 = off "
                                        "(the paper: 1.2)")

    def __post_init__(self):
        require(self.temperature >= 0 and self.top_k >= 0 and 0 < self.top_p <= 1 and self.epsilon >= 0
                and self.repetition_penalty > 0, f"invalid sampler settings: {self}")


# Whole and new tracks keep the paper's settings: without the repetition penalty the shipped model writes only
# bar lines in most whole tracks (21 of 24 POP909 tracks came out empty; with it, 7 of 48).
TRACK_SAMPLER = SamplerConfig(temperature=1.0, repetition_penalty=1.2)


def default_sampler(mode: str) -> SamplerConfig:
    """The sampling a fill gets when none is given: ``bars`` the defaults; a whole or new track (``track``, ``new``)
    :data:`TRACK_SAMPLER`."""
    return SamplerConfig() if mode == "bars" else TRACK_SAMPLER


def filter_logits(
    logits: Tensor, config: SamplerConfig, seen: Tensor | None = None, banned: Tensor | None = None
) -> Tensor:
    """Apply every rule to ``logits`` [K, V]; ``seen``/``banned`` are boolean [K, V] or [V] masks."""
    return _filter(logits, config, seen, banned)[0]


def _filter(logits, config, seen, banned) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
    """The filtered scores, and with top-k on, the k survivors' (scores, ids), best first."""
    scores = logits.float().clone()
    if banned is not None:
        scores = scores.masked_fill(banned, float("-inf"))
    if config.temperature > 0 and config.temperature != 1:
        scores = scores / config.temperature
    if seen is not None and config.repetition_penalty != 1:
        penalised = torch.where(scores > 0, scores / config.repetition_penalty, scores * config.repetition_penalty)
        scores = torch.where(seen, penalised, scores)
    if config.epsilon > 0:
        probs = scores.softmax(-1)
        keep_best = probs == probs.max(-1, keepdim=True).values  # never drop everything
        scores = scores.masked_fill((probs < config.epsilon) & ~keep_best, float("-inf"))
    top = order = None
    top_k = 0 < config.top_k < scores.shape[-1]
    if top_k:  # exactly k survive (ties at the k-th are broken by topk)
        top, order = scores.topk(config.top_k, dim=-1)
        scores = torch.full_like(scores, float("-inf")).scatter(-1, order, top)
    if config.top_p < 1:
        if order is None:  # without top-k, the whole vocabulary is sorted (slow: ~5 ms for 8 x 16,000)
            top, order = scores.sort(-1, descending=True)
        cumulative = top.softmax(-1).cumsum(-1)
        remove = cumulative > config.top_p
        remove[..., 1:] = remove[..., :-1].clone()  # keep the token that crosses the threshold
        remove[..., 0] = False
        top = top.masked_fill(remove, float("-inf"))
        scores = scores.scatter(-1, order, top)
    return scores, (top, order) if top_k else None


def sample(
    logits: Tensor, config: SamplerConfig, generator: torch.Generator | None = None, seen=None, banned=None
) -> Tensor:
    """One token id per row of ``logits`` [K, V].

    With top-k on, the draw is among the k survivors only: the same distribution, but torch's
    multinomial over the whole vocabulary costs ~4 ms for 8 x 16,000 (a decoding step of the
    GGML engine on the paper-size model takes ~20 ms).
    """
    scores, survivors = _filter(logits, config, seen, banned)
    if config.temperature == 0:
        return scores.argmax(-1)
    if survivors is not None:
        top, order = survivors
        return order.gather(-1, torch.multinomial(top.softmax(-1), 1, generator=generator)).squeeze(-1)
    return torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(-1)
