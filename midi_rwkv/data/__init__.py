"""Corpora, prefiltering and splits, the training Dataset, sampler and collator."""
