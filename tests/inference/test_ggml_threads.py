"""The GGML engine's thread choice: FreeCores reads what other programs left free from /proc/stat (here a
written file, a fake clock and a fake CPU time), and the engine runs no more threads than that. No timings."""

import pytest
import torch

from midi_rwkv.inference import ggml
from midi_rwkv.inference import cores
from midi_rwkv.inference.cores import BUSY_LIMIT, MIN_WINDOW, FreeCores
from midi_rwkv.inference.ggml.gguf import export_gguf
from midi_rwkv.model import RWKV7, RWKVConfig, init_weights

needs_llama = pytest.mark.skipif(not ggml.available(), reason="llama-cpp-python not installed (pip install '.[ggml]')")
HZ = cores._TICK


class Machine:
    """A /proc/stat file with per-CPU busy and idle ticks, a clock and this process's CPU time, all moved by hand."""

    def __init__(self, path, cpus: int = 2):
        self.path, self.now, self.own = path, 100.0, 5.0
        self.busy, self.idle = [0] * cpus, [0] * cpus
        self.slept = []
        self.write()

    def write(self):
        # user nice system idle iowait irq softirq steal guest guest_nice: busy split over user, system and steal
        lines = [f"cpu  {sum(self.busy)} 0 0 {sum(self.idle)} 0 0 0 0 0 0"]
        for i, (b, idle) in enumerate(zip(self.busy, self.idle)):
            lines.append(f"cpu{i} {b - b // 2 - b // 4} 0 {b // 2} {idle} 7 0 0 {b // 4} 0 0")
        self.path.write_text("\n".join(lines + ["intr 1 2 3", "procs_running 3"]) + "\n")

    def run(self, seconds: float, others: list[float], ours: float = 0.0):
        """``seconds`` pass; other programs keep ``others[i]`` of CPU i busy; this process uses ``ours`` CPUs."""
        self.now += seconds
        self.own += ours * seconds
        spread = [o + ours / len(others) for o in others]
        for i, share in enumerate(spread):
            self.busy[i] += round(share * seconds * HZ)
            self.idle[i] += round((1 - share) * seconds * HZ)
        self.write()

    def sleep(self, seconds: float):
        self.slept.append(seconds)
        self.run(seconds, [0.0] * len(self.busy))

    def meter(self, cpus=None) -> FreeCores:
        return FreeCores(self.path, cpus if cpus is not None else set(range(len(self.busy))),
                         clock=lambda: self.now, own=lambda: self.own, sleep=self.sleep)


@pytest.mark.parametrize(
    "others, free",
    [
        ([0.0, 0.0], 2),  # an idle machine: both
        ([0.1, 0.1], 2),  # background noise under BUSY_LIMIT in all: both
        ([1.0, 0.0], 1),  # one core taken (a training run): one
        ([0.2, 0.2], 1),  # 0.4 of a CPU in all: not two free ones
        ([1.0, 1.0], 1),  # everything taken: still one (the engine always runs)
    ],
)
def test_free_cores_counts_what_other_programs_leave(tmp_path, others, free):
    machine = Machine(tmp_path / "stat")
    meter = machine.meter()
    machine.run(1.0, others)
    assert meter.count() == free


def test_this_process_own_time_is_not_counted_as_others(tmp_path):
    machine = Machine(tmp_path / "stat")
    meter = machine.meter()
    machine.run(1.0, [0.0, 0.0], ours=2.0)  # our two spinning threads filled both CPUs
    assert meter.count() == 2
    machine.run(1.0, [0.6, 0.0], ours=1.4)  # another program got 0.6 of a CPU beside them
    assert meter.count() == 1


def test_busy_limit_is_where_a_cpu_stops_counting_as_free(tmp_path):
    below, above = BUSY_LIMIT - 0.05, BUSY_LIMIT + 0.05
    machine = Machine(tmp_path / "stat")
    meter = machine.meter()
    machine.run(2.0, [below, 0.0])
    assert meter.count() == 2
    machine.run(2.0, [above, 0.0])
    assert meter.count() == 1


def test_each_count_reads_only_the_span_since_the_previous_one(tmp_path):
    machine = Machine(tmp_path / "stat")
    meter = machine.meter()
    machine.run(60.0, [0.0, 0.0])
    assert meter.count() == 2
    machine.run(1.0, [1.0, 0.0])  # a minute idle before does not hide the core taken since
    assert meter.count() == 1
    machine.run(1.0, [0.0, 0.0])
    assert meter.count() == 2


