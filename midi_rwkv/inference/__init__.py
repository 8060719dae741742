"""Inference: the token-id generator, its backends (the PyTorch and GGML engines), the sampler, bar-by-bar control,
and infilling MIDI files."""
