"""The song's structure: bar-by-bar self-similarity of every track, where else the song repeats a span, sections.

Computed once per song, below inference and the metrics, which both use it (see ``song.py``).
"""

from midi_rwkv.structure.sections import Section
from midi_rwkv.structure.song import REPEAT_THRESHOLD, SongStructure, Source, has_repeat, song_bars

__all__ = ["REPEAT_THRESHOLD", "Section", "SongStructure", "Source", "has_repeat", "song_bars"]
