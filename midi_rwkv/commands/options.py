"""Command-line options generated from settings dataclasses, and the parsers several commands share."""

from __future__ import annotations

import argparse
import json
import typing
from dataclasses import MISSING, Field, fields
from typing import Any

from midi_rwkv.errors import BarRangeError
from midi_rwkv.settings import unwrap


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _help(f: Field, default: Any) -> str:
    shown = default is not MISSING and default is not None and default is not False and default not in ([], {}, ())
    return f.metadata["help"] + (f" (default: {default})" if shown else "")


def add_settings(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One option per field of the settings dataclass ``cls`` (see :func:`midi_rwkv.settings.setting`)."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        meta, kind, default = f.metadata, unwrap(hints[f.name]), _default(f)
        kwargs: dict[str, Any] = {"help": _help(f, default)}
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        if kind is bool:  # on by default: --x / --no-x; off by default: --x
            kwargs["action"] = argparse.BooleanOptionalAction if default is True else "store_true"
        elif typing.get_origin(kind) is list:
            kwargs |= {"action": "append", "type": meta.get("parse", typing.get_args(kind)[0])}
        else:
            kwargs["type"] = meta.get("parse", json.loads if typing.get_origin(kind) is dict or kind is dict else kind)
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
            if "const" in meta:  # the flag alone means this value
                kwargs |= {"nargs": "?", "const": meta["const"]}
        if meta.get("positional"):
            parser.add_argument(f.name, **kwargs)
            continue
        flags = [meta.get("flag", "--" + f.name.replace("_", "-"))] + ([meta["short"]] if "short" in meta else [])
        kwargs |= {"dest": f.name, "default": None, "required": default is MISSING}
        parser.add_argument(*flags, **kwargs)


def given_settings(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of the settings dataclass ``cls`` that the command line set (options left out are not here)."""
    values = {f.name: getattr(args, f.name, None) for f in fields(cls)}
    return {k: v for k, v in values.items() if v is not None}


def settings_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """The settings dataclass from parsed options: options left out keep the dataclass's defaults."""
    return cls(**(given_settings(cls, args) | overrides))


def parse_bars(text: str) -> tuple[int, int]:
    """'9:12' (bars 9 to 12, counted from 1, inclusive) or '9' -> 0-based half-open (8, 12)."""
    try:
        first, _, last = text.partition(":")
        start, end = int(first), int(last or first)
    except ValueError:
        raise BarRangeError(f"bars '{text}': expected FIRST:LAST, e.g. 9:12 (bars count from 1)") from None
    if start < 1 or end < start:
        raise BarRangeError(f"bars '{text}': need 1 <= FIRST <= LAST (bars count from 1)")
    return start - 1, end


def parse_spans(text: str) -> list[tuple[int, int]]:
    """'3:4,9:12' -> [(2, 4), (8, 12)]."""
    return [parse_bars(part) for part in text.split(",") if part]
