"""Corpora, prefiltering and splits, the compiled corpus (tokenized once, read as arrays), and the training Dataset,
sampler and collator."""
