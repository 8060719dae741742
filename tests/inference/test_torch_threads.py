"""The PyTorch engine's thread choice: at most its ``threads``, and no more than the CPUs other programs leave free
(a fixed reading here; FreeCores itself is tested in test_ggml_threads), set before each prompt and each set of
candidates. No timings."""

import pytest
import torch

from midi_rwkv.inference.generator import TorchEngine
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.model import save_checkpoint
from tests.inference.test_ggml_threads import Fixed


@pytest.fixture(autouse=True)
def torch_threads():
    """Each test starts on 4 torch threads (more than any reading here) and leaves the process's count as it was."""
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("free, expected", [(1, 1), (2, 2), (8, 2), (None, 2)])
def test_the_engine_runs_no_more_threads_than_cpus_free(tiny_model, free, expected):
    engine = TorchEngine(tiny_model, threads=2)
    assert engine.meter is not None
    engine.meter = Fixed(free)
    _, state = engine.prefill([1, 2, 3], None)
    assert torch.get_num_threads() == expected
    torch.set_num_threads(4)
    engine.fork(state, 3).step([4, 5, 6])  # candidates choose again
    assert torch.get_num_threads() == expected
    assert engine.meter.calls == 2 and engine.threads_used == {expected}


def test_one_thread_never_reads_the_cpus_and_no_threads_leaves_torch_alone(tiny_model):
    one = TorchEngine(tiny_model, threads=1)
    assert one.meter is None
    one.prefill([1, 2, 3], None)
    assert torch.get_num_threads() == 1 and one.threads_used == {1}
    torch.set_num_threads(4)
    alone = TorchEngine(tiny_model)  # as tests and benches make it: the process's threads are theirs to set
    assert alone.meter is None
    _, state = alone.prefill([1, 2, 3], None)
    alone.fork(state, 2)
    assert torch.get_num_threads() == 4 and alone.threads_used == set()


def test_pinned_threads_never_read_the_cpus(tiny_model):
    engine = TorchEngine(tiny_model, threads=3, share_cores=False)
    assert engine.meter is None
    engine.prefill([1, 2, 3], None)
    assert torch.get_num_threads() == 3 and engine.threads_used == {3}


def test_threads_change_nothing_in_the_logits(tiny_model):
    prompt = list(range(1, 60))
    one, two = TorchEngine(tiny_model, threads=2), TorchEngine(tiny_model, threads=2, share_cores=False)
    one.meter = Fixed(1)
    a, sa = one.prefill(prompt, None)
    b, sb = two.prefill(prompt, None)
    assert (one.threads_used, two.threads_used) == ({1}, {2})
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(one.fork(sa, 2).step([3, 4]), two.fork(sb, 2).step([3, 4]))


def test_a_loaded_model_runs_at_most_the_threads_asked_or_the_process_s(tiny_model, tok, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    asked = Infiller.load(path, engine="torch", threads=3).generator.engine
    assert isinstance(asked, TorchEngine) and asked.threads == 3 and asked.meter is not None
    torch.set_num_threads(2)
    default = Infiller.load(path, engine="torch").generator.engine
    assert default.threads == 2 and default.meter is not None  # the process's torch threads when it loaded
    torch.set_num_threads(1)
    assert Infiller.load(path, engine="torch").generator.engine.meter is None  # one thread: nothing to share
