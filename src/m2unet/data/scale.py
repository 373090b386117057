"""Scale normalisation: bring a photograph's field of view (FOV) to a fixed diameter, and a map back.

Vessel widths in pixels follow the camera's resolution: the FOV is about 540 px across in DRIVE, 900 px in
CHASE_DB1 and 3250 px in HRF, and a model trained at one scale fails at another (README, cross-dataset table).
A :class:`ScaleFrame` crops the photograph to the bounding box of its FOV (plus a margin), resizes it so that
the FOV diameter becomes ``diameter`` pixels, and maps a probability computed there back onto the whole
photograph (zero outside the box). Training (:mod:`m2unet.training.data`) and inference
(:mod:`m2unet.inference.pipeline`) use the same frame, so a model sees vessels of one width whatever the camera.

The FOV diameter is the larger side of the mask's bounding box: HRF's FOV disk is cut at the top and bottom of
the frame, so its width (3250 px) is the diameter, not its height (2336 px). Where the disk is cut on both axes
(a tight frame: only its arcs in the corners are visible), neither side is the diameter; a circle fitted to the
visible arcs gives it (:func:`fitted_diameter`).
Resizing: Pillow's ``resize`` on float32 planes, bilinear with its built-in antialiasing when shrinking (the
filter support grows with the reduction, i.e. an area-weighted mean), so thin vessels fade into grey instead of
aliasing into dashes. One exception: the map of a photograph enlarged to run far more than any photograph whose labels
the model learnt from comes back by the maximum over each photograph pixel's model pixels (:func:`shrink_by_max`), not
their mean (:func:`back_max_from`). Whoever drew a low-resolution camera's labels marked every pixel a vessel crosses,
however much thinner than the pixel the vessel is (DRIVE's labels cover 12.7 % of the FOV, CHASE_DB1's and HRF's
9.6 % and 9.3 %), and the mean dilutes such a vessel below the threshold: the model trained without DRIVE (its labels
drawn at most 1.07× coarser than its 1024-px grid) scores 0.741 on DRIVE's test split (1.9×) with the mean and 0.786
with the maximum (results/scale/back_resize_loo_drive.md). A model that learnt DRIVE's labels as they are draws its
vessels as widened already, and the maximum would widen them twice (the ema300 universal model on DRIVE's held-out
training images: results/scale/back_resize.md); one that compared them as pooled blocks (``pool_coarse_labels``)
learnt them at the pooled grid, and its maps come back as it was trained, by the maximum (the shipped universal model
on DRIVE's test split: 0.8108 against 0.8046 with the mean; results/scale/back_resize_poolz20cc.md, docs/universal.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# A resize by less than this fraction is skipped: the model sees the photograph as it is (no resampling blur),
# so in-domain results are those of the unscaled model.
SCALE_TOLERANCE = 0.05
MARGIN = 0.02  # of the FOV diameter, kept around the FOV box so that the FOV border is not at the crop edge
# A map comes back by the maximum where its photograph was enlarged this many times more than the coarsest labels the
# model learnt from (:func:`back_max_from`). Below it a photograph pixel holds one model pixel in most rows and columns
# and two in the rest, and a maximum would only widen vessels where they cross those (CHASE_DB1 run by `universal` at
# 1.11-1.39×: 0.004 lower; results/scale/back_resize*.md).
MAX_BACK_ENLARGEMENT = 1.5


def fov_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the bounding box of a boolean FOV mask (the whole image when it is empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0, 0, mask.shape[0], mask.shape[1]
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def fov_diameter(mask: np.ndarray) -> int:
    """The FOV's diameter in pixels: the larger side of its bounding box, or, where the FOV reaches the frame's edge on
    both axes, the circle fitted to its visible border when that is larger (see the module docstring)."""
    top, left, height, width = fov_box(mask)
    side = max(height, width)
    cut_vertically = top == 0 or top + height == mask.shape[0]
    cut_horizontally = left == 0 or left + width == mask.shape[1]
    if not (cut_vertically and cut_horizontally):
        return side
    fitted = fitted_diameter(mask)
    return max(side, fitted) if fitted is not None else side


MIN_ARC_PIXELS = 64  # border pixels a circle is fitted to; fewer (a frame filled by the FOV): no fit
ARC_TOLERANCE = 0.03  # of the radius: border pixels farther from the first fit (holes, notches) are left out


def fitted_diameter(mask: np.ndarray) -> int | None:
    """The diameter of the circle through the FOV's border inside the frame (least squares, Kåsa's algebraic fit,
    refitted once without outliers); None where too little border is visible or the circle is larger than the frame's
    diagonal, which a disk whose edge shows in the frame cannot be (:func:`fov_diameter` keeps the box's side where
    the fit is smaller)."""
    inner = mask[1:-1, 1:-1]
    interior = inner & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    rows, cols = np.nonzero(inner & ~interior)  # border pixels, never those on the frame's edge
    if rows.size < MIN_ARC_PIXELS:
        return None
    step = max(1, rows.size // 20000)  # a few thousand points fix a circle; HRF's border has ~10⁴
    y, x = rows[::step].astype(np.float64) + 1, cols[::step].astype(np.float64) + 1
    for _ in range(2):
        design = np.stack([x, y, np.ones_like(x)], axis=1)
        (a, b, c), *_ = np.linalg.lstsq(design, x**2 + y**2, rcond=None)
        cx, cy = a / 2, b / 2
        radius = float(np.sqrt(max(c + cx**2 + cy**2, 0.0)))
        near = np.abs(np.hypot(x - cx, y - cy) - radius) <= ARC_TOLERANCE * radius
        if near.sum() < MIN_ARC_PIXELS:
            return None
        x, y = x[near], y[near]
    diameter = int(round(2 * radius))
    return diameter if diameter <= np.hypot(*mask.shape) else None


def resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float32 H×W plane resized to ``size`` = (height, width), bilinear (antialiased when shrinking)."""
    height, width = size
    if plane.shape == (height, width):
        return np.asarray(plane, dtype=np.float32)
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(image.resize((width, height), resample=Image.BILINEAR), dtype=np.float32)


