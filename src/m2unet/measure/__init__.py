"""Vessel measurements from a binary vessel map: ``m2unet.measure(vessels, fov=None, pixel_size_um=None)``.

This package is itself callable, so that ``m2unet.measure(...)`` works whether or not a sub-module of it
was imported first (an import sets the package attribute ``m2unet.measure`` to this module). See
:func:`m2unet.measure.core.measure` and the README section "Vessel measurements".
"""

import sys
import types

from .core import JUNCTION_COLUMNS, SEGMENT_COLUMNS, SUMMARY_COLUMNS, Measurements, measure


class _CallableModule(types.ModuleType):
    def __call__(self, vessels, fov=None, pixel_size_um=None, **options) -> Measurements:
        return measure(vessels, fov, pixel_size_um, **options)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["JUNCTION_COLUMNS", "SEGMENT_COLUMNS", "SUMMARY_COLUMNS", "Measurements", "measure"]
