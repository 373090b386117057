"""The paper's loss: L = BCE + 0.3·(1 − J), with J a soft Jaccard index of sigmoid(logits) against the label.

Two forms of J (``--jaccard``):

- ``eq3``: Eq. 3 of the paper read literally, J = (1/n) Σ_i y_i·ŷ_i / (y_i + ŷ_i − y_i·ŷ_i) over the n pixels.
  A term with y_i = 0 is 0 whatever ŷ_i is, so J only rewards vessel pixels (for y_i = 1 the term is ŷ_i).
- ``global``: the usual soft Jaccard (TernausNetV2, bob.ip.binseg), J = Σ y·ŷ / (Σ y + Σ ŷ − Σ y·ŷ),
  sums over every pixel of the batch; false positives lower it.

The loss is computed over the whole crop (the paper does not mask it with the field of view).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

JACCARD_FORMS = ("global", "eq3")
EPS = 1e-7  # keeps 0/0 (y = ŷ = 0) at 0


def soft_jaccard(probability: torch.Tensor, target: torch.Tensor, form: str = "global") -> torch.Tensor:
    """Soft Jaccard index J in [0, 1] of probabilities against a {0, 1} target (see module doc)."""
    probability, target = probability.float(), target.float()
    product = probability * target
    if form == "eq3":
        return (product / (target + probability - product + EPS)).mean()
    if form == "global":
        intersection = product.sum()
        return intersection / (target.sum() + probability.sum() - intersection + EPS)
    raise ValueError(f"unknown Jaccard form {form!r}; expected one of {JACCARD_FORMS}")


class BCEJaccardLoss(nn.Module):
    """BCE-with-logits (mean over pixels) + ``weight``·(1 − J); computed in float32 even under autocast."""

    def __init__(self, form: str = "global", weight: float = 0.3):
        super().__init__()
        if form not in JACCARD_FORMS:
            raise ValueError(f"unknown Jaccard form {form!r}; expected one of {JACCARD_FORMS}")
        self.form, self.weight = form, weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = logits.float(), target.float()
        bce = F.binary_cross_entropy_with_logits(logits, target)
        return bce + self.weight * (1.0 - soft_jaccard(torch.sigmoid(logits), target, self.form))


def max_pooled(plane: torch.Tensor, side: int) -> torch.Tensor:
    """B×C×H×W ``plane`` reduced by the maximum over each ``side``×``side`` block (a partial block at the edge too)."""
    return plane if side == 1 else F.max_pool2d(plane, side, ceil_mode=True)


def pooled_loss(criterion: nn.Module, logits: torch.Tensor, target: torch.Tensor, pools: torch.Tensor | None) -> torch.Tensor:
    """``criterion`` over a batch whose sample i is compared as ``pools[i]``×``pools[i]`` max-pooled map and label
    (``m2unet train --pool-coarse-labels``): a block is a vessel where any of its pixels is, as an annotator of a coarse
    camera marked every pixel a vessel crosses, so the model may draw the vessel as thin as it is inside the block. The
    maximum of the logits is the logit of the maximum probability. Samples of each side are averaged by their share."""
    if pools is None or bool((pools == 1).all()):
        return criterion(logits, target)
    total = logits.new_zeros((), dtype=torch.float32)
    for side in torch.unique(pools).tolist():
        chosen = torch.nonzero(pools == side).flatten().to(logits.device)
        share = chosen.numel() / pools.numel()
        total = total + share * criterion(max_pooled(logits[chosen], side), max_pooled(target[chosen], side))
    return total
