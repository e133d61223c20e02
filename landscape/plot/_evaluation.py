"""Plots: _evaluation (filled in by its owner)."""

__all__: list[str] = []
