"""The paper's augmentations, batched with kornia and applied jointly to image, label and FOV mask.

A batch is one float tensor B×5×H×W: RGB in [0, 1], then the label and the FOV mask as 0/1 channels.
Geometric transforms move all five channels together (bilinear), after which label and mask are
re-binarised at 0.5, so they stay binary and aligned with the image; colour jitter touches only RGB.

Order and probabilities (the paper lists the transforms but not their probabilities; these follow the
common reimplementation in bob.ip.binseg): horizontal flip p=0.5, vertical flip p=0.5, rotation uniform
in ±15° with p=0.5 (zeros fill the corners: black image, no vessel, outside the FOV), elastic distortion
(Augmentor's ``random_distortion(grid_width=8, grid_height=8, magnitude=1)``, every sample), colour jitter
(brightness 0.3, contrast 0.3, saturation 0.02, hue 0.02; torchvision's meaning) with p=0.5.

Elastic distortion with Augmentor's meaning: the image is cut into an 8×8 grid of tiles; every inner
grid vertex moves by an integer (dx, dy), each drawn uniformly from {−magnitude, …, +magnitude} pixels;
the border vertices stay; each tile is warped bilinearly onto its moved corners. With magnitude 1 the
distortion is at most one pixel: a mild jitter of the vessel outlines, as in the paper's recipe.
Random numbers come from torch's global generator (seeded, and saved in checkpoints for resume).

Camera variation (beyond the paper; off unless a preset turns it on, as the ``universal`` one does): photographs of
other cameras differ in scale, colour, focus, noise, compression and illumination. ``scale`` zooms by up to ±20 %
(all five channels, with the geometric transforms; ``scale_high`` moves the upper end, e.g. to 1.5: a 30° camera draws
vessels 1.5× as wide as a 45° one at the same FOV diameter); then, each with its own probability and on RGB only: gamma
(0.6–1.6), colour temperature (kornia's Planckian jitter, black-body), Gaussian blur (σ 0.1–``blur_sigma_max`` px, 1.5 by default: defocus),
low contrast (blend towards the image mean, factor ``low_contrast_min``–1, 0.5 by default), vignetting (brightness falling off with the distance
from the centre by up to 50 % at the corners), Gaussian noise (σ 0.01–0.03) and JPEG compression (quality ``jpeg_quality_min``–90, 30 by default;
encoded and decoded with Pillow: faster than a differentiable JPEG and the same artefacts a camera writes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IMAGE, LABEL, MASK = slice(0, 3), 3, 4


@dataclass(frozen=True)
class AugmentConfig:
    hflip: float = 0.5
    vflip: float = 0.5
    rotation_degrees: float = 15.0
    rotation_p: float = 0.5
    elastic_grid: tuple[int, int] = (8, 8)  # (grid_width, grid_height)
    elastic_magnitude: int = 1
    elastic_p: float = 1.0
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.02
    hue: float = 0.02
    jitter_p: float = 0.5
    # camera variation (0 = off: the paper's recipe); probabilities per sample
    scale: float = 0.0  # zoom by a factor in zoom_range: [1 - scale, 1 + scale] unless scale_high moves the upper end
    scale_high: float = 0.0  # if > 0, the zoom's upper end instead of 1 + scale (a narrower field angle draws wider vessels)
    scale_p: float = 0.0
    gamma_p: float = 0.0
    temperature_p: float = 0.0
    blur_p: float = 0.0
    low_contrast_p: float = 0.0
    vignette_p: float = 0.0
    noise_p: float = 0.0
    jpeg_p: float = 0.0
    blur_sigma_max: float = 1.5  # defocus: Gaussian σ in [0.1, blur_sigma_max] px
    low_contrast_min: float = 0.5  # low contrast keeps a fraction in [low_contrast_min, 1] of the contrast
    jpeg_quality_min: int = 30  # JPEG quality in [jpeg_quality_min, 90]

    def __post_init__(self):
        from ..errors import M2UNetError

        for name, value in vars(self).items():
            if name.endswith("_p") and not 0.0 <= value <= 1.0:
                raise M2UNetError(f"augmentation {name} is a probability, got {value}")
        if not 0.1 <= self.blur_sigma_max <= 8.0:
            raise M2UNetError(f"augmentation blur_sigma_max must be in 0.1..8 px, got {self.blur_sigma_max}")
        if not 0.0 < self.low_contrast_min <= 1.0:
            raise M2UNetError(f"augmentation low_contrast_min must be in (0, 1], got {self.low_contrast_min}")
        if self.scale_high and not 1.0 - self.scale < self.scale_high <= 3.0:
            raise M2UNetError(f"augmentation scale_high must be above 1 - scale and at most 3, got {self.scale_high}")
        if not 1 <= self.jpeg_quality_min <= 90:
            raise M2UNetError(f"augmentation jpeg_quality_min must be in 1..90, got {self.jpeg_quality_min}")

    @property
    def zoom_range(self) -> tuple[float, float]:
        """(smallest, largest) zoom factor of the ``scale`` transform."""
        return 1.0 - self.scale, self.scale_high or 1.0 + self.scale


def grid_distortion(batch: torch.Tensor, grid: tuple[int, int] = (8, 8), magnitude: int = 1, p: float = 1.0) -> torch.Tensor:
    """Augmentor's random_distortion on a B×C×H×W batch (see module doc); one draw per sample."""
    b, _, h, w = batch.shape
    gw, gh = grid
    # drawn from the CPU generator wherever the batch lives (same draws on CPU and GPU; saved for --resume)
    shift = torch.randint(-magnitude, magnitude + 1, (b, 2, gh + 1, gw + 1)).to(batch.dtype)
    shift[:, :, 0, :] = shift[:, :, -1, :] = shift[:, :, :, 0] = shift[:, :, :, -1] = 0  # border vertices stay
    apply = (torch.rand(b) < p).to(batch.dtype).view(b, 1, 1, 1)
    field = F.interpolate((shift * apply).to(batch.device), size=(h, w), mode="bilinear", align_corners=True)  # pixels, (dx, dy)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=batch.dtype, device=batch.device), torch.arange(w, dtype=batch.dtype, device=batch.device), indexing="ij")
    # output pixel (x, y) samples the input at (x + dx, y + dy); normalised coordinates for grid_sample
    sample_x = (xs + field[:, 0]) * (2.0 / (w - 1)) - 1.0
    sample_y = (ys + field[:, 1]) * (2.0 / (h - 1)) - 1.0
    coords = torch.stack([sample_x, sample_y], dim=-1)
    return F.grid_sample(batch, coords, mode="bilinear", padding_mode="border", align_corners=True)


