"""Following the song's form while decoding: a copy distribution over a source bar's tokens, mixed into the model's.

Songs repeat. Where the song's structure finds a window whose other tracks match the span's
(:mod:`midi_rwkv.structure`), the target track's bars there are a strong guess for the bars to write. While bar k
is written, the constraint proposes the next token of source bar k (its body in model ids, then a bar line), and
the generator draws from ``(1 - w_k) p_model + w_k [proposed token]`` (:meth:`Constraint.proposal`): a cache
language model / kNN-LM mixture with a copy distribution that follows one aligned source.

The weight w_k is set per bar by the caller (from how well the other tracks match there, and zero where the
requested controls differ from the source bar's, so the controls win). kNN-LM's known failure in open-ended
generation is drifting into copying with a fixed weight; here the copy is anchored to one bar at a time, and when
the model leaves the source (it samples a token the source does not continue with) the copy tries to re-align
further on in the bar, else stops proposing until the next bar.
"""

from __future__ import annotations

from collections.abc import Sequence

from midi_rwkv.inference.constraints import BarInfillConstraint, TokenTables


class FollowSource(BarInfillConstraint):
    """:class:`BarInfillConstraint` that also proposes source bar k's tokens while bar k is written.

    ``sources``: per written bar, the source bar's body in model ids (None: no source for that bar).
    ``weights``: per written bar, the mixing weight w in [0, 1] (0: the model alone).
    """

    def __init__(self, tables: TokenTables, bars: list, sources: Sequence[Sequence[int] | None],
                 weights: Sequence[float], bar_token: int, **options):
        super().__init__(tables, bars, **options)
        if len(sources) != len(bars) or len(weights) != len(bars):
            raise ValueError(f"{len(sources)} sources and {len(weights)} weights for {len(bars)} bars")
        self.sources = [tuple(s) if s is not None else None for s in sources]
        self.weights = list(weights)
        self.bar_token = bar_token
        self.position = 0  # tokens of the current source bar already followed
        self.following = True  # False once the model left the source in this bar
        self.skipped = False  # the model skipped part of the current source bar
        self.followed = 0  # sampled tokens that equalled the proposal
        self.exact = [False] * len(bars)  # per written bar: it is its source bar, token for token

    def source_of(self, bar: int) -> tuple[int, ...] | None:
        """Bar ``bar``'s source, in model ids."""
        return self.sources[bar]

    def _expected(self) -> int | None:
        """The source's next token in the current bar (its bar line once its body is done), or None."""
        if self.done or self.current >= len(self.bars) or not self.following:
            return None
        source = self.source_of(self.current)
        if source is None or self.weights[self.current] <= 0:
            return None
        return source[self.position] if self.position < len(source) else self.bar_token

    def proposal(self) -> tuple[int, float] | None:
        token = self._expected()
        return None if token is None else (token, self.weights[self.current])

    def after_sample(self, token: int) -> list[int]:
        expected = self._expected()
        if expected is not None:
            self._align(token, expected)
        bar = self.current
        out = super().after_sample(token)
        if self.current != bar:  # a new bar: follow its own source from the start
            source = self.source_of(bar)
            self.exact[bar] = (source is not None and self.weights[bar] > 0 and self.following and not self.skipped
                               and self.position == len(source) + 1)  # its body and its bar line
            self.position, self.following, self.skipped = 0, True, False
        return out

    def _align(self, token: int, expected: int) -> None:
        if token == expected:
            self.position += 1
            self.followed += 1
            return
        if self.tables.starts_bar[token]:  # the model ends the bar early: the next bar starts afresh anyway
            return
        source = self.source_of(self.current)
        rest = source[self.position + 1 :]
        if token in rest:  # the model skipped some of the source: continue after the token it wrote
            self.position += 2 + rest.index(token)
            self.skipped = True
        else:  # it wrote something the source does not have: stop proposing in this bar
            self.following = False


class FollowEarlierBars(FollowSource):
    """A track written from start to end that follows its own earlier bars where the song repeats: bar k proposes
    what this candidate wrote in bar ``earlier[k]`` (an earlier bar whose other tracks match bar k's), so a chorus
    that comes back comes back the same. ``earlier``: per bar, that bar's index or None."""

    def __init__(self, tables: TokenTables, bars: list, earlier: Sequence[int | None], weights: Sequence[float],
                 bar_token: int, **options):
        if any(e is not None and not 0 <= e < k for k, e in enumerate(earlier)):
            raise ValueError("each bar can only follow an earlier bar")
        super().__init__(tables, bars, [None] * len(bars), weights, bar_token, **options)
        self.earlier = list(earlier)
        self.written: list[tuple[int, ...]] = []  # the body this candidate sampled in each finished bar
        self.body: list[int] = []

    def source_of(self, bar: int) -> tuple[int, ...] | None:
        earlier = self.earlier[bar] if bar < len(self.earlier) else None
        return self.written[earlier] if earlier is not None and earlier < len(self.written) else None

    def after_sample(self, token: int) -> list[int]:
        bar = self.current
        out = super().after_sample(token)
        if self.current != bar:
            self.written.append(tuple(self.body))
            self.body = []
        else:
            self.body.append(token)
        return out
