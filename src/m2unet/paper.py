"""The published numbers of the M2U-Net paper, kept in one place so reports, models and tests read them from here.

A leaf: it imports nothing, so :mod:`m2unet.models` (Table 2 beside ours) and :mod:`m2unet.evaluation` (the report)
both read it without using each other. The datasets' own facts (names, labels, the crops the numbers refer to) are
in :data:`m2unet.data.datasets.DATASETS`.

Source: T. Laibacher, T. Weyde, S. Jalali, "M2U-Net: Effective and Efficient Retinal Vessel Segmentation
for Real-World Applications", CVPR Workshops 2019 (arXiv:1811.07738), Tables 2, 3 and 4.
The paper's protocol: F1 at the best threshold on the test split itself, pixels pooled over the
whole crop; accuracy and AUC with the crop-removed pixels counted as true negatives.
"""

from __future__ import annotations

CITATION = (
    "Laibacher, Weyde, Jalali: M2U-Net: Effective and Efficient Retinal Vessel Segmentation for "
    "Real-World Applications. CVPR Workshops 2019, arXiv:1811.07738"
)

# Table 2: model complexity. MAdds in G at the given input size (side × side).
TABLE2 = {
    "m2unet": {"label": "M2U-Net", "params_m": 0.55, "size_mb": 2.2, "gmadds": {544: 1.42, 960: 4.42}},
    "unet": {"label": "U-Net", "params_m": 31.03, "size_mb": None, "gmadds": {544: 246.6}},
    "erfnet": {"label": "ERFNet", "params_m": 2.06, "size_mb": None, "gmadds": {544: 2.8}},
}

# Tables 3–4: segmentation quality (None: not published). Dataset keys: m2unet.data.datasets.DATASETS.
RESULTS = {
    "drive": {
        "m2unet": {"f1": 0.8091, "accuracy": 0.9630, "auc": 0.9714},
        "second_observer": {"f1": 0.7881, "accuracy": 0.9472, "auc": None},
    },
    "chase_db1": {
        "m2unet": {"f1": 0.8006, "accuracy": 0.9703, "auc": 0.9666},
        "second_observer": {"f1": 0.7686, "accuracy": 0.9545, "auc": None},
    },
    "hrf": {
        "m2unet": {"f1": 0.7814, "accuracy": 0.9635, "auc": None},
    },
}

# Tables 3–4: inference time per image of M2U-Net, seconds.
TIMING = {
    "gpu": {"label": "GTX 1080 Ti", "seconds": {"drive": 0.006, "chase_db1": 0.007, "hrf": 0.0199}},
    "arm": {"label": "ARM RK3399 (CPU)", "seconds": {"drive": 0.58, "chase_db1": 1.67, "hrf": 14.7}},
}
