"""The constraints a live bar is written under: a bar infill's (or, following the form, its source's), and one more
ban: a drum part writes drum hits only, a pitched part pitches only, whatever its register."""

from __future__ import annotations

from midi_rwkv.inference.constraints import BarInfillConstraint
from midi_rwkv.inference.follow import FollowSource


class _AlsoBanned:
    """A constraint that bans ``also_banned`` ([V] bool) besides its own."""

    also_banned = None

    def banned(self):
        banned = super().banned()
        return banned if self.also_banned is None else banned | self.also_banned


class LiveBar(_AlsoBanned, BarInfillConstraint):
    """:class:`BarInfillConstraint` with :attr:`also_banned`."""


class LiveFollow(_AlsoBanned, FollowSource):
    """:class:`FollowSource` with :attr:`also_banned`."""
