"""scripts/gpu-run.sh rehearsed on a CPU (DRY=1), and the parts a model travels back in."""

import json
import subprocess

import pytest

from midi_rwkv.cli import main
from midi_rwkv.train.parts import PartsError, join_parts, split_file
from tests.test_scripts import ROOT, script_env


@pytest.fixture
def blob(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 10_000 + b"tail")  # 2.44 MiB: three parts of 1 MiB
    return path


def test_split_then_join_gives_the_same_bytes(blob, tmp_path):
    manifest = json.loads(split_file(blob, tmp_path / "parts", part_mib=1).read_text())
    assert [p["size"] for p in manifest["parts"]] == [2**20, 2**20, blob.stat().st_size - 2 * 2**20]
    assert sorted(f.name for f in (tmp_path / "parts").iterdir()) == [
        "blob.bin.part-000", "blob.bin.part-001", "blob.bin.part-002", "blob.bin.parts.json"]
    out = join_parts(tmp_path / "parts", tmp_path / "joined.bin")
    assert out.read_bytes() == blob.read_bytes()


@pytest.mark.parametrize("data", [b"", b"x" * 100], ids=["empty", "small"])
def test_a_file_that_fits_is_one_part(tmp_path, data):
    (tmp_path / "f").write_bytes(data)
    manifest = json.loads(split_file(tmp_path / "f", tmp_path / "parts").read_text())
    assert len(manifest["parts"]) == 1
    assert join_parts(tmp_path / "parts" / "f.parts.json", tmp_path / "g").read_bytes() == data


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(b"Z" + p.read_bytes()[1:]), "sha256 differs"),
        (lambda p: p.write_bytes(p.read_bytes()[:-1]), "bytes, the manifest says"),
        (lambda p: p.unlink(), "missing"),
    ],
    ids=["flipped-byte", "truncated", "missing"],
)
def test_a_damaged_part_is_a_clear_error_and_writes_nothing(blob, tmp_path, damage, message):
    split_file(blob, tmp_path / "parts", part_mib=1)
    damage(tmp_path / "parts" / "blob.bin.part-001")
    with pytest.raises(PartsError, match=message):
        join_parts(tmp_path / "parts", tmp_path / "joined.bin")
    assert not (tmp_path / "joined.bin").exists()


def test_a_folder_needs_exactly_one_manifest(blob, tmp_path):
    with pytest.raises(PartsError, match="0 \\*.parts.json"):
        join_parts(tmp_path, tmp_path / "out")
    (tmp_path / "bad.parts.json").write_text("{}")
    with pytest.raises(PartsError, match="unreadable parts manifest"):
        join_parts(tmp_path, tmp_path / "out")


def test_split_model_and_join_model_commands(tmp_path, tiny_model, capsys):
    from midi_rwkv.model import load_checkpoint, save_checkpoint

    model = save_checkpoint(tiny_model, tmp_path / "run" / "model.pth")
    assert main(["split-model", str(model), "-o", str(tmp_path / "back"), "--part-mib", "0.1"]) == 0
    (tmp_path / "back" / "model.json").write_bytes(model.with_suffix(".json").read_bytes())  # as gpu-run.sh does
    assert main(["join-model", str(tmp_path / "back"), "-o", str(tmp_path / "home" / "m.pth")]) == 0
    assert "2 x 64 RWKV-7" in capsys.readouterr().out
    assert (tmp_path / "home" / "m.json").is_file()
    joined = load_checkpoint(tmp_path / "home" / "m.pth")
    assert all((a == b).all() for a, b in zip(joined.state_dict().values(), tiny_model.state_dict().values()))
    (tmp_path / "back" / "model.pth.part-000").write_bytes(b"broken")
    assert main(["join-model", str(tmp_path / "back"), "-o", str(tmp_path / "again.pth")]) == 2
    assert "midi-rwkv: error:" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_run_dry_rehearsal(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = script_env(DRY="1", OUT_DIR=str(out), WORK=str(work))
    done = subprocess.run(["bash", "scripts/gpu-run.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["gpu-run.log", "gpu-tests.xml", "loss.csv", "model.json", "model.pth.part-000",
                     "model.pth.parts.json", "summary.json"]  # within the device tool's 8 files
    assert "DRY: no GPU" in (out / "gpu-run.log").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry"] and summary["wall_s"] < summary["budget_s"]
    assert [s["name"] for s in summary["stages"]] == ["build", "gpu-tests", "wkv", "speed-paper", "speed-default",
                                                      "deepspeed", "compile", "train"]
    assert next(s for s in summary["stages"] if s["name"] == "deepspeed")["rc"] == "skipped"  # needs a GPU
    assert all(s["rc"] == 0 for s in summary["stages"] if s["name"] != "deepspeed"), summary["stages"]
    tests = summary["gpu_tests"]
    assert tests["tests"] >= 10 and tests["skipped"] == tests["tests"]  # no CUDA here: every GPU test skips
    assert [r["kernel"] for r in summary["wkv"]["rows"]] == ["torch reference", "C++ operator"]
    assert summary["wkv"]["rows"][1]["y_rel_error"] < 1e-5
    assert all(r["tokens_per_s"] > 0 for part in ("paper", "default") for r in summary["throughput"][part]["rows"])
    train = summary["train"]
    assert train["data"] == f"compiled:{work}/compiled"  # as on the GPU: from a compiled corpus, without MidiTok
    assert train["complete"] and train["steps_done"] == train["steps_planned"] == 4
    assert train["batch"] in (1, 2) and train["val_loss_last"] > 0 and train["model_steps"] == 4
    assert main(["join-model", str(out), "-o", str(tmp_path / "model.pth")]) == 0
    assert (tmp_path / "model.pth").read_bytes() == (work / "run" / "model.pth").read_bytes()
