"""Moved to :mod:`m2unet.paper` (a leaf both models and evaluation read); kept so older imports keep working."""

from ..paper import CITATION, RESULTS, TABLE2, TIMING

__all__ = ["CITATION", "RESULTS", "TABLE2", "TIMING"]
