"""Personalisation: state tuning and LoRA on a frozen base model (``midi-rwkv tune``, ``tune-style``)."""
