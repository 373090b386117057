"""M2U-Net (Laibacher, Weyde, Jalali, CVPR-W 2019), exactly as Table 1 of the paper.

Encoder: MobileNetV2 layers 0–13. Decoder: four blocks of bilinear ×2 upsampling, concatenation
[upsampled, skip] and one inverted residual with contraction t = 0.15 and no residual add.
The network ends in BatchNorm and returns logits (apply a sigmoid outside).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.shape import INPUT_MULTIPLE
from .mobilenetv2 import InvertedResidual, mobilenet_v2_features

# Encoder stages as (first layer, last layer) of MobileNetV2 features; the output of each is a skip.
ENCODER_STAGES = ((0, 1), (2, 3), (4, 6), (7, 13))
SKIP_CHANNELS = (3, 16, 24, 32)  # input image, then stages 1–3
BOTTLENECK_CHANNELS = 96
DECODER_EXPAND_RATIO = 0.15


class M2UNetEncoder(nn.Module):
    """MobileNetV2 layers 0–13; ``self.features`` takes a torchvision ``features.*`` state_dict as it is."""

    def __init__(self):
        super().__init__()
        self.features = mobilenet_v2_features(14)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for first, last in ENCODER_STAGES:
            for index in range(first, last + 1):
                x = self.features[index](x)
            outputs.append(x)
        return outputs  # strides 2, 4, 8, 16; channels 16, 24, 32, 96


class DecoderBlock(nn.Module):
    """Bilinear ×2 upsampling, concatenation [upsampled, skip], inverted residual with t = 0.15."""

    def __init__(self, up_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.block = InvertedResidual(up_channels + skip_channels, out_channels, 1, DECODER_EXPAND_RATIO)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip], dim=1))


class M2UNet(nn.Module):
    """M2U-Net: 549,748 parameters, 1.42 GMAdds at 544×544; input RGB in [0, 1], H and W multiples of 16.

    Built with random weights: :func:`m2unet.weights.build_model` initialises the encoder from ImageNet
    (``self.encoder.features`` takes torchvision's MobileNetV2 ``features.*`` keys), :func:`m2unet.weights.load_weights`
    reads a trained file.
    """

    input_multiple = INPUT_MULTIPLE

    def __init__(self):
        super().__init__()
        self.encoder = M2UNetEncoder()
        widths = [BOTTLENECK_CHANNELS]
        for skip in reversed(SKIP_CHANNELS):  # 96+32 → 64, 64+24 → 44, 44+16 → 30, 30+3 → 1
            widths.append(1 if skip == SKIP_CHANNELS[0] else (widths[-1] + skip) // 2)
        self.decoder = nn.ModuleList(
            DecoderBlock(widths[i], skip, widths[i + 1]) for i, skip in enumerate(reversed(SKIP_CHANNELS))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.input_multiple or w % self.input_multiple:
            raise ValueError(f"M2U-Net needs height and width divisible by 16, got {h}×{w}")
        skips = [x, *self.encoder(x)]
        y = skips.pop()
        for block in self.decoder:
            y = block(y, skips.pop())
        return y
