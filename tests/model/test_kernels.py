"""Every WKV7 kernel against the float64 reference: outputs and gradients, on fresh random inputs."""

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from midi_rwkv.model.kernels import resolve_backend, use_backend, wkv7, wkv7_reference
from midi_rwkv.model.kernels.native import wkv7_cpu

CSRC = Path(__file__).resolve().parents[2] / "midi_rwkv" / "model" / "kernels" / "csrc"


def rel_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    """||x - ref|| / ||ref||, in float64."""
    return ((x.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)).item()


def random_inputs(B, T, H, N, seed, dtype=torch.float64, device="cpu"):
    """Inputs shaped like the model's: w in (-inf, -0.5), a = -kk, b = kk * rate."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    kk = F.normalize(rnd(B, T, H, N), dim=-1)
    inputs = [rnd(B, T, H, N), -F.softplus(-rnd(B, T, H, N)) - 0.5, rnd(B, T, H, N), rnd(B, T, H, N), -kk,
              kk * torch.sigmoid(rnd(B, T, H, N)), 0.1 * rnd(B, H, N, N)]
    return [x.to(dtype=dtype, device=device) for x in inputs]


def run_with_grads(fn, inputs, dy, ds):
    leaves = [x.clone().requires_grad_() for x in inputs]
    y, s = fn(*leaves)
    ((y * dy.to(y.dtype)).sum() + (s * ds.to(s.dtype)).sum()).backward()
    return y, s, [x.grad for x in leaves]


SHAPES = [(1, 16, 1, 16), (2, 37, 3, 16), (3, 5, 2, 64), (2, 50, 2, 64)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-T{}-H{}-N{}".format(*s))
def test_cpu_operator_matches_reference(shape):
    inputs = random_inputs(*shape, seed=sum(shape))
    y_ref, s_ref, g_ref = run_with_grads(
        wkv7_reference, inputs, dy := torch.randn_like(inputs[0]), ds := torch.randn_like(inputs[6])
    )
    y, s, grads = run_with_grads(wkv7_cpu, [x.float() for x in inputs], dy, ds)
    assert y.dtype == torch.float32
    assert rel_error(y, y_ref) < 1e-5 and rel_error(s, s_ref) < 1e-5
    for name, g, ref in zip("rwkvab", grads, g_ref):
        assert rel_error(g, ref) < 1e-5, name
    assert rel_error(grads[6], g_ref[6]) < 1e-5  # the initial state's gradient (state tuning)


def test_reference_float32_matches_float64():
    inputs = random_inputs(2, 20, 2, 16, seed=3)
    y64, s64 = wkv7_reference(*inputs)
    y32, s32 = wkv7_reference(*[x.float() for x in inputs])
    assert rel_error(y32, y64) < 1e-5 and rel_error(s32, s64) < 1e-5


def test_chunks_chain_through_the_state():
    inputs = random_inputs(2, 40, 2, 16, seed=5, dtype=torch.float32)
    y, s = wkv7_cpu(*inputs)
    first = [x[:, :23] for x in inputs[:6]]
    second = [x[:, 23:] for x in inputs[:6]]
    y1, s1 = wkv7_cpu(*first, inputs[6])
    y2, s2 = wkv7_cpu(*second, s1)
    assert rel_error(torch.cat([y1, y2], 1), y) < 1e-6 and rel_error(s2, s) < 1e-6


def test_no_initial_state_means_zeros():
    inputs = random_inputs(1, 9, 2, 16, seed=9, dtype=torch.float32)
    y_none, _ = wkv7_cpu(*inputs[:6])
    y_zero, _ = wkv7_cpu(*inputs[:6], torch.zeros_like(inputs[6]))
    assert torch.equal(y_none, y_zero)


def test_bf16_inputs_come_back_in_bf16():
    inputs = random_inputs(1, 8, 1, 16, seed=1, dtype=torch.bfloat16)
    y, s = wkv7_cpu(*inputs)
    assert y.dtype == torch.bfloat16 and s.dtype == torch.float32


def test_bad_shapes_give_readable_errors():
    inputs = random_inputs(1, 8, 2, 16, seed=2, dtype=torch.float32)
    with pytest.raises(ValueError, match="k has shape"):
        wkv7_cpu(inputs[0], inputs[1], inputs[2][:, :4], *inputs[3:6])
    with pytest.raises(ValueError, match="state must be"):
        wkv7_cpu(*inputs[:6], inputs[6][:, :1])


def test_dispatch_choice_and_override():
    assert resolve_backend("cpu", 64) == "cpu"
    with use_backend("torch"):
        assert resolve_backend("cpu", 64) == "torch"
    with pytest.raises(ValueError):
        resolve_backend("cpu", 64, "cuda")
    with pytest.raises(ValueError):
        with use_backend("fast"):
            pass
    inputs = random_inputs(1, 10, 1, 16, seed=4, dtype=torch.float32)
    assert rel_error(wkv7(*inputs, backend="cpu")[0], wkv7(*inputs, backend="torch")[0]) < 1e-6


def errors_against_reference(fn, shape, dtype, device="cpu", seed=0):
    """Relative errors of fn's y, final state and gradients (r w k v a b state) against the float64
    reference run on the same inputs rounded to ``dtype`` (state and ds in fp32, as the model has them)."""
    inputs = random_inputs(*shape, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    dy = torch.randn(inputs[0].shape, generator=g, dtype=torch.float64).to(dtype)
    ds = torch.randn(inputs[6].shape, generator=g, dtype=torch.float64).float()
    x = [t.to(dtype) for t in inputs[:6]] + [inputs[6].float()]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steps of [B, H, N, N] are too small for threads; on a busy CPU they cost 100x
    try:
        y_ref, s_ref, g_ref = run_with_grads(wkv7_reference, [t.double() for t in x], dy.double(), ds.double())
        y, s, grads = run_with_grads(fn, [t.to(device) for t in x], dy.to(device), ds.to(device))
    finally:
        torch.set_num_threads(threads)
    assert y.dtype == dtype and s.dtype == torch.float32 and all(gr.dtype == t.dtype for gr, t in zip(grads, x))
    names = ["y", "state"] + [f"d{n}" for n in "rwkvab"] + ["dstate"]
    return dict(zip(names, (rel_error(t.cpu(), ref) for t, ref in zip([y, s, *grads], [y_ref, s_ref, *g_ref]))))


# T = 37 and 203 need the wrapper's padding to a multiple of 16; T = 203 runs 13 chunks of the backward.
EMULATED_SHAPES = [(1, 16, 1, 16), (2, 37, 3, 16), (2, 37, 2, 64), (2, 203, 2, 64)]
shape_id = lambda s: "B{}-T{}-H{}-N{}".format(*s)  # noqa: E731


@pytest.mark.parametrize("shape", EMULATED_SHAPES, ids=shape_id)
def test_emulated_cuda_path_matches_reference_fp32(shape):
    """The CUDA wrapper with the CPU emulation of the kernel: padding, chunk reloads and the undoing of
    steps by division by the decay. The undone states cost most of the error (up to 6e-6 for dw: each
    undone step divides rounding errors by d < 1), so 1e-5 still catches any wrong term."""
    from midi_rwkv.model.kernels.native import wkv7_cuda_emulated

    errors = errors_against_reference(wkv7_cuda_emulated, shape, torch.float32, seed=sum(shape))
    assert max(errors.values()) < 1e-5, errors


@pytest.mark.parametrize("shape", EMULATED_SHAPES[1:], ids=shape_id)
def test_emulated_cuda_path_matches_reference_bf16(shape):
    """bf16 inputs: the kernel computes in fp32 and rounds y and the input gradients to bf16 (relative
    rounding error up to 2^-9 = 2e-3, measured 1.7e-3), while the state and its gradient stay fp32."""
    from midi_rwkv.model.kernels.native import wkv7_cuda_emulated

    errors = errors_against_reference(wkv7_cuda_emulated, shape, torch.bfloat16, seed=sum(shape))
    assert errors["state"] < 1e-5 and errors["dstate"] < 1e-5, errors
    assert max(errors.values()) < 1e-2, errors


def test_cuda_emulation_refuses_unpadded_T():
    from midi_rwkv.model.kernels import cuda_emulation

    r, w, k, v, a, b, s0 = random_inputs(1, 20, 1, 16, seed=0, dtype=torch.float32)
    with pytest.raises(ValueError, match="multiple of 16"):
        cuda_emulation.forward(r, w, k, v, a, b, s0)
    with pytest.raises(TypeError, match="bfloat16 or float32"):
        cuda_emulation.forward(*(x[:, :16].half() for x in (r, w, k, v, a, b)), s0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("shape", [(2, 37, 3, 64), (1, 64, 2, 64)], ids=["T37", "T64"])
def test_cuda_operator_matches_reference(shape):
    from midi_rwkv.model.kernels.native import wkv7_cuda

    # looser than the emulation's 1e-5: the kernel is built with --use_fast_math (__expf)
    errors = errors_against_reference(wkv7_cuda, shape, torch.float32, device="cuda", seed=11)
    assert errors["y"] < 1e-4 and errors["state"] < 1e-4 and max(errors.values()) < 1e-3, errors
    errors = errors_against_reference(wkv7_cuda, shape, torch.bfloat16, device="cuda", seed=11)
    assert max(errors.values()) < 1e-2, errors


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_op_matches_its_emulation():
    """Op level, padded T: the emulation does what the kernel does (checkpoint layout and sa included)."""
    from midi_rwkv.model.kernels import cuda_emulation
    from midi_rwkv.model.kernels.build import load_cuda_op

    *x, s0 = random_inputs(2, 48, 2, 64, seed=12, dtype=torch.float32)
    g = torch.Generator().manual_seed(13)
    dy, ds = torch.randn(x[0].shape, generator=g), torch.randn(s0.shape, generator=g)
    fwd_gpu = load_cuda_op(64).forward(*(t.cuda() for t in x), s0.cuda())
    fwd_cpu = cuda_emulation.forward(*x, s0)
    for name, got, want in zip(["y", "sT", "checkpoints", "sa"], fwd_gpu, fwd_cpu):
        assert rel_error(got.cpu(), want) < 1e-4, name
    bwd_gpu = load_cuda_op(64).backward(*(t.cuda() for t in [*x, fwd_cpu[2], fwd_cpu[3], dy, ds]))
    bwd_cpu = cuda_emulation.backward(*x, fwd_cpu[2], fwd_cpu[3], dy, ds)
    for name, got, want in zip(["dr", "dw", "dk", "dv", "da", "db", "ds0"], bwd_gpu, bwd_cpu):
        assert rel_error(got.cpu(), want) < 1e-4, name


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH: the CUDA sources are not compile-checked")
def test_cuda_source_compiles_with_nvcc(tmp_path):
    """The .cu file with nvcc alone (it has no torch dependency), the binding with torch's headers."""
    done = subprocess.run(
        [
            "nvcc",
            "-c",
            str(CSRC / "wkv7_cuda.cu"),
            "-D_N_=64",
            "-D_CHUNK_LEN_=16",
            "-O3",
            "--use_fast_math",
            "-o",
            str(tmp_path / "wkv7.o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    if shutil.which("c++") is None:
        pytest.skip("no c++ on PATH: the torch binding wkv7_cuda_op.cpp is not syntax-checked")
    from torch.utils.cpp_extension import include_paths

    flags = [f"-I{p}" for p in include_paths()] + [f"-I{sysconfig.get_paths()['include']}"]
    done = subprocess.run(
        ["c++", "-std=c++20", "-fsyntax-only", *flags, str(CSRC / "wkv7_cuda_op.cpp")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_missing_compiler_falls_back_to_the_reference_with_a_warning(monkeypatch, caplog):
    from midi_rwkv.model.kernels import build, dispatch

    build.load_cpu_op.cache_clear()
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    monkeypatch.setattr(dispatch, "_unavailable", {})
    try:
        with caplog.at_level("WARNING"):
            assert resolve_backend("cpu", 64) == "torch"
        assert "no C++ compiler" in caplog.text
        with pytest.raises(build.KernelBuildError):
            resolve_backend("cpu", 64, "cpu")
    finally:
        build.load_cpu_op.cache_clear()  # the next call rebuilds (from the cache) with the compiler back
