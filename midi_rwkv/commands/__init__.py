"""The ``midi-rwkv`` subcommands: argument parsing and printing, above every stage (no stage imports this package).

Each module registers its commands on the console script's subparsers; the order here is the order of
``midi-rwkv --help``: what composers use first, then the research pipeline.
"""

from midi_rwkv.commands import (
    compiling,
    corpus,
    evaluating,
    infilling,
    live,
    parts,
    structure,
    studio,
    tokenizing,
    training,
    tuning,
)

MODULES = (infilling, studio, live, structure, tuning, training, evaluating, tokenizing, corpus, compiling, parts)
