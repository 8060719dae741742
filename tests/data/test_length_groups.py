"""Length-grouped batches: the same examples as plain step batches, batched by length, resumable mid-group."""

import random

import pytest
from torch.utils.data import Dataset

from midi_rwkv.data.dataset import loader_of


class Lengths(Dataset):
    """Examples of a random length (1..200) per key; key (position, seed) -> a sequence that names its key. A key whose
    seed is divisible by ``unbuildable`` cannot be built (None), like an example the drawer gives up on."""

    def __init__(self, size: int = 40, unbuildable: int = 0):
        self.size, self.unbuildable = size, unbuildable

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        position, seed = key
        if self.unbuildable and seed % self.unbuildable == 0:
            return None
        n = random.Random(seed).randint(1, 200)
        return {"input_ids": [position + 1] * n, "labels": [seed % 1000] * n}


def examples(batches) -> list[tuple[int, int, int]]:
    """(first input id, first label, length) of every real row."""
    out = []
    for b in batches:
        for ids, labels, mask in zip(b["input_ids"], b["labels"], b["mask"]):
            out.append((int(ids[0]), int(labels[0]), int(mask.sum())))
    return out


def padding(batches) -> float:
    real = sum(int(b["mask"].sum()) for b in batches)
    return 1 - real / sum(b["mask"].numel() for b in batches)


def test_grouping_keeps_the_examples_and_cuts_padding():
    plain = list(loader_of(Lengths(), 256, batch=4, steps=32, seed=3))
    grouped = list(loader_of(Lengths(), 256, batch=4, steps=32, seed=3, group=8))
    assert len(grouped) == len(plain) == 32
    assert sorted(examples(grouped)) == sorted(examples(plain))  # the same examples, moved between steps of a group
    assert sorted(examples(grouped[:8])) == sorted(examples(plain[:8]))  # ... and only within their group
    assert padding(grouped) < padding(plain) / 3
    widths = [b["input_ids"].shape[1] for b in grouped]
    assert widths != sorted(widths)  # batches come in a shuffled order, not shortest first


@pytest.mark.parametrize("start", [1, 7, 8, 13, 30])
def test_a_resumed_run_sees_the_rest_of_an_uninterrupted_one(start):
    full = list(loader_of(Lengths(), 256, batch=3, steps=31, seed=5, group=8))  # 31: the last group is short
    rest = list(loader_of(Lengths(), 256, batch=3, steps=31, start=start, seed=5, group=8))
    assert len(rest) == 31 - start
    assert examples(rest) == examples(full[start:])


def test_processes_share_each_step_as_one_process_with_their_global_batch_would():
    one = list(loader_of(Lengths(), 256, batch=4, steps=8, seed=1, group=4))
    ranks = [list(loader_of(Lengths(), 256, batch=2, steps=8, seed=1, group=4, rank=r, world=2)) for r in (0, 1)]
    for step in range(8):
        assert sorted(examples([one[step]])) == sorted(examples([ranks[0][step], ranks[1][step]]))


def test_unbuildable_examples_are_spread_and_counted():
    grouped = list(loader_of(Lengths(unbuildable=3), 256, batch=4, steps=16, seed=2, group=8))
    plain = list(loader_of(Lengths(unbuildable=3), 256, batch=4, steps=16, seed=2))
    assert sum(b["dropped"] for b in grouped) == sum(b["dropped"] for b in plain) > 0
    assert all(len(b["input_ids"]) >= 1 for b in grouped)
    assert sorted(examples(grouped)) == sorted(examples(plain))


def test_workers_draw_the_same_batches():
    inline = list(loader_of(Lengths(), 256, batch=2, steps=6, seed=4, group=3))
    worker = list(loader_of(Lengths(), 256, batch=2, steps=6, seed=4, group=3, workers=1))
    assert examples(worker) == examples(inline)
