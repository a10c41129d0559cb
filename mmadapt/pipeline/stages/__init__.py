"""The pipeline's stages, one module each, and what they share (initialisation, snapshots)."""
