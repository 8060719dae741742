"""Mutated real MIDI files (bit flips, truncation, spliced bytes): every run succeeds, or exits 2 with one line,
and never leaves a partial output behind."""

import random

import pytest
import torch
from symusic import Score

from midi_rwkv.cli import main
from midi_rwkv.model import RWKV7, init_weights, save_checkpoint, tiny_config
from tests.conftest import FIXTURES

CASES = 200


def mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    kind = rng.choice(["flip", "truncate", "splice", "flip-header", "duplicate"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "flip-header":  # the chunk headers and lengths, where parsers are most fragile
        i = rng.randrange(min(len(data), 40))
        data[i] = rng.randrange(256)
    elif kind == "truncate":
        data = data[: rng.randrange(len(data))]
    elif kind == "splice":
        i, j = sorted(rng.sample(range(len(data)), 2))
        data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        del data[j : j + rng.randint(0, 32)]
    else:
        i, j = sorted(rng.sample(range(len(data)), 2))
        data[j:j] = data[i : i + rng.randint(1, 200)]
    return bytes(data)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tok):
    root = tmp_path_factory.mktemp("fuzz")
    torch.manual_seed(0)
    model = save_checkpoint(init_weights(RWKV7(tiny_config(tok.vocab_size)), seed=0), root / "m.pth")
    tok.save(root / "tokenizer.json")
    sources = [(FIXTURES / "bach_bwv66.6.mid").read_bytes()]
    return root, model, sources


@pytest.mark.slow
def test_mutated_midi_never_crashes_or_leaves_a_partial_file(setup, tmp_path, capsys):
    root, model, sources = setup
    rng = random.Random(2026)
    outcomes = {0: 0, 2: 0}
    for case in range(CASES):
        data = mutate(rng.choice(sources), rng)
        source = tmp_path / f"case{case}.mid"
        source.write_bytes(data)
        out = tmp_path / f"out{case}"
        request = rng.choice([["--track", "1", "--bars", "2:3"], ["--track", "0"], ["--new-track", "33"],
                              ["--fill", "0:1-1", "--fill", "2:3-3"]])
        rc = main(["infill", str(source), "--model", str(model), "-n", "2", "--seed", "0", "--max-tokens", "40",
                   "-o", str(out), *request])
        captured = capsys.readouterr()
        assert rc in outcomes, (case, rc, captured.err)
        outcomes[rc] += 1
        if rc == 2:
            lines = captured.err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("midi-rwkv: error:"), (case, captured.err)
            assert not out.exists(), case
        else:
            written = sorted(out.iterdir())
            assert len(written) == 2 and all(p.suffix == ".mid" for p in written), case
            assert all(Score(str(p)).note_num() > 0 for p in written)
        assert not list(tmp_path.glob("**/*.tmp")), case
    assert outcomes[0] > 20 and outcomes[2] > 20, outcomes  # both paths really ran
