"""Every registered model (M2U-Net and the paper's baselines U-Net and ERFNet), timm style: builds, shapes,
parameter counts against the paper's Table 2, MAdds, TorchScript, determinism, weights round trip, `info`.

Small inputs only: U-Net at 544×544 is 217 GMAdds, so full-size MAdds are counted on shapes alone (meta device).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from m2unet.errors import M2UNetError
from m2unet.models import ERFNet, UNet, create_model, list_models
from m2unet.models.complexity import count_madds, count_parameters
from m2unet.models.erfnet import Downsampler, NonBottleneck1D, Upsampler
from m2unet.paper import TABLE2
from m2unet.weights import build_model, load_weights, save_weights

# Exact parameter counts (1 output class); each must round to the paper's Table 2 value.
PARAMETERS = {"m2unet": 549_748, "unet": 31_031_745, "erfnet": 2_063_021}
MODELS = list_models()


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: create_model(name).eval() for name in MODELS}


def test_every_registered_model_is_covered_here():
    assert set(MODELS) == set(PARAMETERS), "a new model needs its exact parameter count in PARAMETERS"
    assert {"unet", "erfnet"} <= set(TABLE2)


@pytest.mark.parametrize("name", MODELS)
def test_parameter_counts_are_exact_and_within_1_percent_of_the_paper(models, name):
    count = count_parameters(models[name])
    assert count == PARAMETERS[name]
    paper = TABLE2[name]["params_m"] * 1e6
    assert abs(count - paper) / paper < 0.01
    assert round(count / 1e6, 2) == TABLE2[name]["params_m"]  # the paper's two decimals


def test_erfnet_parameters_depend_on_classes_only_in_the_last_layer():
    # 16×2×2 weights + 1 bias per class: the paper's 20-class network rounds to the same 2.06M
    assert count_parameters(ERFNet(num_classes=20)) == PARAMETERS["erfnet"] + 19 * 65 == 2_064_256


def test_unet_without_batchnorm_is_the_one_that_matches_31_03m():
    unet = UNet()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in unet.modules())
    convs_3x3 = [m for m in unet.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    with_bn = PARAMETERS["unet"] + sum(2 * c.out_channels for c in convs_3x3)
    assert round(with_bn / 1e6, 2) == 31.04  # so BatchNorm would not give the paper's 31.03M


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", [(2, 32, 48), (1, 64, 32)])
def test_forward_gives_one_logit_map_of_input_size(models, name, shape):
    n, h, w = shape
    with torch.no_grad():
        out = models[name](torch.rand(n, 3, h, w))
    assert out.shape == (n, 1, h, w)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "bad"), [("unet", (40, 48)), ("erfnet", (36, 48))])
def test_sizes_off_the_multiple_are_refused(models, name, bad):
    with pytest.raises(ValueError, match="divisible by"):
        models[name](torch.rand(1, 3, *bad))


def test_erfnet_takes_multiples_of_8():
    with torch.no_grad():
        assert ERFNet().eval()(torch.rand(1, 3, 40, 24)).shape == (1, 1, 40, 24)


def test_erfnet_follows_table_1_of_its_paper():
    model = ERFNet().eval()
    layers = list(model.layers)
    assert len(layers) == 23
    kinds = [type(layer) for layer in layers]
    expected = [Downsampler, Downsampler] + [NonBottleneck1D] * 5 + [Downsampler] + [NonBottleneck1D] * 8
    expected += [Upsampler, NonBottleneck1D, NonBottleneck1D, Upsampler, NonBottleneck1D, NonBottleneck1D, nn.ConvTranspose2d]
    assert kinds == expected
    assert [layers[i].conv3x1_2.dilation[0] for i in range(8, 16)] == [2, 4, 8, 16, 2, 4, 8, 16]
    assert all(layers[i].conv1x3_2.dilation == (1, layers[i].conv3x1_2.dilation[0]) for i in range(8, 16))
    # Table I's output sizes for a 1024×512 input, here for 64×64: channels and stride after each layer
    x = torch.rand(1, 3, 64, 64)
    shapes = []
    with torch.no_grad():
        for layer in layers:
            x = layer(x)
            shapes.append((x.shape[1], 64 // x.shape[2]))
    assert shapes[0] == (16, 2) and shapes[1] == (64, 4) and shapes[6] == (64, 4)
    assert shapes[7] == (128, 8) and shapes[15] == (128, 8)
    assert shapes[16] == (64, 4) and shapes[18] == (64, 4) and shapes[19] == (16, 2) and shapes[21] == (16, 2)
    assert shapes[22] == (1, 1)


def test_erfnet_dropout_rates_and_residuals():
    layers = ERFNet().layers
    assert all(layers[i].dropout.p == 0.03 for i in range(2, 7))
    assert all(layers[i].dropout.p == 0.3 for i in range(8, 16))
    assert all(isinstance(layers[i].dropout, nn.Identity) for i in (17, 18, 20, 21))
    block = NonBottleneck1D(8).eval()
    for p in block.parameters():  # zero weights: the block reduces to ReLU(input)
        nn.init.zeros_(p)
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(x))


def test_unet_has_the_23_convolutional_layers_of_its_paper():
    convs = [m for m in UNet().modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) == 23
    ups = [m for m in convs if isinstance(m, nn.ConvTranspose2d)]
    assert [(u.in_channels, u.out_channels, u.kernel_size, u.stride) for u in ups] == [
        (1024, 512, (2, 2), (2, 2)), (512, 256, (2, 2), (2, 2)), (256, 128, (2, 2), (2, 2)), (128, 64, (2, 2), (2, 2))
    ]


def test_unet_uses_its_papers_initialisation():
    torch.manual_seed(0)
    unet = UNet()
    conv = unet.down[1][0]  # 3×3, 64 → 128: N = 9 × 64
    assert abs(conv.weight.std().item() / (2 / 576) ** 0.5 - 1) < 0.02 and not conv.bias.any()
    up = unet.up[0].up  # 2×2 stride 2, 1024 → 512: each output sees one tap per input channel, N = 1024
    assert abs(up.weight.std().item() / (2 / 1024) ** 0.5 - 1) < 0.02
    with torch.no_grad():  # the signal survives the 23 layers without BatchNorm
        assert 0.05 < unet(torch.rand(1, 3, 64, 64)).std().item() < 20


@pytest.mark.parametrize("name", ["unet", "erfnet"])
def test_baselines_refuse_a_pretrained_encoder(name):
    assert count_parameters(create_model(name)) == PARAMETERS[name]
    with pytest.raises(M2UNetError, match="no pretrained encoder"):
        build_model(name, encoder_weights="imagenet")


# --- MAdds -------------------------------------------------------------------------------------------------


def test_madds_formula_on_hand_computed_layers():
    conv = nn.Conv2d(2, 3, 3, padding=1)  # 4×4 output × 3 channels × (2 × 3 × 3) weights each
    assert count_madds(conv, 4, 4, in_channels=2) == 16 * 3 * 18 == 864
    up = nn.ConvTranspose2d(2, 3, 2, stride=2)  # kernel = stride: each of the 8×8×3 outputs sees 2 inputs once
    assert count_madds(up, 4, 4, in_channels=2) == (8 * 8 * 3) * 2 == 384
    assert count_madds(up, 4, 4, in_channels=2, transposed_per="output") == 4 * 384  # the paper's rule: stride² more
    grouped = nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2)  # each output sees in/groups = 2 inputs
    assert count_madds(grouped, 4, 4, in_channels=4) == (8 * 8 * 6) * 2 == 768
    with pytest.raises(ValueError, match="transposed_per"):
        count_madds(up, 4, 4, in_channels=2, transposed_per="both")


def unet_madds_by_hand(h: int, w: int) -> int:
    """U-Net's MAdds from its layer table, independent of the hook counter."""
    widths, total, cin = (64, 128, 256, 512, 1024), 0, 3
    for level, cout in enumerate(widths):  # two 3×3 convs per level at 1/2^level resolution
        pixels = (h >> level) * (w >> level)
        total += pixels * 9 * (cin * cout + cout * cout)
        cin = cout
    for level in range(4, 0, -1):  # up-conv 2×2 from level to level-1, then two 3×3 convs
        cin, cout = widths[level], widths[level - 1]
        total += (h >> level) * (w >> level) * cin * cout * 4
        pixels = (h >> (level - 1)) * (w >> (level - 1))
        total += pixels * 9 * (2 * cout * cout + cout * cout)
    return total + h * w * 64  # 1×1 head to one logit