def test_a_short_span_keeps_the_previous_answer_and_goes_on_growing(tmp_path):
    machine = Machine(tmp_path / "stat")
    meter = machine.meter()
    machine.run(1.0, [1.0, 0.0])
    assert meter.count() == 1
    machine.run(MIN_WINDOW / 4, [0.0, 0.0])
    assert meter.count() == 1  # too short to read: the last answer
    machine.run(MIN_WINDOW, [0.0, 0.0])
    assert meter.count() == 2  # the whole span since the last reading, now long enough
    assert machine.slept == []


def test_the_first_count_waits_out_a_short_span(tmp_path):
    machine = Machine(tmp_path / "stat")
    meter = machine.meter()
    machine.run(MIN_WINDOW / 4, [0.0, 0.0])
    assert meter.count() == 2
    assert machine.slept == [pytest.approx(MIN_WINDOW * 3 / 4)]


def test_only_the_cpus_this_process_may_use_count(tmp_path):
    machine = Machine(tmp_path / "stat", cpus=4)
    meter = machine.meter(cpus={2, 3})
    machine.run(1.0, [1.0, 1.0, 0.0, 0.0])  # CPUs 0 and 1 are taken, but this process runs on 2 and 3
    assert meter.count() == 2
    machine.run(1.0, [0.0, 0.0, 1.0, 0.0])
    assert meter.count() == 1


def test_without_proc_stat_it_knows_nothing(tmp_path):
    meter = FreeCores(tmp_path / "missing", {0, 1})
    assert meter.count() is None
    machine = Machine(tmp_path / "stat")
    meter = machine.meter(cpus={5})  # no line for CPU 5
    assert meter.count() is None


# ---- the engine --------------------------------------------------------------------------------


class Fixed:
    """A FreeCores that always finds ``n`` CPUs free (None: knows nothing)."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def count(self):
        self.calls += 1
        return self.n


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory):
    torch.manual_seed(0)
    model = init_weights(RWKV7(RWKVConfig(n_layer=2, n_embd=128, vocab_size=300, head_size=64, ctx_len=256)), seed=0)
    return export_gguf(model.eval(), tmp_path_factory.mktemp("gguf") / "m.f16.gguf", "f16")


@needs_llama
def test_one_thread_asked_never_reads_the_cpus(gguf_file):
    from midi_rwkv.inference.ggml.engine import GGMLEngine

    engine = GGMLEngine(gguf_file, threads=1)
    assert engine.meter is None
    engine.prefill([1, 2, 3], None)
    assert engine.threads_used == {1}


@needs_llama
@pytest.mark.parametrize("free, expected", [(1, (1, 1)), (2, (2, 2)), (8, (2, 2)), (None, (2, 2))])
def test_the_engine_runs_no_more_threads_than_cpus_free(gguf_file, free, expected):
    from midi_rwkv.inference.ggml.engine import GGMLEngine

    engine = GGMLEngine(gguf_file, threads=2)
    engine.meter = Fixed(free)
    logits, state = engine.prefill(list(range(1, 40)), None)
    assert engine.running == expected
    assert engine.llama.llama_n_threads(engine.ctx) == expected[0]
    assert engine.llama.llama_n_threads_batch(engine.ctx) == expected[1]
    streams = engine.fork(state, 3)  # candidates choose again
    streams.step([5, 6, 7])
    assert engine.llama.llama_n_threads_batch(engine.ctx) == expected[1]
    assert engine.meter.calls == 2  # once per prompt, once per set of candidates
    assert engine.threads_used == {expected[1]}


@needs_llama
def test_threads_change_nothing_in_the_logits(gguf_file):
    from midi_rwkv.inference.ggml.engine import GGMLEngine

    prompt = list(range(1, 60))
    one = GGMLEngine(gguf_file, threads=2)
    one.meter = Fixed(1)
    two = GGMLEngine(gguf_file, threads=2, share_cores=False)
    assert two.meter is None
    a, sa = one.prefill(prompt, None)
    b, sb = two.prefill(prompt, None)
    assert (one.running, two.running) == ((1, 1), (2, 2))
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(one.fork(sa, 2).step([3, 4]), two.fork(sb, 2).step([3, 4]), rtol=1e-3, atol=1e-3)
