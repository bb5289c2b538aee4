"""Judging: whether a step did what its post says, and whether two captures differ."""
