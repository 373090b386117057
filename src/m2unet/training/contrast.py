"""The contrast floor a scale-normalised model records (:mod:`m2unet.data.contrast`): measured on its training photographs."""

from __future__ import annotations

import numpy as np


def training_contrasts(datasets: list[str], holdout: dict[str, list[str]], root=None, progress: bool = False) -> dict[str, list[float]]:
    """{dataset: local contrast of each training photograph} (held-out images left out; FOV estimated as at inference)."""
    from tqdm import tqdm

    from ..data import load_dataset
    from ..data.contrast import local_contrast
    from ..data.fov import estimate_fov_mask

    contrasts: dict[str, list[float]] = {}
    for name in datasets:
        kept_out = set(holdout.get(name, []))
        for sample in tqdm(load_dataset(name, "train", root=root), desc=f"measuring {name} contrast", unit="image", disable=not progress, leave=False):
            if sample.name not in kept_out:
                contrasts.setdefault(name, []).append(local_contrast(sample.image, estimate_fov_mask(sample.image)))
    return contrasts


def contrast_metadata(datasets: list[str], holdout: dict[str, list[str]], root=None, progress: bool = False) -> dict:
    """``contrast_floor``: the lowest of the training datasets' median local contrasts, i.e. the contrast of a typical
    photograph of the flattest camera the model learnt from (a photograph below it is stretched up to it); with
    each dataset's median beside it."""
    from ..data.contrast import floor_of

    contrasts = training_contrasts(datasets, holdout, root, progress)
    medians = {name: float(np.median(values)) for name, values in contrasts.items()}
    return {"contrast_floor": round(floor_of(contrasts), 5), "contrast_floor_choice": {"median_by_dataset": {d: round(v, 5) for d, v in medians.items()}}}
