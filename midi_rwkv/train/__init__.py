"""Training: the LightningModule, callbacks, and one-run orchestration (``midi-rwkv train``)."""
