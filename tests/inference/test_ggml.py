"""The GGML engine: GGUF export (always), and llama.cpp against the PyTorch model (where llama-cpp-python
is installed).
"""

import sys

import gguf
import numpy as np
import pytest
import torch

from midi_rwkv.cli import main
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference import ggml
from midi_rwkv.inference.generator import Constraint, Generator, TorchEngine
from midi_rwkv.inference.ggml import choose_engine, state_blob
from midi_rwkv.inference.ggml.gguf import export_gguf, gguf_tensors, read_config
from midi_rwkv.inference.infiller import ControlRequest, Infiller
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.model import RWKV7, RWKVConfig, RWKVState, init_weights, save_checkpoint
from midi_rwkv.peft.adapters import StateAdapter
from tests.conftest import FIXTURES, note_tuples

CHORALE = FIXTURES / "bach_bwv66.6.mid"
GREEDY = SamplerConfig(temperature=0, repetition_penalty=1)


needs_llama = pytest.mark.skipif(not ggml.available(), reason="llama-cpp-python not installed (pip install '.[ggml]')")


def make_model(vocab: int = 663, head_size: int = 64) -> RWKV7:
    """Two 128-wide layers, perturbed so that every parameter matters (init zeros some).

    Heads are 64 wide: llama.cpp's WKV7 kernel reads heads in blocks of 32 floats under AVX2 and 64 under AVX-512,
    and refuses anything narrower, so 64 runs everywhere.
    """
    torch.manual_seed(0)
    m = init_weights(
        RWKV7(RWKVConfig(n_layer=2, n_embd=128, vocab_size=vocab, head_size=head_size, ctx_len=256)), seed=0
    )
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def gguf_files(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf")
    return {dtype: export_gguf(model, folder / f"m.{dtype}.gguf", dtype) for dtype in ("f32", "f16")}


def test_export_has_every_tensor_llama_cpp_loads_in_its_shape(model, gguf_files):
    reader = gguf.GGUFReader(str(gguf_files["f16"]))
    names = {t.name: t for t in reader.tensors}
    with_bias = ("token_embd_norm", "output_norm", "attn_norm", "attn_norm_2", "time_mix_ln")  # LayerNorms
    expected = set()
    for kind in gguf.MODEL_TENSORS[gguf.MODEL_ARCH.RWKV7]:
        template = gguf.TENSOR_NAMES[kind]
        for base in {template.format(bid=i) for i in range(model.config.n_layer)}:
            expected |= {f"{base}.weight"} | ({f"{base}.bias"} if base.split(".")[-1] in with_bias else set())
    assert set(names) == expected
    c = model.config

    def shape(name):
        return tuple(int(d) for d in names[name].shape)

    assert shape("blk.1.time_mix_w1.weight") == (c.n_embd, c.decay_lora)
    assert shape("blk.1.time_mix_v1.weight") == (c.n_embd, c.mv_lora)
    assert shape("blk.0.time_mix_v1.weight") == (c.n_embd, c.aaa_lora)  # layer 0: the a-LoRA's shapes
    assert shape("blk.0.time_mix_lerp_fused.weight") == (c.n_embd, 1, 1, 6)
    assert shape("blk.0.time_mix_r_k.weight") == (c.n_embd,)
    assert names["blk.0.time_mix_key.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert (
        names["blk.0.time_mix_w1.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    )  # kept, as llama.cpp's converter does
    assert read_config(gguf_files["f16"]) == (c, "f16") and read_config(gguf_files["f32"]) == (c, "f32")
    lerp = gguf_tensors(model)["blk.1.time_mix_lerp_fused.weight"]
    assert np.array_equal(lerp[3, 0, 0], model.blocks[1].att.x_v.detach().flatten().numpy())  # order r w k v a g


def test_export_refuses_unknown_dtypes_and_reads_only_its_own_files(model, tmp_path):
    with pytest.raises(MidiRwkvError, match="f32, f16"):
        export_gguf(model, tmp_path / "m.gguf", "q4")
    assert not list(tmp_path.iterdir())
    (tmp_path / "junk.gguf").write_bytes(b"not gguf")
    with pytest.raises(MidiRwkvError, match="not a readable GGUF"):
        read_config(tmp_path / "junk.gguf")


def test_state_bytes_round_trip(model):
    state = RWKVState.zeros(model.config, 1)
    for t in (state.att_shift, state.ffn_shift, state.wkv):
        t.normal_()
    back = state_blob.unpack(model.config, state_blob.pack(model.config, state, pos=7))
    assert all(
        torch.equal(a, b)
        for a, b in zip((state.att_shift, state.ffn_shift, state.wkv), (back.att_shift, back.ffn_shift, back.wkv))
    )
    with pytest.raises(MidiRwkvError, match="trailing"):
        state_blob.unpack(model.config, state_blob.pack(model.config, state, pos=7) + b"\0")


def test_auto_engine_without_llama_cpp_is_torch(monkeypatch):
    monkeypatch.setattr(ggml, "available", lambda: False)
    assert choose_engine("auto", 32) == "torch" and choose_engine("ggml", 32) == "ggml"


def test_asking_for_ggml_without_llama_cpp_is_one_clear_error(tmp_path, model, tok, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if not installed
    monkeypatch.setattr(ggml, "gguf_cache", lambda: tmp_path / "cache")
    path = save_checkpoint(model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    argv = ["infill", str(CHORALE), "--track", "1", "--bars", "3:3", "--model", str(path), "-o", str(tmp_path / "out")]
    assert main([*argv, "--engine", "ggml"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install '.[ggml]'" in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()
    assert main([*argv, "-n", "1", "--max-tokens", "100"]) == 0  # auto: the PyTorch engine
    assert "engine: PyTorch" in capsys.readouterr().out


# ---- llama.cpp itself ---------------------------------------------------------------------------------------------


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@needs_llama
@pytest.mark.parametrize("batch", [512, 16], ids=["one-batch", "chunked"])
def test_logits_and_state_match_pytorch(model, gguf_files, batch):
    from midi_rwkv.inference.ggml.engine import GGMLEngine

    prompt = torch.randint(0, 663, (45,), generator=torch.Generator().manual_seed(1)).tolist()
    want, want_state = TorchEngine(model).prefill(prompt, None)
    f32 = GGMLEngine(gguf_files["f32"], batch=batch)
    got, state = f32.prefill(prompt, None)
    assert rel(got, want) < 1e-4  # the bar for f32
    ours = f32.read_state(state)
    for name in ("att_shift", "ffn_shift", "wkv"):
        assert rel(getattr(ours, name), getattr(want_state, name)) < 1e-4, name
    f16, _ = GGMLEngine(gguf_files["f16"], batch=batch).prefill(prompt, None)
    assert f16.argmax() == want.argmax() and rel(f16, want) < 1e-2


@needs_llama
def test_generation_cache_and_forks_match_pytorch(model, gguf_files):
    from midi_rwkv.inference.ggml.engine import GGMLEngine

    class Stop(Constraint):  # streams that finish at different steps
        def __init__(self, n):
            self.n, self.done = n, False

        def after_sample(self, token):
            self.n -= 1
            self.done = self.n == 0
            return [token]

    prompt = torch.randint(0, 663, (30,), generator=torch.Generator().manual_seed(2)).tolist()
    torch_engine, ggml_engine = Generator(model), Generator(GGMLEngine(gguf_files["f32"]))
    want = torch_engine.generate(prompt, [Stop(n) for n in (12, 5, 9)], GREEDY, max_tokens=20)
    got = ggml_engine.generate(prompt, [Stop(n) for n in (12, 5, 9)], GREEDY, max_tokens=20)
    assert [g.ids for g in got] == [w.ids for w in want] and [len(g.ids) for g in got] == [12, 5, 9]
    many = [Stop(4) for _ in range(10)]  # more streams than the first context holds (8): it is rebuilt
    assert [g.ids for g in ggml_engine.generate(prompt, many, GREEDY)] == [want[0].ids[:4]] * 10
    longer = prompt + want[0].ids[:4]  # continues from the cached prompt's saved state
    assert rel(ggml_engine.prefill(longer)[0], torch_engine.prefill(longer)[0]) < 1e-4
    sampled = SamplerConfig()
    assert [g.ids for g in ggml_engine.generate(prompt, [Stop(10)] * 1, sampled, seed=3)] == [
        g.ids for g in ggml_engine.generate(prompt, [Stop(10)] * 1, sampled, seed=3)
    ]


@needs_llama
def test_a_tuned_initial_state_reaches_llama_cpp(model, gguf_files):
    from midi_rwkv.inference.ggml.engine import GGMLEngine

    style = StateAdapter(model)  # as tune-style makes it: a parameter, so the state requires grad
    with torch.no_grad():
        style.wkv.normal_(std=0.3, generator=torch.Generator().manual_seed(4))
    initial = style.initial_state(1)
    prompt = [5, 17, 300, 41]
    want, _ = TorchEngine(model, initial).prefill(prompt, None)
    got, _ = GGMLEngine(gguf_files["f32"], initial_state=initial).prefill(prompt, None)
    plain, _ = TorchEngine(model).prefill(prompt, None)
    assert rel(got, want) < 1e-4 and rel(plain, want) > 1e-2


@needs_llama
def test_narrow_heads_are_refused_not_miscomputed(tmp_path):
    from midi_rwkv.inference.ggml.engine import GGMLEngine

    path = export_gguf(make_model(head_size=16), tmp_path / "narrow.gguf", "f32")
    with pytest.raises(MidiRwkvError, match="blocks of"):
        GGMLEngine(path)
    assert choose_engine("auto", 16) == "torch"


@needs_llama
def test_infill_command_on_the_ggml_engine(tmp_path, model, tok, capsys, monkeypatch):
    monkeypatch.setattr(ggml, "gguf_cache", lambda: tmp_path / "cache")
    path = save_checkpoint(model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    argv = ["infill", str(CHORALE), "--track", "1", "--bars", "3:4", "-n", "2", "--seed", "0", "--model", str(path),
            "--max-tokens", "300", "--engine", "ggml-f32", "-o", str(tmp_path / "out")]
    assert main(argv) == 0
    assert "engine: GGML (llama.cpp, f32, 1 thread)" in capsys.readouterr().out
    assert len(list((tmp_path / "cache").glob("*.f32.gguf"))) == 1  # exported once, then cached
    # the same candidates as the PyTorch engine: greedy, so float noise cannot change a draw, and seeded, because
    # following the form mixes in the source's tokens by coin flips (with probability w, 0.66 in this span's bars)
    want = Infiller(Generator(model), tok).infill(
        tok.prepare(CHORALE), 1, (2, 4), ControlRequest(), 1, GREEDY, max_tokens=300, seed=0
    )
    got = Infiller.load(path, engine="ggml-f32").infill(
        tok.prepare(CHORALE), 1, (2, 4), ControlRequest(), 1, GREEDY, max_tokens=300, seed=0
    )
    assert got[0].generation.ids == want[0].generation.ids
    assert note_tuples(got[0].score.tracks[1]) == note_tuples(want[0].score.tracks[1])


@needs_llama
def test_export_command_and_a_gguf_model(tmp_path, model, tok, capsys):
    path = save_checkpoint(model, tmp_path / "m.pth")
    tok.save(tmp_path / "m.tokenizer.json")
    assert main(["export-gguf", "--model", str(path)]) == 0
    exported = tmp_path / "m.f16.gguf"
    assert exported.is_file() and "m.f16.gguf" in capsys.readouterr().out
    tok.save(tmp_path / "m.f16.tokenizer.json")
    argv = ["infill", str(CHORALE), "--track", "1", "--bars", "3:3", "-n", "1", "--model", str(exported),
            "--max-tokens", "200", "-o", str(tmp_path / "out")]
    assert main(argv) == 0 and len(list((tmp_path / "out").iterdir())) == 1
    assert main([*argv[:-2], "--engine", "torch", "-o", str(tmp_path / "o2")]) == 2
    assert "runs on the GGML engine" in capsys.readouterr().err and not (tmp_path / "o2").exists()
    other = export_gguf(make_model(vocab=700), tmp_path / "other.gguf", "f16")
    other_argv = [*argv[:-2], "--model", str(other), "--tokenizer", str(tmp_path / "m.tokenizer.json")]
    assert main([*other_argv, "-o", str(tmp_path / "o3")]) == 2
    assert "vocabulary of 700 tokens but the tokenizer has 663" in capsys.readouterr().err


@needs_llama
def test_whole_and_new_tracks_on_the_ggml_engine_match_pytorch(tmp_path, model, tok, gguf_files):
    from midi_rwkv.inference.ggml.engine import GGMLEngine
    from midi_rwkv.inference.requests import NewTrack

    piece = tok.prepare(CHORALE)
    torch_infiller = Infiller(Generator(model), tok)
    ggml_infiller = Infiller(Generator(GGMLEngine(gguf_files["f32"])), tok)
    for run in (lambda i: i.regenerate_track(piece, 2, n=2, sampler=GREEDY, max_tokens=400),
                lambda i: i.add_track(piece, NewTrack(program=33), n=1, sampler=GREEDY, max_tokens=400)):
        want, got = run(torch_infiller), run(ggml_infiller)
        assert [c.generation.ids for c in got] == [c.generation.ids for c in want]
        assert [[note_tuples(t) for t in c.score.tracks] for c in got] == [
            [note_tuples(t) for t in c.score.tracks] for c in want]
        assert all(c.generation.stopped == "done" for c in got) or all(c.generation.stopped != "done" for c in want)


def test_the_models_layout_reaches_its_gguf_and_its_prompts(tmp_path, model, tok, monkeypatch):
    from midi_rwkv.inference.ggml.gguf import read_layout

    path = save_checkpoint(model, tmp_path / "m.pth", extra={"layout": "target-last"})
    tok.save(tmp_path / "m.tokenizer.json")
    assert main(["export-gguf", "--model", str(path)]) == 0
    assert read_layout(tmp_path / "m.f16.gguf") == "target-last"
    assert read_layout(export_gguf(model, tmp_path / "plain.gguf")) == "file-order"
    infiller = Infiller.load(path, engine="torch")
    prompts = []
    generate = infiller.generator.generate
    monkeypatch.setattr(infiller.generator, "generate", lambda ids, *rest: prompts.append(ids) or generate(ids, *rest))
    infiller.infill(tok.prepare(CHORALE), 1, (2, 4), n=1, max_tokens=50, seed=0)
    names = [tok.codec.vocab.tokens[i] for i in tok.codec.decode(prompts[0])]
    last_track = names[len(names) - names[::-1].index("Track_Start") - 1 : names.index("FillBar_Start")]
    assert "Infill_Bar" in last_track  # the alto, written after the bass


@needs_llama
def test_the_gguf_cache_records_the_models_layout(tmp_path, model, tok, monkeypatch):
    from midi_rwkv.inference.ggml.gguf import read_layout

    monkeypatch.setattr(ggml, "gguf_cache", lambda: tmp_path / "cache")
    path = save_checkpoint(model, tmp_path / "m.pth", extra={"layout": "target-last"})
    tok.save(tmp_path / "m.tokenizer.json")
    Infiller.load(path, engine="ggml-f32")
    (cached,) = (tmp_path / "cache").glob("*.gguf")
    assert cached.name.endswith(".target-last.f32.gguf") and read_layout(cached) == "target-last"


@needs_llama
def test_opening_a_model_sets_torch_threads_for_its_engine(model, tok, tmp_path, monkeypatch):
    from midi_rwkv.inference.options import InfillOptions

    monkeypatch.setattr(ggml, "gguf_cache", lambda: tmp_path / "cache")
    path = save_checkpoint(model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    before = torch.get_num_threads()
    try:
        Infiller.open(InfillOptions(engine="ggml-f32", threads=2), path)
        assert torch.get_num_threads() == 1  # llama.cpp has its own two; the sampler one (no spinning beside them)
        torch.set_num_threads(3)
        assert Infiller.open(InfillOptions(engine="torch", threads=2), path).generator.engine.threads == 2
        assert torch.get_num_threads() == 3  # the PyTorch engine sets its own before each prompt (test_torch_threads)
        assert Infiller.open(InfillOptions(engine="torch"), path).generator.engine.threads == 3  # PyTorch's own choice
    finally:
        torch.set_num_threads(before)
