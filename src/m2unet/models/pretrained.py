"""Loading external weights: ImageNet MobileNetV2 for the encoder, and the M2U-Net authors' checkpoints.

Everything is read with ``torch.load(..., weights_only=True)``: files from outside are never unpickled.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from ..errors import InputFileError, M2UNetError

# torchvision's official MobileNetV2 ImageNet weights (IMAGENET1K_V1); they expect ImageNet mean/std input.
TORCHVISION_MOBILENET_V2_URL = "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Points at a local ImageNet MobileNetV2 file, so that encoder_weights="imagenet" works offline.
IMAGENET_WEIGHTS_ENV = "M2UNET_IMAGENET_WEIGHTS"
SHARED_IMAGENET_RAW01 = ("weights", "mobilenet_v2-imagenet", "mobilenet_v2_features14_imagenet_raw01.pth")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a PyTorch state_dict safely (no unpickling of arbitrary objects); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file")
    if path.stat().st_size == 0:
        raise InputFileError(path, "file is empty")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a corrupt file
        raise InputFileError(path, f"not a readable weights file ({type(error).__name__}: {str(error).splitlines()[0][:120]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputFileError(path, "does not hold a state_dict of tensors")
    return state


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


def _authors_block_key(rest: str, expanded: bool) -> str:
    """Map a key inside one of the authors' flat inverted-residual blocks to torchvision's nested layout."""
    index, _, tail = rest.partition(".")
    if expanded:  # conv.0/1 expand, conv.3/4 depthwise, conv.6 project, conv.7 BN
        mapping = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
    else:  # t = 1: conv.0/1 depthwise, conv.3 project, conv.4 BN
        mapping = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}
    if index not in mapping:
        raise KeyError(rest)
    return f"{mapping[index]}.{tail}"


def map_authors_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Translate the authors' key layout (``conv1``…``conv4``, ``decode4``…``decode1``) to :class:`M2UNet`'s.

    Raises ``KeyError`` for any key it does not know, so that nothing is silently dropped.
    """
    mapped: dict[str, torch.Tensor] = {}
    decoders = {"decode4": 0, "decode3": 1, "decode2": 2, "decode1": 3}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in ("conv1", "conv2", "conv3", "conv4"):
            layer, _, rest = rest.partition(".")
            if layer == "0":  # layer 0: conv1.0.0 conv, conv1.0.1 BN
                new = f"encoder.features.0.{rest}"
            elif rest.startswith("conv."):
                new = f"encoder.features.{layer}.conv." + _authors_block_key(rest[5:], expanded=layer != "1")
            else:
                raise KeyError(key)
        elif head in decoders and rest.startswith("ir1.conv."):
            new = f"decoder.{decoders[head]}.block.conv." + _authors_block_key(rest[9:], expanded=True)
        else:
            raise KeyError(key)
        mapped[new] = value
    return mapped


def load_authors_checkpoint(path: str | os.PathLike) -> nn.Module:
    """An :class:`M2UNet` (eval mode) holding one of the authors' checkpoints (laibe/M2U-Net, MIT licence).

    Strict: every tensor in the file is mapped and every parameter and buffer of the model is filled
    (BatchNorm's ``num_batches_tracked``, absent from the files, is set to 0).
    """
    from .m2unet import M2UNet

    state = read_state_dict(path)
    try:
        mapped = map_authors_state_dict(state)
    except KeyError as error:
        raise InputFileError(path, f"not an M2U-Net authors' checkpoint (unknown key {error.args[0]!r})") from None
    model = M2UNet()
    expected = model.state_dict()
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in mapped:
            mapped[key] = torch.zeros((), dtype=torch.long)
    wrong = [k for k in mapped if k in expected and mapped[k].shape != expected[k].shape]
    missing = [k for k in expected if k not in mapped]
    if wrong or missing:
        raise InputFileError(path, f"not an M2U-Net authors' checkpoint ({len(missing)} missing, {len(wrong)} wrongly shaped tensors)")
    model.load_state_dict(mapped, strict=True)
    return model.eval()
