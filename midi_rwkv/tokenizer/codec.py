"""The one canonical BPE encoding, shared by training and inference (docs/original-release.md#canonical-encoding).

A sequence is a list of *atomic* tokens (special tokens, ``Program_p``, controls) and *words*.
Each bar contributes two words, its header (``Bar_None TimeSig_n/d``) and its body (the bar's
events). BPE merges happen only inside a word, so the same bar always gets the same ids, however
the sequence around it was built, and a bar header never merges with the notes after it — the
point where bar controls go is always a token boundary.

Model ids below the base vocabulary size are the base tokens themselves (MidiTok's BPE keeps
them), so atomic tokens need no encoding. A tokenizer saved by the original release uses a
Metaspace pre-tokenizer (every word starts with ``▁``); it still works here, with its own ids.
"""

from __future__ import annotations

from miditok import MMM

from midi_rwkv.errors import TokenizerFileError
from midi_rwkv.tokenizer.remi import BaseVocab

_METASPACE = "\u2581"


class Codec:
    """Canonical words <-> model ids for one tokenizer (BPE-trained or not).

    It is the MIDI path's :class:`~midi_rwkv.tokenizer.contract.TokenCodec` (``vocab``, :meth:`atomic`); the rest
    (BPE words, decoding) only the MIDI path has.
    """

    def __init__(self, tokenizer: MMM):
        self.tokenizer = tokenizer
        self.vocab = BaseVocab(tokenizer)
        self.base_size = len(tokenizer.vocab)
        self._hf = tokenizer._model  # the trained Hugging Face tokenizer, or None
        self._byte = tokenizer._vocab_base_id_to_byte  # base id -> its character in BPE strings
        self._cache: dict[tuple[int, ...], tuple[int, ...]] = {}
        if self._hf is None:
            self.pieces = [(i,) for i in range(self.base_size)]
        else:
            self.pieces = self._learned_pieces()
        self.vocab_size = len(self.pieces)

    def _learned_pieces(self) -> list[tuple[int, ...]]:
        char_to_id = {char: i for i, char in self._byte.items()}
        pieces = []
        for model_id in range(self._hf.get_vocab_size()):
            text = self._hf.id_to_token(model_id).removeprefix(_METASPACE)
            try:
                pieces.append(tuple(char_to_id[c] for c in text))
            except KeyError:
                raise TokenizerFileError(
                    f"BPE token {model_id} contains a character outside the base vocabulary"
                ) from None
        if any(pieces[i] != (i,) for i in range(self.base_size)):
            raise TokenizerFileError("the BPE model does not keep base token ids (ids 0..base size - 1)")
        return pieces

    def encode_words(self, words: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """Model ids of each word (an empty word gives no ids)."""
        if self._hf is None:
            return [tuple(w) for w in words]
        todo = list({w for w in words if w and w not in self._cache})
        if todo:
            texts = [["".join(self._byte[i] for i in w)] for w in todo]
            for word, encoding in zip(todo, self._hf.encode_batch(texts, is_pretokenized=True)):
                self._cache[word] = tuple(encoding.ids)
        return [self._cache[w] if w else () for w in words]

    def decode(self, ids) -> list[int]:
        """Base ids of model ids (a bare ``▁`` decodes to nothing)."""
        out: list[int] = []
        for i in ids:
            out.extend(self.pieces[i])
        return out

    def atomic(self, tokens: list[str]) -> tuple[int, ...]:
        """Model ids of atomic tokens (specials, programs, controls): their base ids."""
        return tuple(self.vocab[t] for t in tokens)
