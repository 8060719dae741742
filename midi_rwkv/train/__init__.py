"""Training: the LightningModule, callbacks, and one-run orchestration (``python -m midi_rwkv.train``)."""