def test_unet_madds_match_the_layer_table_and_the_papers_figure():
    unet = UNet()
    for h, w in [(32, 48), (544, 544), (960, 960)]:
        assert count_madds(unet, h, w) == unet_madds_by_hand(h, w)
    assert count_madds(unet, 544, 544) == 217_505_857_536
    # The paper's 246.6 GMAdds: its 4 up-convolutions counted per output pixel (4× their true cost)
    assert round(count_madds(unet, 544, 544, transposed_per="output") / 1e9, 1) == TABLE2["unet"]["gmadds"][544] == 246.6


def test_erfnet_madds_and_the_papers_figure():
    erfnet = ERFNet()
    assert count_madds(erfnet, 544, 544) == 14_931_672_832
    # The paper's 2.8 is ERFNet at 224×224 by the same rule (our reading), far from 544×544
    assert round(count_madds(erfnet, 224, 224, transposed_per="output") / 1e9, 1) == TABLE2["erfnet"]["gmadds"][544] == 2.8
    assert count_madds(erfnet, 544, 544, transposed_per="output") / 1e9 > 16


@pytest.mark.parametrize("name", MODELS)
def test_madds_scale_linearly_with_pixels(models, name):
    # Fully convolutional: cost per pixel is constant once H, W are multiples of 16
    base = count_madds(models[name], 32, 32)
    assert count_madds(models[name], 64, 64) == 4 * base
    assert count_madds(models[name], 64, 128) == 8 * base
    assert count_madds(models[name], 544, 544) == (544 // 32) ** 2 * base


def test_m2unet_madds_are_the_papers_under_both_rules(models):
    for side in (544, 960):
        paper = TABLE2["m2unet"]["gmadds"][side]
        assert round(count_madds(models["m2unet"], side, side) / 1e9, 2) == paper
        assert count_madds(models["m2unet"], side, side, transposed_per="output") == count_madds(models["m2unet"], side, side)


def test_madds_count_on_meta_leaves_the_model_alone(models):
    erfnet = models["erfnet"]
    before = {k: v.clone() for k, v in erfnet.state_dict().items()}
    count_madds(erfnet, 64, 64)
    assert next(erfnet.parameters()).device.type == "cpu" and not erfnet.training
    assert all(torch.equal(before[k], v) for k, v in erfnet.state_dict().items())


# --- TorchScript, determinism, weights ------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("name", MODELS)
def test_torchscript_trace_matches_eager(models, name):
    model = models[name]
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
        other = torch.rand(1, 3, 32, 48)
        torch.testing.assert_close(traced(other), model(other))


@pytest.mark.parametrize("name", ["unet", "erfnet"])
def test_baselines_script_and_keep_the_size_check(models, name):
    scripted = torch.jit.script(models[name])
    x = torch.rand(1, 3, 48, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), models[name](x))
    with pytest.raises(torch.jit.Error, match="divisible by"):
        scripted(torch.rand(1, 3, 44, 32))


