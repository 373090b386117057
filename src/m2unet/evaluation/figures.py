"""Figures a researcher would publish: the paper's Figure 5 and precision–recall curves (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import metrics as M

REGION_LABELS = {"fov": "inside FOV", "crop": "whole crop"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path, dpi: int) -> Path:
    from ..data.io import write_atomic

    path = Path(path)
    write_atomic(path, lambda tmp: figure.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight"))
    _pyplot().close(figure)
    return path


def error_map(probability: np.ndarray, label: np.ndarray, threshold: float) -> np.ndarray:
    """RGB float map of a thresholded prediction: true positives white, false positives yellow,
    false negatives red, true negatives black (the colours of the paper's Figure 5)."""
    predicted = probability >= threshold
    label = np.asarray(label, dtype=bool)
    rgb = np.zeros(predicted.shape + (3,), dtype=np.float32)
    rgb[predicted & label] = (1.0, 1.0, 1.0)
    rgb[predicted & ~label] = (1.0, 1.0, 0.0)
    rgb[~predicted & label] = (1.0, 0.0, 0.0)
    return rgb


def figure5(sample, probability: np.ndarray, threshold: float, path: Path, title: str = "", dpi: int = 110) -> Path:
    """Fundus image | probability map | binary map at ``threshold`` (TP white, FP yellow, FN red)."""
    plt = _pyplot()
    h, w = probability.shape
    panel_w = 4.0
    figure, axes = plt.subplots(1, 3, figsize=(3 * panel_w, panel_w * h / w + 0.6))
    counts = M.binary_counts(probability >= threshold, sample.label)
    panels = [
        (sample.image, "fundus image"),
        (probability, "vessel probability"),
        (error_map(probability, sample.label, threshold), f"threshold {threshold:.3f}: F1 {float(M.f1_score(counts['tp'], counts['fp'], counts['fn'])):.4f}"),
    ]
    for axis, (picture, caption) in zip(axes, panels, strict=True):
        axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1, interpolation="antialiased")
        axis.set_title(caption, fontsize=9)
        axis.axis("off")
    figure.suptitle(f"{title}  (white: true positive, yellow: false positive, red: false negative)", fontsize=9)
    figure.tight_layout()
    return _save(figure, path, dpi)


def pr_figure(labels: list[str], results: list[dict], path: Path, title: str = "", region: str = "crop", dpi: int = 110) -> Path:
    """Precision–recall curves of several evaluations on one plot, with F1 iso-lines, each model's a-priori
    operating point (circle) and best-threshold point (star), and the second human observer (cross, in the colour of its run)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 6))
    for f1 in np.arange(0.1, 1.0, 0.1):  # iso-F1: precision = f·r / (2r − f), from (f/(2−f), 1) to (1, f/(2−f))
        r = np.linspace(f1 / (2 - f1), 1, 300)
        p = f1 * r / (2 * r - f1)
        axis.plot(r, p, color="0.85", lw=0.8, zorder=0)
        axis.annotate(f"F1={f1:.1f}", (r[-1], p[-1]), fontsize=6, color="0.6", xytext=(-28, 2), textcoords="offset points")
    observers_done = set()
    for index, (label, result) in enumerate(zip(labels, results, strict=True)):
        color = f"C{index % 10}"
        if result.get("curves"):  # absent for a second-observer-only evaluation
            precision, recall, _ = M.pr_curve(result["curves"][region])  # lists, as metrics.json keeps them
            pooled = result["pooled"][region]
            axis.plot(recall, precision, color=color, lw=1.5, label=f"{label} ({result['dataset']}): F1 best {pooled['best']['f1']:.4f}, a-priori {pooled['a_priori']['f1']:.4f}")
            for protocol, marker in (("a_priori", "o"), ("best", "*")):
                point = pooled[protocol]
                axis.plot(point["sensitivity"], point["precision"], marker=marker, color=color, ms=9 if marker == "*" else 6, mec="black", mew=0.6)
        observer = result.get("second_observer")
        key = (result["dataset"], result["split"])
        if observer and key not in observers_done:
            observers_done.add(key)
            point = observer["pooled"][region]
            axis.plot(point["sensitivity"], point["precision"], marker="X", color=color, mec="black", mew=0.8, ms=9, ls="none",
                      label=f"2nd observer ({result['dataset']} {result['split']}): F1 {point['f1']:.4f}")
    axis.plot([], [], "o", color="0.4", label="a-priori threshold")
    axis.plot([], [], "*", color="0.4", ms=9, label="best threshold on this split (optimistic)")
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="recall (sensitivity)", ylabel="precision", title=title or f"precision–recall ({REGION_LABELS[region]}, pooled)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower left")
    return _save(figure, path, dpi)
