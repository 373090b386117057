"""Exported model files (ONNX, OpenVINO IR): the weights' metadata inside them, and writing an IR atomically.

``m2unet export`` stamps the metadata of the weights it exported (the a-priori threshold, the dataset, the FOV
diameter) into the file: ONNX ``metadata_props`` or OpenVINO ``rt_info``, key ``"m2unet"``, as JSON.
``m2unet segment --weights FILE.onnx|.xml`` reads it back, with or without PyTorch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InputFileError, M2UNetError
from .files import METADATA_KEY

EXPORTED_SUFFIXES = (".onnx", ".xml")


def save_ir(ov_model, xml_path: str | os.PathLike) -> Path:
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


def stamp_metadata(path: str | os.PathLike, metadata: dict, source: str | os.PathLike | None = None) -> Path:
    """Write ``metadata`` (JSON) into an exported model file, atomically: ONNX ``metadata_props`` or OpenVINO ``rt_info``.

    ``source``: the file to copy with the metadata into ``path`` (default: ``path`` itself), so that ``path`` never holds
    a model without its metadata (a kill between a copy and the stamp would leave one, without its threshold).
    """
    path = Path(path)
    source = Path(source or path)
    text = json.dumps(metadata, sort_keys=True)
    if path.suffix == ".onnx":
        import onnx

        from ..data.io import write_atomic

        proto = onnx.load(str(source))
        kept = [(p.key, p.value) for p in proto.metadata_props if p.key != METADATA_KEY]
        del proto.metadata_props[:]
        for key, value in [*kept, (METADATA_KEY, text)]:
            proto.metadata_props.add(key=key, value=value)
        return write_atomic(path, lambda tmp: onnx.save(proto, tmp))
    import openvino as ov

    model = ov.Core().read_model(str(source))
    model.set_rt_info(text, METADATA_KEY)
    return save_ir(model, path)


def _onnx_metadata_text(path: Path) -> str | None:
    """The ``m2unet`` entry of an ONNX file's metadata_props, through the onnx package or, without it, ONNX Runtime."""
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        proto = onnx.load(str(path), load_external_data=False)
        if not proto.ir_version or not proto.HasField("graph"):  # a truncated file can parse as an empty model
            raise ValueError("no ir_version or graph")
        return {p.key: p.value for p in proto.metadata_props}.get(METADATA_KEY)
    try:
        import onnxruntime as ort
    except ImportError:
        raise M2UNetError(f"{path}: reading an ONNX model needs onnx or onnxruntime (pip install onnxruntime)") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)


def read_exported_metadata(path: str | os.PathLike) -> dict:
    """The metadata :func:`stamp_metadata` wrote into an exported model ({} when there is none).

    OpenVINO IR: its XML (``rt_info``), read with the standard library, no runtime needed; ONNX: the onnx package's
    reader (or ONNX Runtime's model metadata where only the runtime is installed). A corrupt or truncated file is a
    one-line error here, before a runtime tries every format it knows.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file")
    try:
        if path.suffix == ".xml":
            import xml.etree.ElementTree as ET

            node = ET.parse(path).getroot().find(f"rt_info/{METADATA_KEY}")
            text = None if node is None else node.get("value")
        else:
            text = _onnx_metadata_text(path)
    except M2UNetError:
        raise
    except Exception as error:  # onnx's DecodeError / ValidationError, ElementTree's ParseError, ORT's failures
        raise InputFileError(path, f"not a readable {'OpenVINO IR' if path.suffix == '.xml' else 'ONNX'} model ({type(error).__name__})") from None
    return json.loads(text) if text else {}
