"""The OSC message set of ``midi-rwkv live`` (docs/live.md lists it): what each address takes, and the replies.

Every address starts with ``/live``. Times are quarter notes: ``at`` from the first live bar's start (the clock's 0),
a note's ``start`` from its bar's start. Track numbers are the take's (the song's tracks, then new parts). A message
with the wrong arguments raises :class:`BadMessage` with one line saying what it takes; the endpoint replies with it
as ``/live/error`` and carries on.
"""

from __future__ import annotations

import math

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.live.bars import LiveNote
from midi_rwkv.live.host import LiveHost
from midi_rwkv.settings import ConfigError

PREFIX = "/live"
MAX_NOTES = 512  # notes in one /live/bar message
USAGE = {
    "start": "[clock: 'server' | 'host']",
    "stop": "",
    "note_on": "pitch velocity [at]",
    "note_off": "pitch [at]",
    "clock": "at",
    "bar": "index [pitch start duration velocity]...",
    "tempo": "qpm",
    "metre": "numerator denominator",
    "structure": "follow | vary | context | off",
    "part": "track density N | polyphony LOW HIGH | register LOW HIGH | mute 0|1 (-1: back to the default)",
    "status": "",
    "ping": "",
}


class BadMessage(MidiRwkvError):
    """A message this endpoint does not take, or takes with other arguments."""


def _number(args: list, i: int, name: str, whole: bool) -> float | int:
    value = args[i]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadMessage(f"{name} must be a number, got {value!r}")
    if whole:
        if value != int(value):
            raise BadMessage(f"{name} must be a whole number, got {value!r}")
        return int(value)
    return float(value)


def _args(address: str, args: list, required: int, optional: int = 0) -> None:
    if not required <= len(args) <= required + optional:
        raise BadMessage(f"{address} takes {USAGE[address.removeprefix(PREFIX + '/')] or 'no arguments'}")


def _notes(args: list) -> list[LiveNote]:
    if len(args) % 4 or len(args) // 4 > MAX_NOTES:
        raise BadMessage(f"/live/bar: notes come as groups of 4 (pitch start duration velocity), at most {MAX_NOTES}")
    notes = []
    for k in range(0, len(args), 4):
        pitch, velocity = _number(args, k, "pitch", True), _number(args, k + 3, "velocity", True)
        notes.append(LiveNote(pitch, _number(args, k + 1, "start", False), _number(args, k + 2, "duration", False),
                              velocity))
    return notes


def _part(host: LiveHost, args: list) -> None:
    if len(args) < 3 or not isinstance(args[1], str):
        raise BadMessage(f"/live/part takes {USAGE['part']}")
    track, key, values = _number(args, 0, "track", True), args[1], args[2:]
    numbers = [_number(values, i, key, True) for i in range(len(values))]
    if key in ("density", "mute") and len(numbers) == 1:
        value = numbers[0] if numbers[0] >= 0 else None
        host.part(track, **({"density": value} if key == "density" else {"mute": bool(value)}))
    elif key in ("polyphony", "register") and len(numbers) in (1, 2):
        if len(numbers) == 1 and numbers[0] >= 0:
            raise BadMessage(f"/live/part {key} takes LOW HIGH, or -1 for the default")
        host.part(track, **{key: tuple(numbers) if len(numbers) == 2 else None})
    else:
        raise BadMessage(f"/live/part takes {USAGE['part']}")


def handle(host: LiveHost, address: str, args: list) -> list[tuple[str, list]]:
    """Carry out one message; the replies to its sender (events of a take go to the take's client instead)."""
    name = address.removeprefix(PREFIX + "/") if address.startswith(PREFIX + "/") else None
    if name not in USAGE:
        known = ", ".join(f"{PREFIX}/{a}" for a in USAGE)
        raise BadMessage(f"unknown address {address!r}: the endpoint takes {known}")
    try:
        return _dispatch(host, address, name, args)
    except (ConfigError, MidiRwkvError) as err:
        if isinstance(err, BadMessage):
            raise
        raise BadMessage(f"{address}: {err}") from None
    except (TypeError, ValueError) as err:
        raise BadMessage(f"{address}: {err}") from None


def _dispatch(host: LiveHost, address: str, name: str, args: list) -> list[tuple[str, list]]:
    if name == "start":
        _args(address, args, 0, 1)
        host.start(str(args[0]) if args else "server")
    elif name == "stop":
        _args(address, args, 0)
        host.stop()
    elif name == "note_on":
        _args(address, args, 2, 1)
        at = _number(args, 2, "at", False) if len(args) == 3 else None
        host.note_on(_number(args, 0, "pitch", True), _number(args, 1, "velocity", True), at)
    elif name == "note_off":
        _args(address, args, 1, 1)
        host.note_off(_number(args, 0, "pitch", True), _number(args, 1, "at", False) if len(args) == 2 else None)
    elif name == "clock":
        _args(address, args, 1)
        host.advance(_number(args, 0, "at", False))
    elif name == "bar":
        if not args:
            raise BadMessage(f"/live/bar takes {USAGE['bar']}")
        host.bar(_number(args, 0, "index", True), _notes(args[1:]))
    elif name == "tempo":
        _args(address, args, 1)
        host.set(qpm=_number(args, 0, "qpm", False))
    elif name == "metre":
        _args(address, args, 2)
        host.set(metre=(_number(args, 0, "numerator", True), _number(args, 1, "denominator", True)))
    elif name == "structure":
        _args(address, args, 1)
        host.set(structure=str(args[0]))
    elif name == "part":
        _part(host, args)
    elif name == "status":
        _args(address, args, 0)
        return [("/live/status", status(host))]
    else:
        _args(address, args, 0)
        return [("/live/pong", [])]
    return []


def status(host: LiveHost) -> list:
    """``playing next_bar qpm numerator denominator``: whether a take plays, the next bar the player finishes, and the
    controls for the bars still to write."""
    controls = host.controls
    session = host.session
    next_bar = session.engine.next_played if session else -1
    return [int(session is not None), next_bar, float(controls.qpm), *controls.metre]


def event_message(name: str, data: dict) -> tuple[str, list]:
    """A take's event (see :mod:`midi_rwkv.live.host`) as an OSC address and arguments."""
    if name == "ready":
        return "/live/ready", [data["bar"], float(data["qpm"]), *data["metre"]]
    if name == "grid":
        return "/live/grid", [data["bar"], float(data["start"]), float(data["quarters"]), float(data["qpm"]),
                             *data["metre"]]
    if name == "notes":
        flat = []
        for start, duration, pitch, velocity in data["notes"]:
            flat += [pitch, float(start), float(duration), velocity]
        return "/live/notes", [data["bar"], data["track"], *flat]
    if name == "timing":
        return "/live/timing", [data["played"], float(data["seconds"]), float(data["margin"])]
    if name == "stopped":
        return "/live/stopped", [data["bars"]]
    return "/live/error", [str(data.get("error", name))]
