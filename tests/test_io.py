"""Atomic writes: on success the file appears whole; on failure the old file is kept and no temporary is left."""

import os
import stat

import pytest
import torch

from midi_rwkv.io import atomic_write, atomic_write_text
from midi_rwkv.model import RWKV7, load_checkpoint, save_checkpoint, tiny_config


def test_success_replaces_the_file_with_the_umask_mode(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def half_then_fail(tmp):
        with open(tmp, "w") as f:
            f.write("half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_an_interrupted_write_leaves_no_file_where_there_was_none(tmp_path):
    def interrupted(tmp):
        open(tmp, "w").write("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "new.txt", interrupted)
    assert os.listdir(tmp_path) == []


def test_a_checkpoint_that_fails_to_save_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    old = RWKV7(tiny_config())
    path = save_checkpoint(old, tmp_path / "m.pth")
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        real_save({"emb.weight": torch.zeros(1)}, f)  # something lands on disk, then the write fails
        raise RuntimeError("interrupted")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="interrupted"):
        save_checkpoint(RWKV7(tiny_config()), path)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["m.json", "m.pth"]
    loaded = load_checkpoint(path)
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), loaded.state_dict().values()))
