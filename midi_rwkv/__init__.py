"""midi-rwkv: controllable, personalizable symbolic music infilling with RWKV-7."""

__version__ = "0.1.0"
