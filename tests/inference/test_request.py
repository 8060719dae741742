"""One infill request: its settings (InfillOptions) with one default each, read the same way from the command line,
the studio's JSON and the evaluation's key=value text; its controls and fills checked once, where they are made."""

from __future__ import annotations

from dataclasses import fields

import pytest

from midi_rwkv.cli import build_parser
from midi_rwkv.commands.options import settings_from_args
from midi_rwkv.errors import ControlError, MidiRwkvError
from midi_rwkv.inference.options import BAR_TOKENS, TRACK_TOKENS_PER_BAR, InfillOptions
from midi_rwkv.inference.requests import BarFill, ControlRequest, InfillRequest, NewTrack, TrackFill
from midi_rwkv.settings import ConfigError, settings_from_mapping


def cli_options(*argv: str) -> InfillOptions:
    args = build_parser().parse_args(["infill", "song.mid", "--track", "0", *argv])
    return settings_from_args(InfillOptions, args)


def test_the_command_line_the_json_and_the_evaluation_text_give_the_same_options():
    expected = InfillOptions(n=2, rank="controls", context="all", max_tokens=300, free=True, register="free",
                             strict_density=False, structure="vary", engine="torch", threads=2, seed=5)
    argv = ["-n", "2", "--rank", "--context", "all", "--max-tokens", "300", "--free", "--register", "free",
            "--no-strict-density", "--structure", "vary", "--engine", "torch", "--threads", "2", "--seed", "5"]
    assert cli_options(*argv) == expected
    json = {"n": 2, "rank": "controls", "context": "all", "max_tokens": 300, "free": True, "register": "free",
            "strict_density": False, "structure": "vary", "engine": "torch", "threads": 2, "seed": 5}
    assert settings_from_mapping(InfillOptions, json) == expected
    assert settings_from_mapping(InfillOptions, {k: str(v) for k, v in json.items()}) == expected


def test_left_out_settings_keep_the_one_default_everywhere():
    assert cli_options() == settings_from_mapping(InfillOptions, {}) == InfillOptions()
    defaults = InfillOptions()
    assert (defaults.n, defaults.rank, defaults.context, defaults.engine, defaults.structure) == (
        4, "none", 16, "auto", "follow")
    assert defaults.strict_density and defaults.keep_register and not defaults.free


def test_context_reads_bars_or_all():
    assert cli_options("--context", "0").context_bars == 0
    assert cli_options("--context", "all").context_bars is None
    assert settings_from_mapping(InfillOptions, {"context": 8}).context_bars == 8
    for bad in ("some", "-1", 1.5, True):
        with pytest.raises(ConfigError):
            settings_from_mapping(InfillOptions, {"context": bad})


@pytest.mark.parametrize("values, message", [
    ({"n": 0}, "'n' must be a number of candidates from 1 to 16"),
    ({"n": 17}, "'n' must be a number of candidates from 1 to 16"),
    ({"n": "2"}, None),  # text is read (the evaluation's)
    ({"n": 2.0}, "'n' needs a whole number, got 2.0"),  # a JSON value must already be one
    ({"n": True}, "'n' needs a whole number, got True"),
    ({"max_tokens": 0}, "'max_tokens' must be 1 or more"),
    ({"threads": 0}, "'threads' must be 1 or more"),
    ({"context_tokens": -1}, "'context_tokens' must be 1 or more"),
    ({"seed": -1}, "'seed' must be 0 or more"),
    ({"free": 1}, "'free' needs true or false, got 1"),
    ({"free": "maybe"}, "'free' takes 1 or 0 (true or false), got 'maybe'"),
    ({"register": "wide"}, "'register' must be one of keep, free, got 'wide'"),
    ({"engine": "onnx"}, "'engine' must be one of auto, torch, ggml, ggml-f32, got 'onnx'"),
    ({"bogus": 1}, "unknown setting 'bogus'"),
])
def test_a_bad_value_gets_one_line_naming_the_setting(values, message):
    if message is None:
        assert settings_from_mapping(InfillOptions, values).n == 2
        return
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(InfillOptions, values)
    assert str(caught.value).startswith(message)


def test_a_front_end_can_leave_settings_out():
    with pytest.raises(ConfigError, match="unknown setting 'engine'"):
        settings_from_mapping(InfillOptions, {"engine": "torch"}, skip=("engine",))


def test_token_budgets_default_by_kind_of_fill():
    assert InfillOptions().bar_budget() == BAR_TOKENS
    assert InfillOptions().track_budget(10) == BAR_TOKENS + 10 * TRACK_TOKENS_PER_BAR
    assert InfillOptions(max_tokens=50).bar_budget() == InfillOptions(max_tokens=50).track_budget(10) == 50


def test_every_setting_is_an_option_of_infill():
    help_text = build_parser().parse_args(["infill", "x.mid"]).__dict__
    assert {f.name for f in fields(InfillOptions)} <= set(help_text)


@pytest.mark.parametrize("controls, message", [
    (dict(density=[]), "'density' takes whole numbers"),
    (dict(density=[-1]), "'density' takes whole numbers"),
    (dict(density=[True]), "'density' takes whole numbers"),
    (dict(polyphony=(3, 1)), "'polyphony' 3-1"),
    (dict(polyphony=(0, 2)), "'polyphony' 0-2"),
    (dict(polyphony=(1, 7)), "'polyphony' 1-7"),
    (dict(durations=(True,)), "'durations' takes 5 flags"),
])
def test_controls_are_checked_where_they_are_made(controls, message):
    with pytest.raises(ControlError, match=message):
        ControlRequest(**controls)
    assert ControlRequest(density=[0, 18], polyphony=(1, 6), durations=(True,) * 5).density == [0, 18]


def test_a_request_checks_its_fills_against_its_options():
    bars = BarFill(0, (2, 4))
    assert InfillRequest([bars]).fills == (bars,)  # a tuple, whatever it was given
    with pytest.raises(MidiRwkvError, match="nothing to fill"):
        InfillRequest(())
    for fill in (TrackFill(1), NewTrack(33)):
        with pytest.raises(MidiRwkvError, match="free infilling is for bars of a track"):
            InfillRequest((bars, fill), InfillOptions(free=True))
    with pytest.raises(ControlError, match="free infilling takes no"):
        InfillRequest((BarFill(0, (2, 4), ControlRequest(density=[3])),), InfillOptions(free=True))
    assert InfillRequest((BarFill(0, (2, 4), ControlRequest()),), InfillOptions(free=True)).options.free
    per_bar = BarFill(0, (2, 4), ControlRequest(density=[3, 4]))
    assert InfillRequest((per_bar,)).fills == (per_bar,)
    with pytest.raises(ControlError, match="with several fills, density takes one value"):
        InfillRequest((per_bar, BarFill(0, (6, 8))))
    assert InfillRequest((BarFill(0, (2, 4), ControlRequest(density=[3])), TrackFill(1))).describe() == (
        "track 0, bars 3-4; track 1, whole")
