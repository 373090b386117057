"""The ImageNet MobileNetV2 weights that initialise M2U-Net's encoder before training.

Read with ``torch.load(..., weights_only=True)`` (:func:`.files.read_state_dict`): files from outside are never unpickled.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from ..errors import InputFileError, M2UNetError
from .files import read_state_dict

# torchvision's official MobileNetV2 ImageNet weights (IMAGENET1K_V1); they expect ImageNet mean/std input.
TORCHVISION_MOBILENET_V2_URL = "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Points at a local ImageNet MobileNetV2 file, so that encoder_weights="imagenet" works offline.
IMAGENET_WEIGHTS_ENV = "M2UNET_IMAGENET_WEIGHTS"
SHARED_IMAGENET_RAW01 = ("weights", "mobilenet_v2-imagenet", "mobilenet_v2_features14_imagenet_raw01.pth")


def fold_imagenet_normalisation(features_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Re-parametrise MobileNetV2's first conv so that raw [0, 1] input gives what normalised input gave.

    conv((x − mean)/std) = conv'(x) − d with conv' = conv / std per input channel and
    d = Σ conv·mean/std; the constant d is absorbed into the following BatchNorm's running mean.
    (Exact except at the zero-padded border, where the original saw −mean/std rather than 0.)
    """
    state = dict(features_state)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    weight = state["features.0.0.weight"]
    state["features.0.0.weight"] = weight / std
    shift = (weight * mean / std).sum(dim=(1, 2, 3))
    state["features.0.1.running_mean"] = state["features.0.1.running_mean"] + shift
    return state


def _imagenet_file() -> tuple[Path, bool]:
    """The ImageNet file to use and whether it expects ImageNet-normalised input."""
    from ..paths import shared_path

    local = os.environ.get(IMAGENET_WEIGHTS_ENV) or shared_path(*SHARED_IMAGENET_RAW01)
    if local:  # offline inside a checkout: ../shared holds the encoder weights
        return Path(local), "raw01" not in Path(local).name
    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    cached = hub_dir / Path(TORCHVISION_MOBILENET_V2_URL).name
    if not cached.is_file():
        try:
            torch.hub.download_url_to_file(TORCHVISION_MOBILENET_V2_URL, str(cached), progress=True)
        except Exception as error:
            raise M2UNetError(
                f"cannot download ImageNet MobileNetV2 weights ({type(error).__name__}); offline, set "
                f"{IMAGENET_WEIGHTS_ENV} to a local file or pass encoder_weights=PATH"
            ) from None
    return cached, True


def load_imagenet_encoder(encoder: nn.Module, source: str | os.PathLike) -> None:
    """Initialise ``encoder.features`` (MobileNetV2 layers 0–13) from ImageNet weights.

    ``source`` is ``"imagenet"`` (the file in ``$M2UNET_IMAGENET_WEIGHTS``, else the raw01 file in the
    ``../shared`` folder beside a checkout, else torchvision's official file through the torch hub cache,
    downloaded once) or a path. Files whose name contains ``raw01`` are taken
    as already re-parametrised for [0, 1] input; any other file is assumed to expect ImageNet mean/std
    input (torchvision's convention) and its first conv is folded by :func:`fold_imagenet_normalisation`.
    Extra layers (14–18, the classifier) are ignored; every encoder tensor must be present.
    """
    if str(source) == "imagenet":
        path, normalised = _imagenet_file()
    else:
        path = Path(source)
        normalised = "raw01" not in path.name
    state = read_state_dict(path)
    wanted = set(encoder.features.state_dict())
    features = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        match = re.match(r"features\.(\d+)\.", key)
        if match and int(match.group(1)) < 14:
            features[key.removeprefix("features.")] = value
    missing = sorted(k for k in wanted if k not in features and not k.endswith("num_batches_tracked"))
    if missing:
        raise InputFileError(path, f"not a MobileNetV2 ImageNet file: {len(missing)} encoder tensors missing (e.g. features.{missing[0]})")
    if normalised:
        features = {k.removeprefix("features."): v for k, v in fold_imagenet_normalisation({"features." + k: v for k, v in features.items()}).items()}
    for key in wanted:
        if key.endswith("num_batches_tracked") and key not in features:
            features[key] = torch.zeros((), dtype=torch.long)
    encoder.features.load_state_dict(features, strict=True)


def build_model(name: str, encoder_weights: str | os.PathLike | None = None) -> nn.Module:
    """A registered model, its encoder initialised from ImageNet (``"imagenet"`` or a file) when ``encoder_weights`` is given.

    Only M2U-Net has a pretrained encoder; the paper's baselines (U-Net, ERFNet) are trained from scratch.
    """
    from ..models import create_model

    model = create_model(name)
    if encoder_weights is not None:
        if not hasattr(getattr(model, "encoder", None), "features"):
            raise M2UNetError(
                f"model {name!r} has no pretrained encoder (encoder_weights={str(encoder_weights)!r}); "
                "it is trained from scratch as in the paper — pass encoder_weights=None (only 'm2unet' has one)"
            )
        load_imagenet_encoder(model.encoder, encoder_weights)
    return model
