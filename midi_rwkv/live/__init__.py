"""Playing along: a streaming accompanist that writes each part's next bar while the player plays this one.

:class:`~midi_rwkv.live.engine.LiveEngine` is the engine (bar-ahead scheduling over a running take);
:class:`~midi_rwkv.live.session.LiveSession` turns note events and a clock into played bars for it, and the front
ends drive a session: an OSC endpoint on loopback (:mod:`midi_rwkv.live.osc`) and a MIDI port
(:mod:`midi_rwkv.live.midi_port`). See docs/live.md.
"""

from midi_rwkv.live.bars import GridBar, LiveNote
from midi_rwkv.live.engine import BarStep, LiveEngine, PartBar
from midi_rwkv.live.options import LiveControls, LiveOptions, PartControls

__all__ = ["BarStep", "GridBar", "LiveControls", "LiveEngine", "LiveNote", "LiveOptions", "PartBar", "PartControls"]
