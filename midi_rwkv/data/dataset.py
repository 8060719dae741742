"""The training Dataset, a step-driven sampler, and the collator.

Every example is drawn with a random generator seeded by (seed, step, slot), so a run that stops
and resumes at step s sees exactly the batches an uninterrupted run would have seen.

With length grouping (``group`` > 1), the examples of ``group`` consecutive steps are drawn together,
sorted by length and cut into that many batches, so that a batch holds sequences of similar length
and carries little padding (padding is computed and thrown away). The examples a run sees are the
same; which step sees which of a group's examples changes.

Labels are the next token, with -100 (no loss) where the next token is one the model is given
rather than asked for: attribute controls, ``Infill_Bar``, ``Infill_Track``, ``FillBar_Start``
(docs/original-release.md#loss-masking) and padding.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from midi_rwkv.tokenizer.examples import ExampleBuilder, ExampleConfig, ExampleDrawer

if TYPE_CHECKING:  # MIDI sources only: training from a compiled corpus runs without MidiTok and symusic
    from midi_rwkv.data.corpora import Corpus
    from midi_rwkv.tokenizer import InfillTokenizer

IGNORE = -100


def unlearned_ids(tokenizer: InfillTokenizer) -> frozenset[int]:
    """Model ids that get no loss as targets."""
    vocab = tokenizer.codec.vocab
    return frozenset(vocab.control_ids) | {
        vocab[t] for t in ("PAD_None", "Infill_Bar", "Infill_Track", "FillBar_Start")
    }


def make_labels(ids: list[int], unlearned: frozenset[int]) -> tuple[list[int], list[int]]:
    """(inputs, labels) for next-token prediction with loss masking."""
    return ids[:-1], [IGNORE if t in unlearned else t for t in ids[1:]]


class DrawnDataset(Dataset):
    """Random infilling examples drawn from sources (pieces); keys are (position in ``indices``, example seed)."""

    def __init__(self, drawer: ExampleDrawer, indices: list[int], unlearned: frozenset[int]):
        self.drawer, self.indices, self.unlearned = drawer, list(indices), unlearned

    def __len__(self) -> int:
        return len(self.indices)

    def source(self, index: int):
        """What the drawer draws from for piece ``index``."""
        return index

    def __getitem__(self, key: tuple[int, int]) -> dict | None:
        position, seed = key
        seq = self.drawer(self.source(self.indices[position]), random.Random(seed))
        if seq is None:
            return None
        inputs, labels = make_labels(seq.ids, self.unlearned)
        return {"input_ids": inputs, "labels": labels}


class InfillDataset(DrawnDataset):
    """Examples drawn from a MIDI corpus's pieces (each loaded and tokenized on every draw)."""

    def __init__(self, corpus: Corpus, indices: list[int], tokenizer: InfillTokenizer, config: ExampleConfig):
        super().__init__(ExampleBuilder(tokenizer, config), indices, unlearned_ids(tokenizer))
        self.corpus, self.tokenizer = corpus, tokenizer

    def source(self, index: int):
        return self.corpus.load(index)


class StepSampler(Sampler):
    """Batches of (position, seed) keys for steps ``start .. total - 1``.

    Epoch e visits the dataset in a permutation seeded by (seed, e); each example's seed is derived
    from (seed, step, slot). Starting at ``start`` reproduces an uninterrupted run's remaining batches.
    With ``world`` processes, a step's global batch has ``world * batch_size`` slots and process ``rank``
    takes its own ``batch_size`` of them, so N processes see exactly the examples one process with an
    N times larger batch would.
    """

    def __init__(self, size: int, batch_size: int, total_steps: int, start: int = 0, seed: int = 0, rank: int = 0,
                 world: int = 1):
        global_batch = batch_size * world
        if size == 0 or size < global_batch:
            raise ValueError(f"{size} pieces are fewer than one batch of {global_batch}")
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in a world of {world}")
        self.size, self.batch_size, self.total, self.start, self.seed = size, batch_size, total_steps, start, seed
        self.rank, self.world = rank, world
        self.steps_per_epoch = size // global_batch

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order, epoch = None, -1
        global_batch = self.batch_size * self.world
        mine = range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        for step in range(self.start, self.total):
            if step // self.steps_per_epoch != epoch:
                epoch = step // self.steps_per_epoch
                order = torch.randperm(
                    self.size, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch)
                ).tolist()
            first = (step % self.steps_per_epoch) * global_batch
            yield [(order[first + slot], hash((self.seed, step, slot)) & 0x7FFFFFFF) for slot in mine]


