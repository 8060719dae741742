"""Inference: the token-id engine, the sampler, bar-by-bar control, and infilling MIDI files."""