class Augmenter(nn.Module):
    """Batched joint augmentation of B×5×H×W (RGB, label, mask) tensors; returns the same layout."""

    def __init__(self, config: AugmentConfig | None = None):
        super().__init__()
        import kornia.augmentation as K

        self.config = c = config or AugmentConfig()
        self.geometric = nn.Sequential(
            K.RandomHorizontalFlip(p=c.hflip),
            K.RandomVerticalFlip(p=c.vflip),
            K.RandomRotation(degrees=c.rotation_degrees, p=c.rotation_p, resample="bilinear"),
        )
        if c.zoom_range != (1.0, 1.0) and c.scale_p > 0:
            self.geometric.append(K.RandomAffine(degrees=0.0, scale=c.zoom_range, p=c.scale_p, resample="bilinear"))
        self.colour = K.ColorJitter(brightness=c.brightness, contrast=c.contrast, saturation=c.saturation, hue=c.hue, p=c.jitter_p)
        self.camera = CameraAugment(c)

    @torch.no_grad()
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        c = self.config
        out = self.geometric(batch)
        if c.elastic_magnitude > 0 and c.elastic_p > 0:
            out = grid_distortion(out, c.elastic_grid, c.elastic_magnitude, c.elastic_p)
        image = self.camera(self.colour(out[:, IMAGE].clamp(0.0, 1.0)).clamp(0.0, 1.0))
        binary = (out[:, LABEL:] >= 0.5).to(out.dtype)
        return torch.cat([image, binary], dim=1)


def _chosen(batch: torch.Tensor, p: float) -> torch.Tensor:
    """Indices of the samples a transform of probability ``p`` applies to (CPU generator, as everywhere here)."""
    return torch.nonzero(torch.rand(batch.shape[0]) < p).flatten().to(batch.device)


def _uniform(count: int, low: float, high: float, like: torch.Tensor) -> torch.Tensor:
    return (low + (high - low) * torch.rand(count)).to(like.device, like.dtype).view(count, 1, 1, 1)


def jpeg_roundtrip(images: torch.Tensor, qualities: list[int]) -> torch.Tensor:
    """Each RGB image of B×3×H×W in [0, 1] encoded as JPEG at its quality and decoded (Pillow, 4:2:0 as cameras write)."""
    import io

    import numpy as np
    from PIL import Image

    out = []
    for image, quality in zip(images, qualities, strict=True):
        array = np.rint(image.permute(1, 2, 0).float().cpu().numpy() * 255.0).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
        decoded = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0
        out.append(torch.from_numpy(decoded).permute(2, 0, 1))
    return torch.stack(out).to(images.device, images.dtype)


