"""ONNX / OpenVINO export of M2U-Net and int8 post-training quantization calibrated on training images.

Every exported model takes ``image``: float32 N×3×H×W, RGB in [0, 1], H and W multiples of 16 (dynamic),
and returns ``probability``: float32 N×1×H×W (the sigmoid is part of the graph, so every runtime returns
the same quantity as :func:`m2unet.inference.predict.predict_probability`).

Exports are cached per weights file (by content hash) under ``$M2UNET_CACHE`` (default
``~/.cache/m2unet/exports``), so ``m2unet segment --backend openvino`` and ``m2unet bench`` export once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from ..errors import M2UNetError

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "probability"
CACHE_ENV = "M2UNET_CACHE"
# Calibration crops: at most this size (centre crop, multiple of 16), so HRF calibration stays cheap.
CALIBRATION_MAX_SIDE = 1024
DEFAULT_CALIBRATION = "drive"
# Layers kept in floating point by int8 quantization: the last decoder block works at full resolution and
# produces the logits, and quantizing it costs most of the accuracy (DRIVE test F1, OpenVINO: −0.027 with
# it quantized, −0.0003 without; benchmarks/quantization_f1.py). Matched against node names of the export.
FLOAT_LAYERS = "decoder.3"
INT8_TAG = "keep-dec3"  # part of the cached file name: changes when the quantization recipe changes


class ProbabilityModel:
    """Wraps a logits model so the exported graph ends in a sigmoid (built lazily: torch is imported here only)."""

    def __new__(cls, model):
        import torch

        class _Probability(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, image):
                return torch.sigmoid(self.inner(image))

        return _Probability(model).eval()


def export_onnx(model, path: str | os.PathLike, opset: int = OPSET, sample_size: tuple[int, int] = (64, 80)) -> Path:
    """Write an ONNX model with dynamic batch, height and width (opset ``opset`` ≥ 17), atomically."""
    import torch

    from ..data.io import write_atomic

    if opset < 17:
        raise M2UNetError(f"opset {opset}: need at least 17")
    wrapped = ProbabilityModel(model.float().eval())
    sample = torch.rand(1, 3, *sample_size)
    dynamic = {0: "batch", 2: "height", 3: "width"}

    def write(tmp):
        # The TorchScript exporter: the torch.export-based one needs onnxscript, which this project does not depend on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapped, sample, tmp, opset_version=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic}, dynamo=False,
            )

    return write_atomic(path, write)


def _save_ir(ov_model, xml_path: Path) -> Path:
    """Save an OpenVINO IR (.xml + .bin) through temporary names, then rename both (bin first)."""
    import openvino as ov

    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_xml = xml_path.with_name(f".{xml_path.stem}.{os.getpid()}.tmp.xml")
    # fp32 weights: the model is tiny (2 MB) and fp16 compression would add rounding to the parity check.
    ov.save_model(ov_model, str(tmp_xml), compress_to_fp16=False)
    os.replace(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin"))
    os.replace(tmp_xml, xml_path)
    return xml_path


def export_openvino(onnx_path: str | os.PathLike, xml_path: str | os.PathLike) -> Path:
    """Convert an exported ONNX model to OpenVINO IR (dynamic shapes kept; fp32 weights)."""
    import openvino as ov

    return _save_ir(ov.convert_model(str(onnx_path)), Path(xml_path))


EXPORTED_SUFFIXES = (".onnx", ".xml")
METADATA_KEY = "m2unet"  # ONNX metadata_props key / OpenVINO rt_info key: the weights' metadata as JSON


def stamp_metadata(path: str | os.PathLike, metadata: dict) -> Path:
    """Write ``metadata`` (JSON) into an exported model file, atomically: ONNX ``metadata_props`` or OpenVINO ``rt_info``.

    ``m2unet segment --weights FILE.onnx|.xml`` reads it back (the a-priori threshold, the dataset), with or without PyTorch.
    """
    import json

    path = Path(path)
    text = json.dumps(metadata, sort_keys=True)
    if path.suffix == ".onnx":
        import onnx

        from ..data.io import write_atomic

        proto = onnx.load(str(path))
        kept = [(p.key, p.value) for p in proto.metadata_props if p.key != METADATA_KEY]
        del proto.metadata_props[:]
        for key, value in [*kept, (METADATA_KEY, text)]:
            proto.metadata_props.add(key=key, value=value)
        return write_atomic(path, lambda tmp: onnx.save(proto, tmp))
    import openvino as ov

    model = ov.Core().read_model(str(path))
    model.set_rt_info(text, METADATA_KEY)
    return _save_ir(model, path)


def _onnx_metadata_props(data: bytes) -> dict[str, str]:
    """``metadata_props`` of a serialized ONNX ModelProto, read from the protobuf wire format directly.

    No runtime and no onnx package needed, and the graph is skipped, not parsed. Raises ValueError when ``data``
    is not a whole ModelProto (truncated, not protobuf, or lacking the ir_version and graph every model has).
    """
    def varint(at: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            if at >= len(data) or shift > 63:
                raise ValueError("bad varint")
            byte = data[at]
            value |= (byte & 0x7F) << shift
            at, shift = at + 1, shift + 7
            if byte < 0x80:
                return value, at

    def fields(start: int, end: int):
        at = start
        while at < end:
            tag, at = varint(at)
            number, wire = tag >> 3, tag & 7
            if wire == 0:
                value, at = varint(at)
            elif wire in (1, 5):
                value, at = None, at + (8 if wire == 1 else 4)
            elif wire == 2:
                length, at = varint(at)
                value, at = (at, at + length), at + length
            else:
                raise ValueError(f"wire type {wire}")
            if at > end or number == 0:
                raise ValueError("truncated")
            yield number, value

    props, seen = {}, set()
    for number, value in fields(0, len(data)):
        seen.add(number)
        if number == 14:  # ModelProto.metadata_props: StringStringEntryProto {1: key, 2: value}
            entry = {n: data[v[0]:v[1]].decode() for n, v in fields(*value) if n in (1, 2)}
            props[entry.get(1, "")] = entry.get(2, "")
    if not {1, 7} <= seen:  # ir_version, graph
        raise ValueError("no ir_version or graph")
    return props


def read_exported_metadata(path: str | os.PathLike) -> dict:
    """The metadata :func:`stamp_metadata` wrote into an exported model ({} when there is none).

    Read from the file itself (OpenVINO IR: its XML; ONNX: the protobuf's metadata_props), so no runtime is needed
    and the model is not loaded twice; a corrupt or truncated file is a one-line error here.
    """
    import json

    path = Path(path)
    if not path.is_file():
        from ..errors import InputFileError

        raise InputFileError(path, "no such file")
    try:
        if path.suffix == ".xml":
            import xml.etree.ElementTree as ET

            node = ET.parse(path).getroot().find(f"rt_info/{METADATA_KEY}")
            text = None if node is None else node.get("value")
        else:
            text = _onnx_metadata_props(path.read_bytes()).get(METADATA_KEY)
    except Exception as error:
        from ..errors import InputFileError

        raise InputFileError(path, f"not a readable {'OpenVINO IR' if path.suffix == '.xml' else 'ONNX'} model ({type(error).__name__})") from None
    return json.loads(text) if text else {}


def calibration_images(dataset: str = DEFAULT_CALIBRATION, limit: int = 20, root: str | os.PathLike | None = None) -> list[np.ndarray]:
    """Training images of ``dataset`` (a built-in name or a folder) as N×3×H×W float32 batches of one.

    Each image is centre-cropped to at most ``CALIBRATION_MAX_SIDE`` and to multiples of 16.
    """
    from ..data import load_dataset

    try:
        data = load_dataset(dataset, split="train", root=root)
    except M2UNetError as error:
        raise M2UNetError(f"calibration data {dataset!r}: {error}") from None
    batches = []
    for index in range(min(limit, len(data))):
        image = data[index].image
        h, w = image.shape[:2]
        ch = min(CALIBRATION_MAX_SIDE, h - h % 16)
        cw = min(CALIBRATION_MAX_SIDE, w - w % 16)
        top, left = (h - ch) // 2, (w - cw) // 2
        crop = image[top : top + ch, left : left + cw]
        batches.append(np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32))
    if not batches:
        raise M2UNetError(f"calibration data {dataset!r}: no training images found")
    return batches


def quantize_openvino_int8(xml_path: str | os.PathLike, out_xml: str | os.PathLike, batches: list[np.ndarray]) -> Path:
    """int8 post-training quantization with NNCF (OpenVINO backend), calibrated on ``batches``."""
    try:
        import nncf
    except ImportError:
        raise M2UNetError("int8 OpenVINO export needs NNCF: pip install nncf (or m2unet[deploy])") from None
    import logging

    import openvino as ov

    nncf.set_log_level(logging.ERROR)  # it lists every node kept in float
    model = ov.Core().read_model(str(xml_path))
    keep_float = nncf.IgnoredScope(patterns=[f".*{FLOAT_LAYERS.replace('.', '[.]')}/.*"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = nncf.quantize(
            model, nncf.Dataset(batches), subset_size=len(batches), preset=nncf.QuantizationPreset.MIXED,
            fast_bias_correction=True, ignored_scope=keep_float,
        )
    return _save_ir(quantized, Path(out_xml))


def quantize_onnx_int8(onnx_path: str | os.PathLike, out_path: str | os.PathLike, batches: list[np.ndarray]) -> Path:
    """int8 post-training quantization for ONNX Runtime: QDQ format, per-channel weights, calibrated on ``batches``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from ..data.io import write_atomic

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(batches)

        def get_next(self):
            batch = next(self.items, None)
            return None if batch is None else {INPUT_NAME: batch}

    import logging

    import onnx

    keep_float = [node.name for node in onnx.load(str(onnx_path)).graph.node if f"/{FLOAT_LAYERS}/" in node.name]

    def write(tmp):
        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # quantize_static logs advice through the root logger
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_static(
                    str(onnx_path), tmp, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep_float,
                )
        finally:
            logging.getLogger().setLevel(level)

    return write_atomic(out_path, write)


# ---------------------------------------------------------------------------------------------------------
# Cache of exports per weights file


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "m2unet" / "exports")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def shipped_onnx(weights: Path, digest: str | None = None) -> Path | None:
    """The ONNX export the package ships beside a shipped model (``pretrained/NAME.onnx``), if it was made from exactly
    this weights file (its metadata records the file's digest); None otherwise."""
    from ..weights import PRETRAINED_DIR

    candidate = PRETRAINED_DIR / f"{weights.stem}.onnx"
    if weights.suffix != ".safetensors" or weights.resolve().parent != PRETRAINED_DIR.resolve() or not candidate.is_file():
        return None
    try:
        made_from = read_exported_metadata(candidate).get("exported_from_digest")
    except M2UNetError:
        return None
    return candidate if made_from == (digest or _file_digest(weights)) else None


