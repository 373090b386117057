"""``m2unet export``: ONNX / OpenVINO IR files of a model, fp32 or int8, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import M2UNetError, one_line_errors
from ..weights import EXPORTED_SUFFIXES, PRETRAINED_NAMES


@click.command()
@click.option("--format", "fmt", required=True, type=click.Choice(["onnx", "openvino"]), help="onnx: one .onnx file; openvino: IR .xml + .bin.")
@click.option("-o", "--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="Output file [default: m2unet-<model>[-int8].onnx / .xml].")
@click.option("--model", "model_name", default="drive", show_default=True, type=click.Choice(list(PRETRAINED_NAMES)), help="Pretrained model.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file instead of --model.")
@click.option("--int8", is_flag=True, help="Post-training int8 quantization (ONNX: onnxruntime QDQ; OpenVINO: NNCF).")
@click.option("--calibration", default="auto", show_default=True,
              help="Calibration training images for --int8: drive, chase_db1, hrf (several joined by commas) or a folder; auto: the model's dataset(s) (universal: all three).")
@one_line_errors
def export(fmt, out_path, model_name, weights, int8, calibration):
    """Export a model for ONNX Runtime or OpenVINO (dynamic height and width, opset 17; sigmoid included).

    Input 'image': float32 N×3×H×W, RGB in [0, 1], H and W multiples of 16. Output 'probability': N×1×H×W.
    The weights' metadata (a-priori threshold, dataset, metrics) is stored in the file (ONNX metadata_props,
    OpenVINO rt_info, key 'm2unet'). After export the file is run once at 544×544 and compared with PyTorch
    fp32 (max |Δ probability|). `m2unet segment --weights FILE` runs it, without PyTorch if need be.

    \b
    Examples:
      m2unet export --format onnx -o m2unet-drive.onnx
      m2unet export --format openvino --int8 --calibration drive -o m2unet-drive-int8.xml
    """
    from ..weights import calibration_for, read_metadata, resolve_weights, stamp_metadata
    from .cache import cached_export
    from .check import parity

    path = resolve_weights(model_name, weights)
    if path.suffix in EXPORTED_SUFFIXES:
        raise M2UNetError(f"{path}: already an exported model; export takes .safetensors or .pth weights")
    calibration = calibration_for(path, calibration)
    kind = ("onnx" if fmt == "onnx" else "openvino") + ("-int8" if int8 else "")
    suffix = ".onnx" if fmt == "onnx" else ".xml"
    out = Path(out_path or f"m2unet-{model_name if weights is None else path.stem}{'-int8' if int8 else ''}{suffix}")
    if out.suffix != suffix:
        raise M2UNetError(f"{out}: the {fmt} output must end in {suffix}")
    made = cached_export(path, kind, calibration, progress=click.echo)
    # what the weights are (threshold, dataset, metrics) travels inside the file, for segment --weights FILE;
    # the cached export is copied with it in one atomic write
    stamp_metadata(out, {**read_metadata(path), "exported_from": path.name, "export_format": fmt, "int8": int8,
                         **({"int8_calibration": calibration} if int8 else {})}, source=made)
    difference = parity(path, out)
    what = "int8 quantization error, expected" if int8 else "fp32 parity"
    click.echo(f"wrote {out}{' and ' + str(out.with_suffix('.bin')) if fmt == 'openvino' else ''} "
               f"(weights {path.name}); max |Δ probability| vs PyTorch at 544×544: {difference:.2e} ({what})")