class CameraAugment(nn.Module):
    """The camera-variation transforms of RGB B×3×H×W batches in [0, 1] (see the module docstring)."""

    def __init__(self, config: AugmentConfig):
        super().__init__()
        import kornia.augmentation as K

        self.config = config
        self.temperature = K.RandomPlanckianJitter(mode="blackbody", p=1.0)

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        import kornia.filters

        c = self.config
        out = image.clone()
        if (i := _chosen(out, c.gamma_p)).numel():
            out[i] = out[i].clamp_min(1e-6) ** _uniform(i.numel(), 0.6, 1.6, out)
        if (i := _chosen(out, c.temperature_p)).numel():
            out[i] = self.temperature(out[i])
        if (i := _chosen(out, c.blur_p)).numel():
            for j in i.tolist():  # one σ per image
                sigma = float(0.1 + (c.blur_sigma_max - 0.1) * torch.rand(1))
                side = 9 if sigma <= 1.5 else 2 * math.ceil(3 * sigma) + 1  # the recipe's 9 × 9 up to σ 1.5, then ±3σ
                out[j : j + 1] = kornia.filters.gaussian_blur2d(out[j : j + 1], (side, side), (sigma, sigma))
        if (i := _chosen(out, c.low_contrast_p)).numel():
            mean = out[i].mean(dim=(1, 2, 3), keepdim=True)
            out[i] = mean + _uniform(i.numel(), c.low_contrast_min, 1.0, out) * (out[i] - mean)
        if (i := _chosen(out, c.vignette_p)).numel():
            h, w = out.shape[-2:]
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=out.device), torch.linspace(-1, 1, w, device=out.device), indexing="ij")
            radius2 = ((xs**2 + ys**2) / 2.0).to(out.dtype)  # 0 at the centre, 1 at the corners
            out[i] = out[i] * (1.0 - _uniform(i.numel(), 0.0, 0.5, out) * radius2)
        if (i := _chosen(out, c.noise_p)).numel():
            out[i] = out[i] + _uniform(i.numel(), 0.01, 0.03, out) * torch.randn(out[i].shape).to(out.device, out.dtype)
        out = out.clamp(0.0, 1.0)
        if (i := _chosen(out, c.jpeg_p)).numel():
            out[i] = jpeg_roundtrip(out[i], torch.randint(c.jpeg_quality_min, 91, (i.numel(),)).tolist())
        return out


def save_augmentation_grid(path, originals: torch.Tensor, augment: Augmenter, copies: int = 3, max_images: int = 4, size: int = 256) -> None:
    """A picture a person can look at: per row one training image, then ``copies`` augmented versions.

    Each tile shows the image with the label drawn in green and the FOV border in red, so that
    misalignment between image and label would be visible. JPEG (quality 90, no chroma subsampling, so the
    thin coloured lines stay sharp): a photograph grid is 0.6 MB that way, 1.5 MB as PNG.
    """
    import numpy as np
    from PIL import Image

    from ..data.io import write_atomic

    originals = originals[:max_images]
    columns = [originals] + [augment(originals) for _ in range(copies)]

    def tile(sample: torch.Tensor) -> np.ndarray:
        small = F.interpolate(sample[None], size=(size, size), mode="bilinear", align_corners=False)[0]
        rgb = small[IMAGE].clone()
        label = small[LABEL] >= 0.5
        mask = small[MASK] >= 0.5
        edge = mask ^ (F.max_pool2d(mask[None, None].float(), 3, 1, 1)[0, 0] > 0)
        rgb[:, label] = rgb[:, label] * 0.4 + torch.tensor([0.0, 0.6, 0.0])[:, None]
        rgb[:, edge] = torch.tensor([1.0, 0.0, 0.0])[:, None]
        return rgb.permute(1, 2, 0).numpy()

    gap = 4
    rows = []
    for i in range(originals.shape[0]):
        cells = []
        for column in columns:
            cells += [tile(column[i]), np.ones((size, gap, 3), np.float32)]
        rows += [np.concatenate(cells[:-1], axis=1), np.ones((gap, (size + gap) * len(columns) - gap, 3), np.float32)]
    picture = Image.fromarray(np.rint(np.clip(np.concatenate(rows[:-1], axis=0), 0.0, 1.0) * 255.0).astype(np.uint8))
    write_atomic(path, lambda tmp: picture.save(tmp, format="JPEG", quality=90, subsampling=0))
