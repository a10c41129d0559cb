"""Corpora for MLM: reading sources, tokenising, packing, masking, caching, sharding."""