def shrink_by_max(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float32 H×W ``plane`` shrunk to ``size`` = (height, width), each new pixel the maximum over the old pixels
    whose centres fall inside it (every old pixel counts for exactly one new pixel)."""

    def along(values: np.ndarray, new: int, axis: int) -> np.ndarray:
        old = values.shape[axis]
        if new > old:
            raise ValueError(f"shrink_by_max shrinks; got {old} -> {new} pixels")
        owner = np.minimum(((np.arange(old) + 0.5) * new / old).astype(np.int64), new - 1)
        return np.maximum.reduceat(values, np.searchsorted(owner, np.arange(new)), axis=axis)

    return along(along(np.asarray(plane, dtype=np.float32), size[0], 0), size[1], 1)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An H×W×C (or H×W) float image resized to ``size`` = (height, width), channel by channel."""
    if image.ndim == 2:
        return resize_plane(image, size)
    return np.stack([resize_plane(image[..., c], size) for c in range(image.shape[2])], axis=2)


@dataclass(frozen=True)
class ScaleFrame:
    """Where a photograph's FOV box lies and the size it is resized to; ``scale`` = new size / old size.

    An identity frame (``scale`` 1, the whole image) is used when no resize is needed.
    """

    image_shape: tuple[int, int]  # (H, W) of the whole photograph
    box: tuple[int, int, int, int]  # (top, left, height, width) of the crop in the photograph
    size: tuple[int, int]  # (height, width) the crop is resized to
    scale: float

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.box == (0, 0, *self.image_shape)

    def to_model(self, array: np.ndarray) -> np.ndarray:
        """The crop of ``array`` (image H×W×C or plane H×W, float) resized to :attr:`size`."""
        if self.identity:
            return array
        top, left, height, width = self.box
        return resize_image(array[top : top + height, left : left + width], self.size)

    def fov_to_model(self, mask: np.ndarray) -> np.ndarray:
        """The photograph's boolean FOV ``mask`` in the frame :meth:`to_model` makes (resized as a float plane)."""
        return self.to_model(mask.astype(np.float32)) >= 0.5

    def to_image(self, probability: np.ndarray, max_from: float | None = None) -> np.ndarray:
        """A map computed on :meth:`to_model`'s output, back on the whole photograph (0 outside the box); from an
        enlargement of ``max_from`` up (the model's :func:`back_max_from`) by the maximum over each photograph pixel,
        else (and always when None: a caller that does not know the model) by the mean."""
        if self.identity:
            return probability
        top, left, height, width = self.box
        back = shrink_by_max if max_from is not None and self.scale >= max_from else resize_plane  # why: the module docstring
        full = np.zeros(self.image_shape, dtype=np.float32)
        full[top : top + height, left : left + width] = back(probability, (height, width))
        return full


def label_pool(diameter: float, dataset_diameter: float) -> int:
    """The side k of the max-pool by which a run with coarse labels pooled (``m2unet train --pool-coarse-labels``) compares
    its map with the labels of a dataset whose FOV (``dataset_diameter`` px) it enlarges to ``diameter``: the enlargement
    rounded where it is at least :data:`MAX_BACK_ENLARGEMENT`, else 1 (compared pixel by pixel). Each k×k block of the
    map then answers for one pixel of the label as its annotator drew it, as :func:`shrink_by_max` brings maps back."""
    enlarged = float(diameter) / max(float(dataset_diameter), 1.0)
    return max(1, int(round(enlarged))) if enlarged >= MAX_BACK_ENLARGEMENT else 1


def back_max_from(metadata: dict) -> float:
    """The enlargement from which a model's maps come back by the maximum over each photograph pixel: :data:`MAX_BACK_ENLARGEMENT`
    times the most its training photographs were enlarged (its FOV diameter over each training dataset's, at least 1),
    since its maps reproduce the widening of labels drawn that coarse already (module docstring). A run that pooled coarse
    labels (``pool_coarse_labels``) learnt each such dataset's labels at the k-times coarser grid of :func:`label_pool`."""
    from .datasets import FOV_DIAMETER

    trained_at = metadata.get("fov_diameter")
    datasets = [d for d in metadata.get("datasets") or [metadata.get("dataset")] if d in FOV_DIAMETER]
    pooled = bool(metadata.get("pool_coarse_labels"))

    def coarseness(dataset: str) -> float:
        enlarged = float(trained_at) / FOV_DIAMETER[dataset]
        return enlarged / label_pool(trained_at, FOV_DIAMETER[dataset]) if pooled else enlarged

    enlarged = max([coarseness(d) for d in datasets] if trained_at else [], default=1.0)
    return MAX_BACK_ENLARGEMENT * max(enlarged, 1.0)


def scale_frame(mask: np.ndarray, diameter: int, tolerance: float = SCALE_TOLERANCE) -> ScaleFrame:
    """The frame that brings the FOV of ``mask`` to ``diameter`` pixels, up or down (:func:`run_frame`: the
    diameter a model runs a photograph at); a scale within ``tolerance`` of 1 is not applied at all (identity frame,
    not even a crop).
    """
    shape = tuple(int(s) for s in mask.shape[:2])
    scale = diameter / max(fov_diameter(mask), 1)
    if abs(scale - 1.0) <= tolerance:
        return ScaleFrame(shape, (0, 0, *shape), shape, 1.0)
    top, left, height, width = fov_box(mask)
    margin = int(round(MARGIN * max(height, width)))
    bottom, right = min(shape[0], top + height + margin), min(shape[1], left + width + margin)
    top, left = max(0, top - margin), max(0, left - margin)
    return scaled_box(shape, (top, left, bottom - top, right - left), scale)


def scaled_box(shape: tuple[int, int], box: tuple[int, int, int, int], scale: float) -> ScaleFrame:
    """The frame that crops ``box`` = (top, left, height, width) of a photograph of ``shape`` and resizes it by ``scale``
    (at least 16 px a side)."""
    return ScaleFrame(shape, box, (max(16, int(round(box[2] * scale))), max(16, int(round(box[3] * scale)))), scale)


def mean_vessel_width(binary: np.ndarray) -> float:
    """Mean width in pixels of the vessels of a binary map: vessel pixels per centreline pixel."""
    from skimage.morphology import skeletonize

    return float(binary.sum() / max(int(skeletonize(binary).sum()), 1))


@dataclass(frozen=True)
class WidthRule:
    """Run a photograph where the model's own map has the vessel width the model was trained at.

    A model trained with each dataset scaled to one mean label vessel width (``m2unet train --vessel-width``) sees
    the FOV of DRIVE, CHASE_DB1 and HRF at different diameters, so no FOV diameter fits a new camera. Instead the
    photograph runs once with its FOV at ``probe`` px; the mean vessel width w of that map (at ``threshold``, inside
    the FOV) gives the diameter where the map would be ``map_width`` px wide, probe · map_width / w (widths scale
    with the diameter), clamped to ``limits``, and it runs again there. ``map_width`` is calibrated on the run's
    held-out training images (:mod:`m2unet.training.run_diameter`): the width that puts each at the diameter its
    dataset was trained at. No label of the new camera is needed.
    """

    probe: int
    map_width: float
    limits: tuple[int, int]
    threshold: float

    def diameter_for(self, width: float, measured_at: float) -> int:
        """The FOV diameter to run at, given the map's mean ``width`` measured with the FOV ``measured_at`` px across."""
        return int(np.clip(round(measured_at * self.map_width / max(width, 1e-6)), *self.limits))

    def probe_map(self, predict, image: np.ndarray, mask: np.ndarray) -> tuple[float, float, ScaleFrame, np.ndarray]:
        """(mean map width, FOV diameter it was measured at, frame, probability in the frame) of the first pass."""
        frame = scale_frame(mask, self.probe)
        probability = predict(frame.to_model(image))
        fov = frame.fov_to_model(mask)
        return mean_vessel_width((probability >= self.threshold) & fov), fov_diameter(mask) * frame.scale, frame, probability


SEARCH_STEP = 256  # px between the FOV diameters a search tries within the stored range (results/scale/consistency_diameter.md)
SEARCH_RATIO = 1.25  # between the diameters it tries above the range, where F1 changes slowly near its peak
PROBE_WINDOW = 0.5  # of the FOV diameter: the side of the central square a tried diameter above the range is scored on
SEARCH_VERSION = "above range: window 0.5, x1.25"  # changes what a search outputs: a batch folder of another does not resume
# changes what a search with test-time flips outputs (DiameterSearch.run; a search without flips is unchanged by it)
SEARCH_FLIPS_VERSION = "whole FOVs plain, central squares flipped, the kept view flipped"


def as_predicted(predict, view: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
    """The map of the view a photograph is kept at, as ``predict`` gives it (``first``: already run): the default
    ``final`` of :func:`run_scaled`; test-time flips pass :func:`m2unet.inference.tiling.flip_average` instead."""
    return predict(view) if first is None else first


def kept_map(final, predict, frame: ScaleFrame, image: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``final``'s map of the view ``frame`` cuts from ``image``, whose plain map ``first`` a probe or a search has
    already: the view is resized again only when ``final`` runs more than the plain map (test-time flips)."""
    return first if final is as_predicted else final(predict, frame.to_model(image), first)


def window_frame(mask: np.ndarray, diameter: int, fraction: float = PROBE_WINDOW) -> ScaleFrame:
    """The central square of the FOV of ``mask``, ``fraction`` of its diameter on a side (cut by the photograph's
    edges), at the scale that brings the FOV to ``diameter`` px: what a search scores a diameter on, for a fraction
    of the cost of the whole FOV box (thin and thick vessels both pass through the centre)."""
    shape = tuple(int(s) for s in mask.shape[:2])
    fov = max(fov_diameter(mask), 1)
    top, left, height, width = fov_box(mask)
    side = int(round(fraction * fov))
    side_y, side_x = min(shape[0], side), min(shape[1], side)
    y = min(max(0, top + height // 2 - side_y // 2), shape[0] - side_y)
    x = min(max(0, left + width // 2 - side_x // 2), shape[1] - side_x)
    return scaled_box(shape, (y, x, side_y, side_x), diameter / fov)


def self_consistency(probability: np.ndarray, threshold: float) -> float:
    """Soft Dice of a probability map and its own binary map at ``threshold``: 1 when every pixel is 0 or 1, lower
    the more of the map hovers near the threshold (a model run at a scale it does not know is unsure of more pixels)."""
    binary = probability >= threshold
    return float(2 * probability[binary].sum() / max(float(probability.sum()) + int(binary.sum()), 1e-9))


@dataclass(frozen=True)
class DiameterSearch:
    """Run a photograph at the FOV diameter, among ``candidates``, where the model's own map is most self-consistent.

    The FOV diameter is not the vessel width: a 30° camera draws wider vessels than a 45° one at the same diameter,
    so the stored range (``start``: clamp(d, low, high)) runs a high-resolution 30° photograph too large. The search
    starts at the candidate nearest that choice and climbs to a neighbour while its map is more self-consistent
    (:func:`self_consistency` at ``threshold``, inside the FOV); no label of the new camera is needed. Each step is one
    more run of the model. Tries on the whole FOV are plain maps and ``final`` (:func:`run_scaled`: test-time flips) runs
    only at the chosen diameter, its plain map reused: flips cost three runs on top of the search, not four times it.
    Tries on the central square (below) run as ``final`` runs the kept view: flip-averaged squares are scored more
    steadily than plain ones, which stopped held-out HRF's climb early (results/scale/loo.md; docs/universal.md).

    A photograph whose own FOV is wider than the range also has diameters above it, each :data:`SEARCH_RATIO` times
    the last, and its own (:meth:`candidates_for`): the range's upper end was chosen on the training cameras'
    photographs, and a camera with finer vessels needs more pixels than they did (a model trained without HRF stores
    1024 px and runs HRF, 3250 px across, far too small). Above its own diameter a photograph would only be
    enlarged, so that is where the search stops. Such a photograph's tries are scored on the central square of its
    FOV (:func:`window_frame`, a quarter of the FOV's bounding square) and only the chosen diameter runs whole: each
    try at its size would cost up to 3× a run at the range's upper end. A photograph within the range is scored on its
    whole FOV (a few runs at ≤ 1792 px): on DRIVE's, the central square prefers 1536 px where the whole FOV prefers
    1280, and F1 is 0.004 lower (results/ours/universal-search, README).
    """

    candidates: tuple[int, ...]  # ascending
    threshold: float
    start: tuple[int, int]

    def candidates_for(self, fov: int) -> tuple[int, ...]:
        """The diameters tried on a photograph whose FOV is ``fov`` px across."""
        above, last = [], self.candidates[-1]
        while (last := int(round(last * SEARCH_RATIO / 32)) * 32) < fov * (1 - SCALE_TOLERANCE):  # not just below its own
            above.append(last)
        return self.candidates + tuple(above) + ((fov,) if fov > self.candidates[-1] else ())

    @classmethod
    def within(cls, scale: tuple[int, int], threshold: float) -> DiameterSearch:
        """Candidates every :data:`SEARCH_STEP` px across the stored range ``scale`` = (low, high)."""
        low, high = scale
        return cls(tuple(range(low, high, SEARCH_STEP)) + (high,), threshold, scale)

    def choose(self, fov: int, score) -> int:
        """The diameter the search stops at for a photograph whose FOV is ``fov`` px across; ``score(diameter)`` is
        the map's self-consistency there (a benchmark may pass recorded ones)."""
        candidates = self.candidates_for(fov)
        start = run_at(fov, self.start)
        here = min(range(len(candidates)), key=lambda i: abs(candidates[i] - start))
        score(candidates[here])  # first: a neighbour that only ties with the start must not become the kept map
        while True:
            neighbours = [i for i in (here - 1, here + 1) if 0 <= i < len(candidates)]
            best = max(neighbours, key=lambda i: score(candidates[i]), default=here)
            if score(candidates[best]) <= score(candidates[here]):
                return candidates[here]
            here = best

    def run(self, predict, image: np.ndarray, mask: np.ndarray, max_from: float | None = None,
            final=as_predicted) -> tuple[np.ndarray, int]:
        """(probability on the whole photograph, FOV diameter it ran at); ``max_from``: :meth:`ScaleFrame.to_image`;
        ``final``: :func:`run_scaled`'s, at the chosen diameter only."""
        fov = fov_diameter(mask)
        windowed = fov > self.candidates[-1]  # tries up to its own diameter: scored on the central square (class docstring)
        scores: dict[int, float] = {}
        surest: tuple[int, ScaleFrame, np.ndarray] | None = None  # the surest whole-FOV map so far: the climb ends at it

        def score(diameter: int) -> float:
            nonlocal surest
            if diameter not in scores:
                frame = window_frame(mask, diameter) if windowed else scale_frame(mask, diameter)
                view = frame.to_model(image)
                # a central square, a fraction of a whole run, is scored as the kept view runs (flip-averaged with
                # --tta), a whole FOV on its plain map: the flips steady a square's score (class docstring)
                probability = final(predict, view) if windowed else predict(view)
                scores[diameter] = self_consistency(probability[frame.fov_to_model(mask)], self.threshold)
                if not windowed and (surest is None or scores[diameter] > scores[surest[0]]):
                    surest = (diameter, frame, probability)
            return scores[diameter]

        diameter = self.choose(fov, score)
        if windowed:
            frame = scale_frame(mask, diameter)
            return frame.to_image(final(predict, frame.to_model(image)), max_from), diameter
        _, frame, probability = surest  # the climb moves only to a strictly surer map, so it stops at this one
        return frame.to_image(kept_map(final, predict, frame, image, probability), max_from), diameter


def scale_record(scale: tuple[int, int] | WidthRule | DiameterSearch | None) -> list | dict | None:
    """A model's scale (:func:`model_scale`) as stored beside results: [low, high], the width rule's or the search's
    settings, or None."""
    if isinstance(scale, DiameterSearch):
        return {"search": list(scale.candidates), "start": list(scale.start), "above_range": True,  # unlike records before 005859c
                "window": PROBE_WINDOW, "ratio_above_range": SEARCH_RATIO}  # unlike records before 62de4bc
    if isinstance(scale, WidthRule):
        return {"probe": scale.probe, "map_width": scale.map_width, "limits": list(scale.limits)}
    return None if scale is None else list(scale)


def describe_scale(scale: tuple[int, int] | WidthRule | DiameterSearch | None) -> str:
    """How a model runs photographs, in words that follow "runs photographs …", for tables and messages."""
    if isinstance(scale, DiameterSearch):
        return f"at the FOV diameter among {', '.join(map(str, scale.candidates))} px (and above, up to the photograph's own) where its map is most self-consistent"
    if isinstance(scale, WidthRule):
        return f"where its map's vessels are {scale.map_width:.2f} px wide (first pass at {scale.probe} px, then {scale.limits[0]}–{scale.limits[1]} px)"
    if scale is None:
        return "as they are"
    return f"at FOV diameter {scale[0]} px" if scale[0] == scale[1] else f"at FOV diameters {scale[0]}–{scale[1]} px"


def model_scale(metadata: dict, search: bool = False) -> tuple[int, int] | WidthRule | DiameterSearch | None:
    """(low, high): a photograph whose FOV is d px across runs at clamp(d, low, high), from its weights' metadata;
    a :class:`WidthRule` for a model trained at one vessel width; None: run photographs as they are. With
    ``search``, a scale-normalised model's range becomes a :class:`DiameterSearch` across it (a per-dataset model's,
    shrink-only, stays as it is).

    A model trained with scale normalisation stores ``fov_diameter`` D and, chosen on its held-out training images,
    ``run_fov_diameter`` (:mod:`m2unet.training.run_diameter`); without the latter it runs everything at D. A model
    trained on one of DRIVE, CHASE_DB1, HRF at native resolution runs at that dataset's diameter
    (:data:`m2unet.data.datasets.FOV_DIAMETER`), shrinking only: enlarging blurs vessels (results/scale/cross.md).
    Other weights (the authors' checkpoints, a model of one's own folder) carry no scale.
    """
    from .datasets import FOV_DIAMETER

    if metadata.get("run_vessel_width"):
        rule = metadata["run_vessel_width"]
        return WidthRule(int(rule["probe"]), float(rule["map_width"]), tuple(int(x) for x in rule["limits"]), float(metadata["threshold"]))
    if metadata.get("run_fov_diameter") or metadata.get("fov_diameter"):
        low, high = metadata.get("run_fov_diameter") or (metadata["fov_diameter"],) * 2
        scale = int(low), int(high)
        return DiameterSearch.within(scale, float(metadata["threshold"])) if search else scale
    native = FOV_DIAMETER.get(str(metadata.get("dataset")))
    return (0, native) if native else None


def run_at(fov: int, scale: tuple[int, int]) -> int:
    """The FOV diameter a photograph whose FOV is ``fov`` px across runs at under ``scale`` = (low, high)."""
    low, high = scale
    return int(min(max(fov, low), high))


def run_frame(mask: np.ndarray, scale: tuple[int, int]) -> ScaleFrame:
    """The frame a photograph with FOV ``mask`` runs in under ``scale`` = (low, high) (:func:`model_scale`)."""
    return scale_frame(mask, run_at(fov_diameter(mask), scale))


def predict_scaled(predict, image: np.ndarray, mask: np.ndarray | None, scale: tuple[int, int] | WidthRule | DiameterSearch | None,
                   max_from: float | None = None, final=as_predicted) -> np.ndarray:
    """``predict`` (H×W×3 image → H×W probability) run at a model's scale (:func:`model_scale`), mapped back."""
    return run_scaled(predict, image, mask, scale, max_from, final)[0]


def run_scaled(predict, image: np.ndarray, mask: np.ndarray | None, scale: tuple[int, int] | WidthRule | DiameterSearch | None,
               max_from: float | None = None, final=as_predicted) -> tuple[np.ndarray, int | None]:
    """(probability, FOV diameter in px the photograph ran at; None: as it is) of ``predict`` run at ``scale``.

    ``mask``: the photograph's FOV (given or estimated; its box and diameter set the frame); without one, or
    without a scale, ``predict`` runs on the photograph as it is. A :class:`WidthRule` runs it twice, unless the
    second diameter is within :data:`SCALE_TOLERANCE` of the first (then the first map is the answer); a
    :class:`DiameterSearch` runs it at each diameter it tries. ``max_from``: the model's :func:`back_max_from`.
    ``final(predict, view, first)`` runs the view that is kept (``first``: its plain map when a probe or a search has
    it already; :func:`as_predicted`, or test-time flips): the scale is chosen on plain maps, the flips are of the kept
    one only.
    """
    if scale is None or mask is None or not mask.any():
        return final(predict, image), None
    if isinstance(scale, DiameterSearch):
        return scale.run(predict, image, mask, max_from, final)
    if isinstance(scale, WidthRule):
        width, measured_at, frame, probability = scale.probe_map(predict, image, mask)
        target = scale.diameter_for(width, measured_at)
        if abs(target / measured_at - 1.0) <= SCALE_TOLERANCE:
            return frame.to_image(kept_map(final, predict, frame, image, probability), max_from), int(round(measured_at))
        scale = (target, target)
    frame = run_frame(mask, scale)
    return frame.to_image(final(predict, frame.to_model(image)), max_from), int(round(fov_diameter(mask) * frame.scale))
