"""Building the native operators: a build killed half-way must not make every later load wait forever."""

from torch.utils import cpp_extension

from midi_rwkv.model.kernels import build


def test_a_lock_left_by_a_killed_build_is_cleared_and_the_first_build_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build, "_cache_dir", lambda: tmp_path)
    stale = tmp_path / "midi_rwkv_wkv7_cpu_abc" / "lock"
    stale.parent.mkdir(parents=True)
    stale.write_text("")  # what torch's FileBaton leaves when its builder dies
    calls = []

    def load(name, build_directory, **kwargs):  # torch would wait for the lock to go away
        assert not (tmp_path / name / "lock").exists()
        calls.append(name)
        (tmp_path / name / f"{name}.so").write_text("")

    monkeypatch.setattr(cpp_extension, "load", load)
    build._build("midi_rwkv_wkv7_cpu_abc", [])
    assert calls == ["midi_rwkv_wkv7_cpu_abc"]
    assert "building the native CPU kernel once" in capsys.readouterr().err
    build._build("midi_rwkv_wkv7_cpu_abc", [])  # built: no message the second time
    assert capsys.readouterr().err == ""