class Collator:
    """Right-pads a batch to its longest sequence (PAD inputs, -100 labels; ``mask`` marks the real positions).

    It never truncates: a sequence longer than ``max_len`` is an error (the example builder keeps
    the section, ``FillBar_End`` included, within the limit). Examples that could not be built
    (``None``) are dropped and counted, in ``self.dropped`` and in each batch's ``"dropped"``
    (the one that reaches the training process when collation runs in DataLoader workers).
    """

    def __init__(self, max_len: int, pad_id: int = 0):
        self.max_len, self.pad_id, self.dropped = max_len, pad_id, 0

    def __call__(self, batch: list[dict | None]) -> dict[str, torch.Tensor]:
        items = [b for b in batch if b is not None]
        dropped = len(batch) - len(items)
        self.dropped += dropped
        if not items:
            raise RuntimeError("no example in this batch could be built")
        longest = max(len(b["input_ids"]) for b in items)
        if longest > self.max_len:
            raise ValueError(
                f"an example has {longest} tokens, more than the context length {self.max_len}; refusing to cut it"
            )
        inputs = torch.full((len(items), longest), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), longest), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.bool)  # real positions (not padding)
        for row, b in enumerate(items):
            inputs[row, : len(b["input_ids"])] = torch.tensor(b["input_ids"])
            mask[row, : len(b["input_ids"])] = True
            labels[row, : len(b["labels"])] = torch.tensor(b["labels"])
        return {"input_ids": inputs, "labels": labels, "mask": mask, "dropped": dropped}


class GroupSampler(Sampler):
    """The keys of every process's share of :class:`StepSampler`'s steps, ``group`` steps at a time: one list per group
    of steps ``g * group ..``, from the group that holds step ``start`` (the last group may be shorter)."""

    def __init__(self, steps: StepSampler, group: int):
        self.group, self.first = group, steps.start - steps.start % group
        self.steps = StepSampler(steps.size, steps.batch_size * steps.world, steps.total, self.first, steps.seed)

    def __len__(self) -> int:
        return -(-len(self.steps) // self.group)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        keys: list[tuple[int, int]] = []
        for step, batch in enumerate(self.steps, start=1):
            keys += batch
            if step % self.group == 0:
                yield keys
                keys = []
        if keys:
            yield keys


def _as_list(items: list) -> list:  # the collate_fn of a group: examples travel to the training process as they are
    return items


class LengthGroupedBatches:
    """Batches for steps ``start .. total - 1`` in which sequences of similar length travel together.

    The examples of each group of steps' global batches (drawn by a DataLoader, so ``workers`` can draw them) are
    sorted by length and cut into one global batch per step, in an order shuffled by (seed, group); process ``rank``
    of ``world`` takes every world-th example of it. So N processes still see exactly the batches one process with
    an N times larger batch would; each process draws the whole group for that (from a compiled corpus, a cost of
    about 0.2 % of a step per process). Examples that could not be built are spread over the steps (the collator
    counts them as dropped).
    """

    def __init__(self, data: Dataset, sampler: StepSampler, group: int, collate: Collator, workers: int = 0):
        self.groups = GroupSampler(sampler, group)
        self.seed, self.collate = sampler.seed, collate
        self.rank, self.world, self.global_batch = sampler.rank, sampler.world, sampler.batch_size * sampler.world
        self.skip, self.length = sampler.start - self.groups.first, len(sampler)
        self.loader = DataLoader(data, batch_sampler=self.groups, collate_fn=_as_list, num_workers=workers,
                                 persistent_workers=workers > 0)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        skip = self.skip
        for index, items in enumerate(self.loader):
            built = sorted((b for b in items if b is not None), key=lambda b: len(b["input_ids"]))
            steps = len(items) // self.global_batch
            cuts = [len(built) * i // steps for i in range(steps + 1)]
            order = torch.randperm(steps, generator=torch.Generator().manual_seed(
                self.seed * 100003 + (self.groups.first // self.groups.group + index))).tolist()
            for position in order[skip:]:
                batch = built[cuts[position]: cuts[position + 1]]
                batch += [None] * (self.global_batch - len(batch))
                yield self.collate(batch[self.rank:: self.world])
            skip = 0


def loader_of(
    data: Dataset,
    ctx_len: int,
    batch: int,
    steps: int,
    start: int = 0,
    seed: int = 0,
    workers: int = 0,
    rank: int = 0,
    world: int = 1,
    group: int = 1,
) -> DataLoader | LengthGroupedBatches:
    """Batches of random examples of ``data`` (keyed by (position, seed)) for steps ``start .. steps - 1``; ``rank``
    of ``world`` processes takes its share of each step's global batch (see :class:`StepSampler`). With ``group`` > 1,
    the examples of ``group`` steps' global batches are sorted by length and neighbours batched together
    (:class:`LengthGroupedBatches`).
    """
    sampler = StepSampler(len(data), min(batch, len(data) // world), steps, start, seed, rank, world)
    if group > 1:
        return LengthGroupedBatches(data, sampler, group, Collator(ctx_len), workers)
    return DataLoader(
        data, batch_sampler=sampler, collate_fn=Collator(ctx_len), num_workers=workers, persistent_workers=workers > 0
    )

