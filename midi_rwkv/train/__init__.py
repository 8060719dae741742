"""Training: the LightningModule, callbacks, one-run orchestration (``midi-rwkv train``), models in parts."""
