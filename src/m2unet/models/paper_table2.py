"""Our models beside the M2U-Net paper's Table 2 (parameters, size on disk, multiply-adds), with the differences
explained by numbers computed here, not asserted.

The published values live in :data:`m2unet.paper.TABLE2`. Two counting rules matter:

* Our MAdds count a transposed convolution by its true cost, in_numel × out × k² (each input value meets
  out × k² weights). Counting it like a convolution producing its output (out_numel × in × k²) gives stride²
  = 4 times as much for the stride-2 layers of U-Net and ERFNet; with that rule our U-Net at 544×544 gives the
  paper's 246.6 GMAdds exactly, so that is the rule the paper's figure follows (M2U-Net has no transposed
  convolution, so its figures are the same under both rules).
* The paper's ERFNet figure, 2.8 GMAdds, is not ERFNet at 544×544 (14.9 true, 16.5 by the paper's rule) but
  matches ERFNet at 224×224 (the ImageNet input size) by the paper's rule: 2.79. That is our reading; the
  paper does not say. Its parameter count (2.06M) holds at any input size.
* Size on disk: the paper's 2.2 MB for M2U-Net is its float32 parameters (549,748 × 4 B); our safetensors file
  also holds the BatchNorm running statistics, hence 2.30 MB.
"""

from __future__ import annotations

from torch import nn

from ..paper import TABLE2
from .complexity import count_madds, model_summary
from .registry import create_model, list_models

# The input size that reproduces the paper's ERFNet MAdds (see the module docstring).
ERFNET_PAPER_SIDE = 224


def models_in_table_order(names: list[str] | None = None) -> list[str]:
    """Registered model names, the paper's Table 2 models first in its order, then any others."""
    names = list_models() if names is None else names
    return [n for n in TABLE2 if n in names] + [n for n in names if n not in TABLE2]


def percent_difference(ours: float, paper: float | None) -> float | None:
    return None if paper is None else 100.0 * (ours - paper) / paper


def table2_rows(name: str, sizes: list[tuple[int, int]], model: nn.Module | None = None) -> list[dict]:
    """One row per input size: our parameters, size on disk and GMAdds (true and by the paper's rule), the
    paper's values where it states them (None where not) and the differences in percent."""
    model = create_model(name) if model is None else model
    paper = TABLE2.get(name, {})
    rows = []
    for h, w in sizes:
        ours = model_summary(model, h, w)
        paper_rule = count_madds(model, h, w, transposed_per="output") / 1e9
        paper_params = paper["params_m"] * 1e6 if "params_m" in paper else None
        paper_gmadds = paper.get("gmadds", {}).get(h) if h == w else None
        rows.append(
            {
                "model": name,
                "label": paper.get("label", name),
                "height": h,
                "width": w,
                "parameters": ours["parameters"],
                "paper_parameters": paper_params,
                "parameters_diff_pct": percent_difference(ours["parameters"], paper_params),
                "size_mb": ours["size_mb"],
                "paper_size_mb": paper.get("size_mb"),
                "gmadds": ours["gmadds"],
                "gmadds_paper_rule": paper_rule,
                "paper_gmadds": paper_gmadds,
                "gmadds_diff_pct": percent_difference(ours["gmadds"], paper_gmadds),
                "gmadds_paper_rule_diff_pct": percent_difference(paper_rule, paper_gmadds),
            }
        )
    return rows


def table2_notes(names: list[str], models: dict[str, nn.Module] | None = None) -> list[str]:
    """Why our numbers differ from the paper's, one line per point, with the numbers computed now.

    ``models``: already built models by name (built here when missing).
    """
    models = dict(models or {})

    def model(name: str) -> nn.Module:
        if name not in models:
            models[name] = create_model(name)
        return models[name]

    notes = [
        "GMAdds: true multiply-adds; 'paper rule' counts each transposed conv like a conv producing its output "
        "(stride² = 4× for the stride-2 up-convolutions), the rule that reproduces the paper's U-Net figure.",
        "size MB: our float32 safetensors file, parameters plus BatchNorm running statistics; '–': not recorded in m2unet.paper.",
    ]
    if "m2unet" in names:
        params_mb = sum(p.numel() for p in model("m2unet").parameters()) * 4 / 1e6
        notes.append(f"M2U-Net: the paper's {TABLE2['m2unet']['size_mb']} MB is the float32 parameters alone ({params_mb:.2f} MB).")
    if "unet" in names:
        true_544 = count_madds(model("unet"), 544, 544) / 1e9
        rule_544 = count_madds(model("unet"), 544, 544, transposed_per="output") / 1e9
        notes.append(
            f"U-Net: {true_544:.1f} true GMAdds at 544×544; {rule_544:.1f} by the paper's rule = the paper's "
            f"{TABLE2['unet']['gmadds'][544]} (its 4 up-convolutions counted 4×)."
        )
    if "erfnet" in names:
        side = ERFNET_PAPER_SIDE
        rule_side = count_madds(model("erfnet"), side, side, transposed_per="output") / 1e9
        rule_544 = count_madds(model("erfnet"), 544, 544, transposed_per="output") / 1e9
        params_20 = sum(p.numel() for p in create_model("erfnet", num_classes=20).parameters())
        notes.append(
            f"ERFNet: the paper's {TABLE2['erfnet']['gmadds'][544]} GMAdds is ERFNet at {side}×{side} by the paper's rule "
            f"({rule_side:.2f}), not at 544×544 ({rule_544:.1f} by that rule); our reading, the paper does not say. "
            f"Params for 1 output class; with Cityscapes' 20 classes {params_20:,}, also 2.06M."
        )
    return notes
