"""MobileNetV2 building blocks in torchvision's module layout.

The layout (``features.N.conv.K...``) matches ``torchvision.models.mobilenet_v2`` so that its
state_dicts load directly, without depending on torchvision itself.
"""

from __future__ import annotations

from torch import nn


class ConvBNReLU6(nn.Sequential):
    """Conv → BatchNorm → ReLU6, torchvision's ``Conv2dNormActivation`` layout (indices 0, 1, 2)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual block (torchvision layout).

    ``expand_ratio`` may be below 1 (M2U-Net's decoder uses 0.15: a *contraction*); the hidden width is
    ``round(in_ch * expand_ratio)`` as in the reference implementation (128 → 19, 33 → 5).
    The residual add is used only when stride is 1 and the widths match, so it never applies in the decoder.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: float):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = int(round(in_ch * expand_ratio))
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(in_ch, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)
        self.in_channels, self.out_channels, self.stride = in_ch, out_ch, stride

    def forward(self, x):
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


# (expansion t, output channels c, repeats n, first stride s) — Table 2 of the MobileNetV2 paper.
MOBILENETV2_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2_features(num_layers: int = 14) -> nn.Sequential:
    """The first ``num_layers`` entries of torchvision's ``mobilenet_v2().features`` (width 1.0)."""
    layers: list[nn.Module] = [ConvBNReLU6(3, 32, stride=2)]
    in_ch = 32
    for t, c, n, s in MOBILENETV2_SETTINGS:
        for i in range(n):
            layers.append(InvertedResidual(in_ch, c, s if i == 0 else 1, t))
            in_ch = c
    return nn.Sequential(*layers[:num_layers])
