"""The paper's MidiTok MMM/REMI configuration, and loading/saving a tokenizer as one JSON file.

The base vocabulary built here is the original release's, id for id (docs/original-release.md#vocabulary, 663 tokens).
MidiTok 3.1 reads ``pitch_range`` as inclusive, 3.0.x as exclusive of its upper end; we write the
inclusive form, and convert files saved by MidiTok < 3.1 (the original release used 3.0.5.post1)
when loading them, so the same 88 pitch tokens come out either way.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from miditok import MMM, TokenizerConfig

from midi_rwkv.errors import TokenizerFileError
from midi_rwkv.io import atomic_write

SPECIAL_TOKENS = [
    "PAD_None",
    "BOS_None",
    "EOS_None",
    "Infill_Bar",
    "Infill_Track",
    "FillBar_Start",
    "FillBar_End",
    "Track_Start",
    "Track_End",
]

PAPER_PARAMS: dict = {
    "pitch_range": (21, 108),  # inclusive: Pitch_21 .. Pitch_108 (88 tokens)
    "drums_pitch_range": (27, 87),  # inclusive: PitchDrum_27 .. PitchDrum_87 (61 tokens)
    "use_pitchdrum_tokens": True,
    "beat_res": {(0, 1): 12, (1, 2): 4, (2, 4): 2, (4, 8): 1},
    "num_velocities": 24,
    "use_velocities": True,
    "use_note_duration_programs": list(range(-1, 128)),
    "default_note_duration": 0.5,
    "remove_duplicated_notes": False,
    "encode_ids_split": "bar",
    "special_tokens": [t.removesuffix("_None") for t in SPECIAL_TOKENS],
    "use_programs": True,
    "program_changes": True,
    "programs": list(range(-1, 127)),  # program 127 (Gunshot) has no token
    "one_token_stream_for_programs": False,
    "use_time_signatures": True,
    "time_signature_range": {8: [3, 12, 6], 4: [5, 6, 3, 2, 1, 4]},
    "delete_equal_successive_time_sig_changes": False,
    "use_tempos": True,
    "num_tempos": 48,
    "tempo_range": (50, 200),
    "log_tempos": False,
    "delete_equal_successive_tempo_changes": False,
    "use_rests": False,
    "use_chords": False,
    "use_sustain_pedals": False,
    "use_pitch_bends": False,
    "use_pitch_intervals": False,
    "ac_polyphony_track": True,
    "ac_polyphony_bar": True,
    "ac_polyphony_min": 1,
    "ac_polyphony_max": 6,
    "ac_pitch_class_bar": True,
    "ac_note_density_track": True,
    "ac_note_density_track_min": 0,
    "ac_note_density_track_max": 18,
    "ac_note_density_bar": True,
    "ac_note_density_bar_max": 18,
    "ac_note_duration_bar": True,
    "ac_note_duration_track": True,
    "ac_repetition_track": True,
    "ac_repetition_track_num_bins": 10,
    "ac_repetition_track_num_consec_bars": 4,
    "base_tokenizer": "REMI",
}

PAPER_BASE_VOCAB_SIZE = 663
# Our own key in the tokenizer JSON; MidiTok stores unknown keys as attributes and ignores them.
META_KEY = "midi_rwkv"


def paper_tokenizer() -> MMM:
    """A fresh (untrained, 663-token) MMM tokenizer with the paper's configuration."""
    return MMM(TokenizerConfig(**PAPER_PARAMS))


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def load_tokenizer(path: str | Path) -> MMM:
    """Load a tokenizer JSON saved by midi-rwkv or by the original release (MidiTok MMM JSON).

    Raises:
        TokenizerFileError: missing, not JSON, not an MMM tokenizer, or inconsistent vocabulary.
    """
    path = Path(path)
    try:
        params = json.loads(path.read_text())
    except FileNotFoundError:
        raise TokenizerFileError(f"tokenizer file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TokenizerFileError(f"{path}: not a tokenizer JSON file ({err})") from None
    if not isinstance(params, dict) or params.get("tokenization") != "MMM" or "config" not in params:
        raise TokenizerFileError(f"{path}: not a MidiTok MMM tokenizer file")
    if _version_tuple(params.get("miditok_version", "3.1.0")) < (3, 1, 0):
        config = params["config"]  # MidiTok < 3.1 ranges exclude their upper end
        for key in ("pitch_range", "drums_pitch_range"):
            low, high = config[key]
            config[key] = [low, high - 1]
    with tempfile.TemporaryDirectory() as tmp:
        fixed = Path(tmp) / "tokenizer.json"
        fixed.write_text(json.dumps(params))
        try:
            tokenizer = MMM(params=fixed)
        except Exception as err:  # MidiTok raises assorted errors on malformed configs
            raise TokenizerFileError(f"{path}: MidiTok could not build the tokenizer ({err})") from None
    rebuilt = MMM(tokenizer.config)  # the vocabulary the config implies
    if "_vocab_base" in params and rebuilt.vocab != params["_vocab_base"]:
        raise TokenizerFileError(f"{path}: its base vocabulary does not match its configuration")
    return tokenizer


def save_tokenizer(tokenizer: MMM, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``tokenizer`` to ``path`` atomically (temporary file, then rename)."""
    return atomic_write(path, lambda tmp: tokenizer.save(tmp, additional_attributes={META_KEY: metadata or {}}))
