"""``m2unet segment --measure``: the measurement stage of :mod:`m2unet.inference.batch`.

The measure layer sits above inference (it segments photographs itself), so inference never imports it: the
top-level CLI hands :data:`STAGE` to ``segment``, which passes it to the engine (a Ray actor receives it by
reference and imports this module).

Per image it writes ``OUT/NAME_segments.csv`` and ``OUT/NAME_junctions.csv`` (the columns of
``m2unet measure``'s segments.csv and junctions.csv) and returns the summary (the measurements.csv row), whose
columns go into results.parquet; at the end ``OUT/measurements.csv`` gathers the summaries of every image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import M2UNetError
from .batch import with_review, write_csv
from .core import JUNCTION_COLUMNS, SEGMENT_COLUMNS, SUMMARY_COLUMNS, measure

OUTPUTS = {"segments": "segments.csv", "junctions": "junctions.csv"}
KEPT_IN_RECORD = ("image", "pixel_size_um")  # the record already has these (path / stem, pixel_size_um)


class MeasureStage:
    """Callable: (vessels, fov, name, pixel_size_um, {kind: file}) → the summary columns for the record."""

    outputs = OUTPUTS

    def __call__(self, vessels: np.ndarray, fov: np.ndarray | None, name: str, pixel_size_um: float | None, files: dict[str, Path]) -> dict:
        try:
            result = measure(vessels, fov, pixel_size_um, name=name)
        except (MemoryError, ValueError) as error:
            raise M2UNetError(f"{name}: measuring failed ({type(error).__name__}: {str(error).splitlines()[0][:120]})") from None
        write_csv(files["segments"], SEGMENT_COLUMNS, result.segments)
        write_csv(files["junctions"], JUNCTION_COLUMNS, result.junctions)
        return {key: value for key, value in result.summary.items() if key not in KEPT_IN_RECORD}

    def write_table(self, path: Path, records: list[dict]) -> None:
        """OUT/measurements.csv: one row per measured image (image = its output stem), in input order."""
        rows = [dict(record, image=record["stem"], note=with_review(record.get("note"), record.get("review")))
                for record in records if record.get("status") == "ok" and "vessel_density" in record]
        write_csv(path, SUMMARY_COLUMNS, rows)


STAGE = MeasureStage()
