import math

import pytest
import torch

from midi_rwkv.model import RWKV7, RWKVConfig, RWKVState, init_weights, paper_config, tiny_config
from midi_rwkv.model.kernels import use_backend


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = init_weights(RWKV7(tiny_config()), seed=0)
    with torch.no_grad():  # the paper's init zeroes the output projections; perturb so every path matters
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.eval()


def test_paper_preset_has_35_085_312_parameters():
    model = RWKV7(paper_config())
    assert model.num_parameters() == 35_085_312
    assert model.config.n_head == 6 and model.config.decay_lora == 32 and model.config.gate_lora == 64
    assert RWKVState.zeros(model.config, 1).wkv[:, 0].numel() == 294_912  # the state tuning learns this many


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_prompt_then_steps_equals_one_sequence(tiny, backend):
    idx = torch.randint(0, tiny.config.vocab_size, (3, 30), generator=torch.Generator().manual_seed(1))
    with use_backend(backend), torch.no_grad():
        full, full_state = tiny(idx)
        _, state = tiny(idx[:, :17])
        steps = []
        for t in range(17, 30):
            logits, state = tiny.step(idx[:, t], state)
            steps.append(logits)
    assert torch.allclose(torch.stack(steps, 1), full[:, 17:], atol=1e-4, rtol=1e-4)
    assert torch.allclose(state.wkv, full_state.wkv, atol=1e-5)
    assert torch.allclose(state.att_shift, full_state.att_shift, atol=1e-5)
    assert torch.allclose(state.ffn_shift, full_state.ffn_shift, atol=1e-5)


def test_kernels_agree_inside_the_model(tiny):
    idx = torch.randint(0, tiny.config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(2))
    with use_backend("torch"):
        ref, _ = tiny(idx)
    with use_backend("cpu"):
        fast, _ = tiny(idx)
    assert torch.allclose(ref, fast, atol=1e-4)


def test_gradient_reaches_the_initial_state(tiny):
    idx = torch.randint(0, tiny.config.vocab_size, (1, 12))
    state = RWKVState.zeros(tiny.config, 1)
    state.wkv.requires_grad_()
    with use_backend("cpu"):
        logits, _ = tiny(idx, state)
    logits.logsumexp(-1).sum().backward()
    assert state.wkv.grad is not None and state.wkv.grad.abs().sum() > 0


def test_forking_a_state_into_candidates(tiny):
    idx = torch.randint(0, tiny.config.vocab_size, (1, 10))
    with torch.no_grad():
        _, state = tiny(idx)
        forked = state.select([0, 0, 0, 0])
        logits, _ = tiny.step(torch.tensor([5, 5, 7, 7]), forked)
    assert forked.batch == 4 and torch.allclose(logits[0], logits[1]) and not torch.allclose(logits[0], logits[2])


def test_init_follows_the_paper():
    model = init_weights(RWKV7(RWKVConfig(n_layer=3, n_embd=64, vocab_size=100, head_size=16)), seed=0)
    b0, b2 = model.blocks[0], model.blocks[2]
    assert torch.all(b0.att.output.weight == 0) and torch.all(b2.ffn.value.weight == 0)
    assert torch.all(b0.att.k_k == 0.85) and torch.all(b0.att.v0 == 1) and torch.all(b0.att.r_k == 0)
    assert torch.allclose(b2.att.ln_x.weight, torch.full((64,), 1.0))
    assert b0.att.w0.max() < -0.9 and model.emb.weight.abs().max() <= 1e-4
    assert hasattr(b0, "ln0") and not hasattr(b2, "ln0")


@pytest.mark.parametrize("vocab", [663, 16000])
def test_initial_loss_is_near_uniform(vocab):
    """The head's gain 0.5 * sqrt(V / C) gives logits with std ~0.5, so the first loss is close to ln V."""
    model = init_weights(RWKV7(RWKVConfig(n_layer=2, n_embd=64, vocab_size=vocab, head_size=16)), seed=0)
    idx = torch.randint(0, vocab, (2, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, _ = model(idx)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx.flatten())
    assert 0.3 < logits.std() < 0.7 and abs(loss.item() - math.log(vocab)) < 0.5


@pytest.mark.parametrize("kwargs", [dict(n_embd=100, head_size=64), dict(n_layer=0)], ids=["width", "layers"])
def test_config_is_validated(kwargs):
    base = dict(n_layer=2, n_embd=64, vocab_size=10, head_size=16) | kwargs
    with pytest.raises(ValueError):
        RWKVConfig(**base)


def test_gradient_checkpointing_gives_the_same_gradients():
    """Every parameter that gets a gradient gets the same one, and (weights perturbed off the init) none is zero."""
    torch.manual_seed(0)
    model = init_weights(RWKV7(tiny_config()), seed=0).train()
    with torch.no_grad():  # the paper's init zeroes output projections, so most gradients would be zero on both paths
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    idx = torch.randint(0, 663, (2, 20), generator=torch.Generator().manual_seed(3))

    def grads(checkpointing):
        model.zero_grad()
        model.gradient_checkpointing = checkpointing
        with use_backend("cpu"):
            logits, _ = model(idx)
        logits.logsumexp(-1).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = grads(False), grads(True)
    unused = {f"blocks.0.att.{n}" for n in ("v0", "v1", "v2")}  # layer 0 makes v_first, it mixes nothing in
    assert set(plain) == set(checkpointed) == {n for n, _ in model.named_parameters()} - unused
    for name, g in plain.items():
        assert g.abs().max() > 0, name
        assert torch.allclose(g, checkpointed[name], rtol=1e-4, atol=1e-7), name
