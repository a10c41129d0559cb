"""What a run measures besides scores: alignment, the basin gap, the collapse check."""