def write_shipped_onnx(weights: Path) -> Path:
    """Export a shipped model to ``pretrained/NAME.onnx`` with its metadata and the digest of the weights it came from."""
    from ..weights import PRETRAINED_DIR, load_weights

    model, metadata = load_weights(weights)
    out = export_onnx(model, PRETRAINED_DIR / f"{Path(weights).stem}.onnx")
    return stamp_metadata(out, {**metadata, "exported_from": Path(weights).name, "exported_from_digest": _file_digest(Path(weights)),
                                "export_format": "onnx", "int8": False})


def cached_export(weights: str | os.PathLike, kind: str, calibration: str = DEFAULT_CALIBRATION, progress=None) -> Path:
    """Path of an export of ``weights`` (made on first use): ``kind`` is onnx, onnx-int8, openvino or openvino-int8."""
    from ..weights import load_weights

    weights = Path(weights)
    digest = _file_digest(weights)
    folder = cache_root() / f"{weights.stem}-{digest}"
    onnx_path = folder / "model.onnx"
    say = progress or (lambda message: None)
    if not onnx_path.is_file():
        shipped = shipped_onnx(weights, digest)
        if shipped is not None:  # no PyTorch needed: the package carries this model's ONNX export
            from ..data.io import write_atomic

            write_atomic(onnx_path, lambda tmp: shutil.copyfile(shipped, tmp))
        else:
            say(f"exporting {weights.name} to ONNX (once, cached in {folder})")
            model, _ = load_weights(weights)
            export_onnx(model, onnx_path)
    if kind not in ("onnx", "onnx-int8", "openvino", "openvino-int8"):
        raise M2UNetError(f"unknown export kind {kind!r}")
    source = onnx_path
    if kind.startswith("openvino"):
        source = folder / "model.xml"
        if not source.is_file():
            export_openvino(onnx_path, source)
    if not kind.endswith("int8"):
        return source
    tag = calibration if "/" not in str(calibration) else "folder-" + hashlib.sha256(str(Path(calibration).resolve()).encode()).hexdigest()[:8]
    out = folder / f"model_int8_{tag}_{INT8_TAG}{source.suffix}"
    if not out.is_file():
        onnx = kind == "onnx-int8"
        say(f"quantizing to int8 {'for ONNX Runtime' if onnx else 'with NNCF'}, calibrated on {calibration} training images (once)")
        (quantize_onnx_int8 if onnx else quantize_openvino_int8)(source, out, calibration_images(calibration))
    return out