@pytest.mark.parametrize("name", MODELS)
def test_eval_outputs_are_deterministic(models, name):
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(models[name](x), models[name](x))


def test_erfnet_dropout_acts_only_in_training():
    torch.manual_seed(1)
    block = ERFNet().layers[8]  # a dilated block, spatial dropout 0.3
    x = torch.rand(1, 128, 8, 8)
    with torch.no_grad():
        assert not torch.equal(block.train()(x), block(x))
        assert torch.equal(block.eval()(x), block(x))


@pytest.mark.parametrize("name", MODELS)
def test_weights_round_trip_selects_the_architecture(models, name, tmp_path):
    model = models[name]
    path = save_weights(model, tmp_path / f"{name}.safetensors", {"dataset": "drive"})
    loaded, meta = load_weights(path)
    assert type(loaded) is type(model) and meta["model"] == name and meta["dataset"] == "drive"
    assert not loaded.training
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in loaded.state_dict().items())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_weights_of_one_model_do_not_load_as_another(models, tmp_path):
    path = save_weights(models["erfnet"], tmp_path / "erfnet.safetensors", {"model": "unet"})
    with pytest.raises(M2UNetError, match="do not fit model 'unet'"):
        load_weights(path)


# --- m2unet info ---------------------------------------------------------------------------------------------


