"""ERFNet (Romera, Álvarez, Bergasa, Arroyo, IEEE T-ITS 19(1), 2018), the M2U-Net paper's small baseline.

Written from the ERFNet paper (its Table I, layers 1–23, and Figs. 2–3), not from the authors' code, which is
licensed CC BY-NC. 23 layers, in order:

    encoder   1  downsampler → 16        (½ resolution)
              2  downsampler → 64        (¼)
            3–7  5 × non-bottleneck-1D, 64
              8  downsampler → 128       (⅛)
           9–16  8 × non-bottleneck-1D, 128, dilations 2, 4, 8, 16, 2, 4, 8, 16
    decoder  17  upsampler → 64          (¼)
          18–19  2 × non-bottleneck-1D, 64
             20  upsampler → 16          (½)
          21–22  2 × non-bottleneck-1D, 16
             23  2×2 transposed convolution, stride 2 → classes (full resolution)

Downsampler (from ENet): concatenation of a 3×3 stride-2 convolution (out − in channels) and a 2×2 max-pool
of the input, then BatchNorm and ReLU. Non-bottleneck-1D: the residual block with each 3×3 convolution
factorised into 3×1 then 1×3 (ReLU between them); BatchNorm after each pair; the second pair dilated in
layers 9–16; spatial dropout at the end (0.03 in layers 3–7, 0.3 in layers 9–16; none in the decoder, an
assumption: the paper gives the rates for the encoder); the input added before the last ReLU. Upsampler: 3×3
transposed convolution, stride 2, then BatchNorm and ReLU. Convolutions have biases (the paper does not
say; without them there would be 2,056,799 parameters, also 2.06M).

With one output class this has 2,063,021 parameters; with the paper's 20 Cityscapes classes 2,064,256.
Both round to the M2U-Net paper's 2.06M (only the last layer depends on the classes: 65 per class).
"""

from __future__ import annotations

import torch
from torch import nn

ENCODER_DILATIONS = (2, 4, 8, 16, 2, 4, 8, 16)  # layers 9–16
DROPOUT_EARLY, DROPOUT_DILATED = 0.03, 0.3


class Downsampler(nn.Module):
    """ENet's initial block: [3×3 stride-2 conv to (out − in) channels, 2×2 max-pool], BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class NonBottleneck1D(nn.Module):
    """Residual block of two factorised 3×3 convolutions (3×1 then 1×3); the second pair dilated."""

    def __init__(self, channels: int, dilation: int = 1, dropout: float = 0.0):
        super().__init__()
        d = dilation
        self.conv3x1_1 = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0))
        self.conv1x3_1 = nn.Conv2d(channels, channels, (1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv3x1_2 = nn.Conv2d(channels, channels, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.conv1x3_2 = nn.Conv2d(channels, channels, (1, 3), padding=(0, d), dilation=(1, d))
        self.bn2 = nn.BatchNorm2d(channels)
        # Identity when the rate is 0 so that eval and TorchScript see the same graph either way.
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv3x1_1(x))
        y = self.relu(self.bn1(self.conv1x3_1(y)))
        y = self.relu(self.conv3x1_2(y))
        y = self.dropout(self.bn2(self.conv1x3_2(y)))
        return self.relu(y + x)


class Upsampler(nn.Sequential):
    """3×3 transposed convolution with stride 2 (doubles H and W), BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ERFNet(nn.Module):
    """ERFNet, layers 1–23 of the paper's Table I in ``self.layers[0..22]``: 2,063,021 parameters (1 class).

    Input RGB in [0, 1], H and W multiples of 8 (three stride-2 downsamplers); output N×C×H×W logits.

    Args:
        in_channels: input channels (3 for RGB).
        num_classes: output channels (1: vessel logit; 20 gives the paper's Cityscapes network).
    """

    input_multiple = 8

    def __init__(self, in_channels: int = 3, num_classes: int = 1):
        super().__init__()
        layers: list[nn.Module] = [Downsampler(in_channels, 16), Downsampler(16, 64)]
        layers += [NonBottleneck1D(64, 1, DROPOUT_EARLY) for _ in range(5)]
        layers.append(Downsampler(64, 128))
        layers += [NonBottleneck1D(128, d, DROPOUT_DILATED) for d in ENCODER_DILATIONS]
        layers += [Upsampler(128, 64), NonBottleneck1D(64), NonBottleneck1D(64)]
        layers += [Upsampler(64, 16), NonBottleneck1D(16), NonBottleneck1D(16)]
        layers.append(nn.ConvTranspose2d(16, num_classes, 2, stride=2))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 8 or w % 8:  # input_multiple (TorchScript cannot read class attributes)
            raise ValueError(f"ERFNet needs height and width divisible by 8, got {h}×{w}")
        return self.layers(x)
