"""The PyTorch engine's thread choice: at most its ``threads``, and no more than the CPUs other programs leave free
(a fixed reading here; FreeCores itself is tested in test_ggml_threads), set before each prompt and each set of
candidates. No timings.

The engines here run a stand-in model that records the threads each call runs on and computes nothing: the choice
is what is tested, and nothing here needs several threads to compute (see scripts/mutation.sh on OMP_THREAD_LIMIT).
"""

from types import SimpleNamespace

import pytest
import torch

from midi_rwkv.inference.generator import TorchEngine
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.model import save_checkpoint
from tests.inference.test_ggml_threads import Fixed


class Counting:
    """A stand-in for RWKV7 that records the torch threads each call runs on and computes nothing."""

    config = SimpleNamespace(vocab_size=4)

    def __init__(self):
        self.threads = []

    def eval(self):
        return self

    def __call__(self, tokens, state, last_only=False):
        self.threads.append(torch.get_num_threads())
        return torch.zeros(1, 1, 4), SimpleNamespace(select=lambda index: state)

    def step(self, tokens, state):
        self.threads.append(torch.get_num_threads())
        return torch.zeros(len(tokens), 4), state


@pytest.fixture(autouse=True)
def torch_threads():
    """Each test starts on 5 torch threads (more than any it asks for) and leaves the process's count as it was."""
    before = torch.get_num_threads()
    torch.set_num_threads(5)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("free, expected", [(1, 1), (2, 2), (8, 2), (None, 2)])
def test_the_engine_runs_no_more_threads_than_cpus_free(free, expected):
    model = Counting()
    engine = TorchEngine(model, threads=2)
    assert engine.meter is not None
    engine.meter = Fixed(free)
    _, state = engine.prefill([1, 2, 3], None)
    torch.set_num_threads(5)
    engine.fork(state, 3).step([4, 5, 6])  # candidates choose again
    assert model.threads == [expected, expected]
    assert engine.meter.calls == 2 and engine.threads_used == {expected}


def test_one_thread_never_reads_the_cpus_and_no_threads_leaves_torch_alone():
    model = Counting()
    one = TorchEngine(model, threads=1)
    assert one.meter is None
    one.prefill([1, 2, 3], None)
    assert model.threads == [1] and one.threads_used == {1}
    torch.set_num_threads(5)
    alone = TorchEngine(model)  # as tests and benches make it: the process's threads are theirs to set
    assert alone.meter is None
    _, state = alone.prefill([1, 2, 3], None)
    alone.fork(state, 2).step([4, 5])
    assert model.threads[1:] == [5, 5] and alone.threads_used == set()


def test_pinned_threads_never_read_the_cpus():
    model = Counting()
    engine = TorchEngine(model, threads=3, share_cores=False)
    assert engine.meter is None
    engine.prefill([1, 2, 3], None)
    assert model.threads == [3] and engine.threads_used == {3}


def test_a_loaded_model_runs_at_most_the_threads_asked_or_the_process_s(tiny_model, tok, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    path = save_checkpoint(tiny_model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    asked = Infiller.load(path, engine="torch", threads=3).generator.engine
    assert isinstance(asked, TorchEngine) and asked.threads == 3 and asked.meter is not None
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # the process's count when it loads
    default = Infiller.load(path, engine="torch").generator.engine
    assert default.threads == 2 and default.meter is not None
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert Infiller.load(path, engine="torch").generator.engine.meter is None  # one thread: nothing to share
