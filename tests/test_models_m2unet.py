"""M2U-Net architecture: Table 1 of the paper, the authors' checkpoints, ImageNet initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import IMAGENET_NORM, IMAGENET_RAW01
from m2unet.data import load_dataset
from m2unet.models import M2UNet, create_model, list_models
from m2unet.models.complexity import count_madds, count_parameters
from m2unet.weights import build_model, fold_imagenet_normalisation, load_authors_checkpoint, map_authors_state_dict, read_state_dict


def test_parameter_count_is_the_papers():
    assert count_parameters(create_model("m2unet")) == 549_748


@pytest.mark.parametrize("size, gmadds", [(544, 1.42), (960, 4.42)])
def test_madds_match_the_paper(size, gmadds):
    assert round(count_madds(M2UNet(), size, size) / 1e9, 2) == gmadds


def test_decoder_widths_follow_table_1():
    model = M2UNet()
    widths = [(b.block.in_channels, b.block.out_channels, b.block.conv[0][0].out_channels) for b in model.decoder]
    assert widths == [(128, 64, 19), (88, 44, 13), (60, 30, 9), (33, 1, 5)]
    assert not any(b.block.use_residual for b in model.decoder)


def test_output_is_logits_of_input_size():
    model = M2UNet().eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 1, 64, 96)
    assert isinstance(model.decoder[-1].block.conv[-1], torch.nn.BatchNorm2d)  # ends in BN: logits, no sigmoid
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.rand(1, 3, 60, 64))


def test_encoder_takes_torchvision_layout_directly():
    keys = set(M2UNet().encoder.state_dict())
    assert {"features.0.0.weight", "features.1.conv.0.0.weight", "features.1.conv.1.weight", "features.13.conv.3.running_var"} <= keys
    assert not any(k.startswith("features.14") for k in keys)


def test_registry_lists_m2unet_and_rejects_unknown():
    from m2unet.errors import M2UNetError

    assert "m2unet" in list_models()
    with pytest.raises(M2UNetError, match="unknown model"):
        create_model("nope")


def test_imagenet_encoder_from_local_file():
    if not IMAGENET_RAW01.is_file():
        pytest.skip("shared ImageNet weights missing")
    model = build_model("m2unet", encoder_weights=str(IMAGENET_RAW01))
    reference = read_state_dict(IMAGENET_RAW01)
    assert torch.equal(model.encoder.features[5].conv[2].weight, reference["features.5.conv.2.weight"])
    # "imagenet" resolves to $M2UNET_IMAGENET_WEIGHTS (set by conftest) without touching the network
    same = build_model("m2unet", encoder_weights="imagenet")
    assert torch.equal(same.encoder.features[0][0].weight, model.encoder.features[0][0].weight)


def test_folding_imagenet_normalisation_matches_the_raw01_file():
    if not IMAGENET_NORM.is_file():
        pytest.skip("shared ImageNet weights missing")
    folded = fold_imagenet_normalisation(read_state_dict(IMAGENET_NORM))
    raw = read_state_dict(IMAGENET_RAW01)
    for key in ("features.0.0.weight", "features.0.1.running_mean"):
        torch.testing.assert_close(folded[key], raw[key], atol=1e-5, rtol=1e-5)


def test_folding_is_exact_away_from_the_border():
    torch.manual_seed(0)
    normalised = create_model("m2unet").encoder.features[:2].eval()
    for module in normalised.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    state = {"features." + k: v for k, v in normalised.state_dict().items()}
    raw = create_model("m2unet").encoder.features[:2].eval()
    raw.load_state_dict({k.removeprefix("features."): v for k, v in fold_imagenet_normalisation(state).items()})
    x = torch.rand(1, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = normalised((x - mean) / std)
        got = raw(x)
    torch.testing.assert_close(got[..., 2:-2, 2:-2], expected[..., 2:-2, 2:-2], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["M2UNetDRIVE.pth", "M2UNetCHASEDB1.pth", "M2UNetHRF.pth"])
def test_authors_checkpoints_load_strictly(authors_dir, name):
    state = read_state_dict(authors_dir / name)
    assert len(state) == 255
    mapped = map_authors_state_dict(state)
    assert len(mapped) == 255  # every tensor mapped, none dropped
    model = load_authors_checkpoint(authors_dir / name)
    assert not model.training
    own = model.state_dict()
    for key, value in mapped.items():
        assert torch.equal(own[key], value)


def _direct_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """M2U-Net written out with functional ops straight from the authors' key names."""

    def bn(t, prefix):
        return F.batch_norm(t, state[prefix + ".running_mean"], state[prefix + ".running_var"], state[prefix + ".weight"], state[prefix + ".bias"], eps=1e-5)

    def conv(t, key, stride=1, depthwise=False):
        w = state[key]
        return F.conv2d(t, w, stride=stride, padding=w.shape[-1] // 2, groups=t.shape[1] if depthwise else 1)

    def block(t, prefix, stride, expanded, residual):
        y = t
        if expanded:
            y = F.relu6(bn(conv(y, f"{prefix}.conv.0.weight"), f"{prefix}.conv.1"))
            y = F.relu6(bn(conv(y, f"{prefix}.conv.3.weight", stride, True), f"{prefix}.conv.4"))
            y = bn(conv(y, f"{prefix}.conv.6.weight"), f"{prefix}.conv.7")
        else:
            y = F.relu6(bn(conv(y, f"{prefix}.conv.0.weight", stride, True), f"{prefix}.conv.1"))
            y = bn(conv(y, f"{prefix}.conv.3.weight"), f"{prefix}.conv.4")
        return t + y if residual else y

    strides = {1: 1, 2: 2, 3: 1, 4: 2, 5: 1, 6: 1, 7: 2, 8: 1, 9: 1, 10: 1, 11: 1, 12: 1, 13: 1}
    residual = {3, 5, 6, 8, 9, 10, 12, 13}
    stage = {1: "conv1", 2: "conv2", 3: "conv2", 4: "conv3", 5: "conv3", 6: "conv3"}
    y = F.relu6(bn(conv(x, "conv1.0.0.weight", stride=2), "conv1.0.1"))
    skips = [x]
    for layer in range(1, 14):
        y = block(y, f"{stage.get(layer, 'conv4')}.{layer}", strides[layer], layer != 1, layer in residual)
        if layer in (1, 3, 6):
            skips.append(y)
    for name in ("decode4", "decode3", "decode2", "decode1"):
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        y = block(torch.cat([y, skips.pop()], 1), f"{name}.ir1", 1, True, False)
    return y


def test_authors_drive_checkpoint_on_a_real_image(authors_dir, datasets_root):
    """Our module graph equals a direct recomputation, and the map matches the label (F1 > 0.80)."""
    sample = load_dataset("drive", "test", root=datasets_root)[0]
    assert sample.name == "01_test"
    x = torch.from_numpy(sample.image).permute(2, 0, 1)[None]
    model = load_authors_checkpoint(authors_dir / "M2UNetDRIVE.pth")
    state = read_state_dict(authors_dir / "M2UNetDRIVE.pth")
    with torch.no_grad():
        ours = model(x)
        direct = _direct_forward(state, x)
    torch.testing.assert_close(ours, direct, atol=1e-4, rtol=1e-4)
    vessels = torch.sigmoid(ours)[0, 0].numpy() >= 0.5215
    tp = np.count_nonzero(vessels & sample.label)
    f1 = 2 * tp / (vessels.sum() + sample.label.sum())
    assert f1 > 0.80, f1


def test_bad_weights_files_give_one_line_errors(tmp_path):
    from m2unet.errors import InputFileError

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    for path, problem in [(tmp_path / "missing.pth", "no such file"), (empty, "empty"), (junk, "not a readable weights file")]:
        with pytest.raises(InputFileError, match=problem) as info:
            load_authors_checkpoint(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(InputFileError, match="not an M2U-Net authors' checkpoint"):
        load_authors_checkpoint(wrong)
