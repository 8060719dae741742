"""Typed run settings: one dataclass per run kind, a help string on every field, validation in ``__post_init__``.

    @dataclass
    class TrainConfig:
        steps: int = setting(1000, "optimiser steps for the whole run")

        def __post_init__(self):
            require(self.steps > 0, "--steps must be 1 or more")

The command line is generated from these fields (``midi_rwkv.commands.options``), so a default is
written once, here, and a wrong value gets one clear line (a :class:`ConfigError`) whether it came
from the command line or from Python.
"""

from __future__ import annotations

from dataclasses import MISSING, field
from typing import Any

from midi_rwkv.errors import MidiRwkvError


class ConfigError(MidiRwkvError):
    """A setting has a value it cannot take."""


def setting(default: Any = MISSING, help: str = "", *, factory: Any = MISSING, **cli: Any) -> Any:
    """A dataclass field with its help text and command-line hints.

    Args:
        default: the default value (leave out for a required setting).
        help: one line for ``--help``; the default is appended to it.
        factory: a default factory instead of ``default`` (lists, dicts).
        **cli: command-line hints: ``flag`` (e.g. ``"--base"``), ``short`` (e.g. ``"-o"``), ``positional``,
            ``choices``, ``metavar``, ``parse`` (a callable from the text), ``cli=False`` (not an option).
    """
    if not help:
        raise TypeError("every setting needs a help string")
    metadata = {"help": help, **cli}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def require(condition: bool, message: str) -> None:
    """Raise a :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)
