"""U-Net (Ronneberger, Fischer, Brox, MICCAI 2015), the M2U-Net paper's large baseline.

Written from the U-Net paper (its Fig. 1): four levels of two 3×3 convolutions + ReLU and a 2×2 max-pool
(64, 128, 256, 512 channels), a 1024-channel bottom, and an expanding path of 2×2 up-convolutions that halve
the channels, concatenation with the cropped skip and two 3×3 convolutions + ReLU, then a 1×1 convolution.

One change, as in the M2U-Net paper: the 3×3 convolutions use zero padding 1, so the output has the size of
the input (the original's unpadded "valid" convolutions shrink a 572² tile to 388² and need overlap-tiling)
and no cropping of the skips is needed. No BatchNorm (the original has none): with one output channel this
gives 31,031,745 parameters, the paper's 31.03M. BatchNorm after each 3×3 convolution would give 31.04M
(31,043,521 with the conv biases kept, 31,037,633 without), so the paper's count is of the network without it.
The output is one logit map (apply a sigmoid outside), like :class:`M2UNet`.
"""

from __future__ import annotations

import torch
from torch import nn

# Channels of the contracting path; the last entry is the bottom of the "U".
UNET_WIDTHS = (64, 128, 256, 512, 1024)
INPUT_MULTIPLE = 16  # four 2×2 max-pools


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3×3 convolutions (zero padding 1) each followed by ReLU: one level of U-Net."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class UpLevel(nn.Module):
    """2×2 up-convolution halving the channels, concatenation [skip, upsampled], two 3×3 conv + ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = double_conv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """U-Net with zero padding: 31,031,745 parameters, 217.5 GMAdds at 544×544 (see ``m2unet info``).

    Input RGB in [0, 1], H and W multiples of 16 (four 2×2 max-pools); output N×1×H×W logits.

    Args:
        in_channels: input channels (3 for RGB).
        num_classes: output channels (1: vessel logit).
    """

    input_multiple = INPUT_MULTIPLE

    def __init__(self, in_channels: int = 3, num_classes: int = 1):
        super().__init__()
        widths = UNET_WIDTHS
        self.down = nn.ModuleList([double_conv(in_channels, widths[0])])
        self.down.extend(double_conv(widths[i - 1], widths[i]) for i in range(1, len(widths)))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(UpLevel(widths[i], widths[i - 1]) for i in range(len(widths) - 1, 0, -1))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The U-Net paper's initialisation: Gaussian weights with std √(2/N), N the incoming connections of one
        output unit (k² × C_in for a convolution, C_in for the 2×2 stride-2 up-convolution); zero biases.
        Without BatchNorm, this keeps the activations' scale through the 23 layers (PyTorch's default does not)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                kh, kw = module.kernel_size
                fan_in = module.in_channels // module.groups * kh * kw
                if isinstance(module, nn.ConvTranspose2d):  # each output sees kh/sh × kw/sw taps per input channel
                    fan_in //= module.stride[0] * module.stride[1]
                nn.init.normal_(module.weight, std=(2.0 / fan_in) ** 0.5)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 16 or w % 16:  # INPUT_MULTIPLE (TorchScript cannot read module globals)
            raise ValueError(f"U-Net needs height and width divisible by 16, got {h}×{w}")
        skips: list[torch.Tensor] = []
        for index, level in enumerate(self.down):
            if index > 0:
                x = self.pool(x)
            x = level(x)
            skips.append(x)
        skips.pop()  # the bottom level is not a skip
        for level in self.up:
            x = level(x, skips.pop())
        return self.head(x)
