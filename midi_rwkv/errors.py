"""Errors a user can fix. The CLI prints each as one line and exits non-zero.

Every stage raises a subclass of :class:`MidiRwkvError` for bad input, so callers never see a
traceback from deep inside MidiTok or symusic for a problem that is the input's, not ours.
"""


class MidiRwkvError(Exception):
    """Base class: a problem with the user's input, reported as one line."""


class MidiFileError(MidiRwkvError):
    """A MIDI file is missing, unreadable or corrupt."""


class EmptyScoreError(MidiFileError):
    """A MIDI file holds no notes that the tokenizer can represent."""


class TrackIndexError(MidiRwkvError):
    """A track index is outside the piece."""


class BarRangeError(MidiRwkvError):
    """A bar span is empty, reversed or outside the piece."""


class UnsupportedMetreError(MidiRwkvError):
    """A time signature cannot be written with the tokenizer's time-signature tokens."""


class ControlError(MidiRwkvError):
    """Requested controls are malformed or do not apply (e.g. pitch controls on drums)."""


class SequenceTooLongError(MidiRwkvError):
    """The infill section alone does not fit in the maximum sequence length."""


class TokenizerFileError(MidiRwkvError):
    """A tokenizer file is missing, malformed or incompatible."""
