"""Personalisation: state tuning and LoRA on a frozen base model (``python -m midi_rwkv.peft``)."""