def test_info_prints_table_2_beside_the_paper():
    from click.testing import CliRunner

    from m2unet.cli import main

    result = CliRunner().invoke(main, ["info", "--model", "all", "--size", "544"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if line.split() and line.split()[0] in PARAMETERS}
    assert rows["m2unet"][1] == "549,748" and rows["m2unet"][2] == "0.55M" and rows["m2unet"][-2] == "1.42"
    assert rows["unet"][1] == "31,031,745" and rows["unet"][7] == "217.51" and rows["unet"][8] == "246.60"
    assert rows["erfnet"][1] == "2,063,021" and rows["erfnet"][-2] == "2.80"
    assert "224×224" in result.output and "(2.79)" in result.output  # the ERFNet explanation, computed


@pytest.mark.parametrize(("args", "message"), [(["--model", "unet", "--size", "500"], "divisible by 16"), (["--model", "nope"], "unknown model")])
def test_info_errors_are_one_line(args, message):
    from click.testing import CliRunner

    from m2unet.cli import main

    result = CliRunner().invoke(main, ["info", *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", MODELS)
def test_outputs_match_the_stored_ones(name):
    """Fixed (non-random) weights and input: a change to the forward pass shows here (tests/model_outputs.py)."""
    import json

    import numpy as np

    from model_outputs import OUTPUTS_FILE, model_output

    stored = json.loads(OUTPUTS_FILE.read_text())
    assert set(stored) == set(MODELS), "a new model needs its stored outputs: python tests/model_outputs.py"
    now, then = model_output(name), stored[name]
    assert now["shape"] == then["shape"]
    np.testing.assert_allclose(now["samples"], then["samples"], rtol=1e-4, atol=1e-3 * then["std"])
    assert now["mean"] == pytest.approx(then["mean"], abs=1e-3 * then["std"]) and now["std"] == pytest.approx(then["std"], rel=1e-3)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_exports_to_onnx_and_matches_pytorch(name, tmp_path):
    """What `m2unet export --weights` and `m2unet bench --arch` do with any registered model: probabilities agree."""
    import onnxruntime as ort

    from m2unet.export import export_onnx
    from model_outputs import fill_deterministic, fixed_input

    model = fill_deterministic(create_model(name))
    session = ort.InferenceSession(str(export_onnx(model, tmp_path / f"{name}.onnx")), providers=["CPUExecutionProvider"])
    image = torch.rand(1, 3, 48, 80)  # another size than the export's sample: the height and width are dynamic
    for x in (fixed_input(), image):
        with torch.no_grad():
            expected = torch.sigmoid(model(x)).numpy()
        assert float(abs(session.run(None, {"image": x.numpy()})[0] - expected).max()) < 1e-4
