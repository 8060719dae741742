"""Options generated from the settings dataclasses: one default, written once; a wrong value is one clear line."""

import argparse
from dataclasses import fields

import pytest

from midi_rwkv.cli import build_parser, main
from midi_rwkv.commands.options import add_settings, settings_from_args
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.metrics.evaluate import EvalConfig
from midi_rwkv.peft.tune_config import TuneConfig
from midi_rwkv.settings import ConfigError
from midi_rwkv.train.train_config import TrainConfig

SETTINGS = [TrainConfig, TuneConfig, EvalConfig, SamplerConfig]
REQUIRED = {TrainConfig: {"data": ["folder:x"], "out": "o"}, TuneConfig: {"data": "folder:x", "out": "o"},
            EvalConfig: {"out": "o", "model": "m.pth"}, SamplerConfig: {}}
ARGV = {TrainConfig: ["--data", "folder:x", "--out", "o"], TuneConfig: ["--data", "folder:x", "--out", "o"],
        EvalConfig: ["--out", "o", "--model", "m.pth"], SamplerConfig: []}


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_every_setting_has_help_and_the_command_line_keeps_the_dataclass_defaults(cls):
    assert all(f.metadata.get("help") for f in fields(cls))
    parser = argparse.ArgumentParser()
    add_settings(parser, cls)
    assert settings_from_args(cls, parser.parse_args(ARGV[cls])) == cls(**REQUIRED[cls])


def test_given_values_reach_the_settings_including_zero_and_false():
    parser = argparse.ArgumentParser()
    add_settings(parser, SamplerConfig)
    config = settings_from_args(SamplerConfig, parser.parse_args(["--temperature", "0", "--top-k", "0"]))
    assert config.temperature == 0 and config.top_k == 0 and config.top_p == SamplerConfig().top_p


def test_help_shows_each_default_from_the_dataclass(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {TrainConfig.__dataclass_fields__['steps'].default})" in text and "--grad-checkpointing" in text


def test_tune_style_has_tune_s_defaults():
    parser = build_parser()
    tune = parser.parse_args(["tune", "--data", "folder:x", "--out", "o"])
    style = parser.parse_args(["tune-style", "mine", "-o", "s.safetensors"])
    a = settings_from_args(TuneConfig, tune)
    b = settings_from_args(TuneConfig, style, data="folder:mine", out=".")
    assert (a.steps, a.batch_size, a.ctx_len, a.learning_rate) == (b.steps, b.batch_size, b.ctx_len, b.learning_rate)


def test_every_command_is_listed_with_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in (
        "infill",
        "export-gguf",
        "tune",
        "tune-style",
        "merge-lora",
        "train",
        "export",
        "evaluate",
        "prompt",
        "train-tokenizer",
        "check-data",
        "build-corpus",
    ):
        assert f"    {command} " in out or f"    {command}\n" in out, command


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "folder:x", "--out", "o", "--steps", "0"], "--steps must be 1 or more"),
        (["train", "--out", "o"], "give at least one corpus"),
        (
            ["train", "--data", "folder:x", "--out", "o", "--lr-init", "1e-5", "--lr-final", "1e-4"],
            "--lr-final <= --lr-init",
        ),
        (["tune", "--data", "folder:x", "--out", "o", "--split", "0.5,0.5,0.5"], "add up to 1"),
        (["tune-style", "mine", "-o", "s.safetensors", "--ctx-len", "0"], "--ctx-len must be 1 or more"),
        (["evaluate", "--out", "o", "--model", "m.pth", "--track", "-1"], "--track must be"),
        (["evaluate", "--out", "o", "--model", "m.pth", "--system", "a", "--system", "a"], "unique"),
        (["infill", "x.mid", "--track", "0", "--bars", "1:2", "--top-p", "2"], "invalid sampler"),
    ],
    ids=["steps", "no-data", "lr", "split", "style-ctx", "track", "systems", "top-p"],
)
def test_a_wrong_setting_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)  # nothing may be written anywhere
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("midi-rwkv: error:") and message in err
    assert list(tmp_path.iterdir()) == []


def test_settings_validate_in_python_too():
    with pytest.raises(ConfigError, match="--batch-size"):
        TrainConfig(data=["folder:x"], out="o", batch_size=0)
    with pytest.raises(ConfigError, match="unknown method"):
        TuneConfig(data="folder:x", out="o", method="full")
    with pytest.raises(ConfigError, match="--examples: unknown keys"):
        TrainConfig(data=["folder:x"], out="o", examples={"bogus": 1})
    with pytest.raises(ConfigError, match="give the layout with --layout"):
        TrainConfig(data=["folder:x"], out="o", examples={"layout": "file-order"})
