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

import dataclasses
import types
import typing
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


def like(cls: type, name: str, help: str | None = None) -> Any:
    """Setting ``name`` of the settings dataclass ``cls`` again in another one: the same default and command-line
    hints (choices), so two front ends cannot drift apart; ``help`` rewords it for the other front end."""
    source = cls.__dataclass_fields__[name]
    metadata = dict(source.metadata) | ({"help": help} if help else {})
    if source.default_factory is not MISSING:
        return field(default_factory=source.default_factory, metadata=metadata)
    return field(default=source.default, metadata=metadata)


def check_seed(seed: int | None) -> None:
    """A random seed is None (fresh randomness) or a number torch's generators take (0 to 2**63 - 1)."""
    require(seed is None or 0 <= seed < 2**63, "'seed' must be 0 or more")


def require(condition: bool, message: str) -> None:
    """Raise a :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def unwrap(kind: Any) -> Any:
    """``X | None`` -> ``X`` (a field's type without its optional ``None``)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return kind


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _coerce(key: str, raw: Any, kind: Any, parse: Any) -> Any:
    """One value of a mapping as the field's type: text (an evaluation's ``key=value``) is parsed, a JSON value (the
    studio's) must already have the type; ``null`` keeps a field that may be None empty. A field's own ``parse`` takes
    both."""
    if raw is None:
        return None
    if parse is not None:
        try:
            return parse(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"'{key}': cannot read {raw!r}") from None
    if isinstance(raw, str) and kind is not str:
        if kind is bool:
            if raw.lower() not in (*_TRUE, *_FALSE):
                raise ConfigError(f"'{key}' takes 1 or 0 (true or false), got '{raw}'")
            return raw.lower() in _TRUE
        try:
            return kind(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"'{key}' needs {_article(kind)}, got '{raw}'") from None
    if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if not isinstance(raw, kind) or (kind is int and isinstance(raw, bool)):
        raise ConfigError(f"'{key}' needs {_article(kind)}, got {raw!r}")
    return raw


def _article(kind: Any) -> str:
    return {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(kind, "a value")


def settings_from_mapping(cls: type, values: dict[str, Any], skip: tuple[str, ...] = ()) -> Any:
    """The settings dataclass ``cls`` from a mapping of its field names (an evaluation system's ``key=value`` pairs as
    text, or the studio's JSON fields as typed values): unknown keys, a value of the wrong type and a value outside
    the field's ``choices`` get one :class:`ConfigError` line each; ``__post_init__`` checks the rest. Fields left out
    keep their defaults; ``skip`` lists fields this front end does not take."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
    out = {}
    for key, raw in values.items():
        if key not in known:
            raise ConfigError(f"unknown setting '{key}': choose from {', '.join(known)}")
        meta = known[key].metadata
        value = _coerce(key, raw, unwrap(hints[key]), meta.get("parse"))
        if "choices" in meta and value not in meta["choices"]:
            raise ConfigError(f"'{key}' must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
        out[key] = value
    return cls(**out)
