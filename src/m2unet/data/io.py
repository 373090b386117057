"""Reading fundus images, labels and masks from disk, with one-line errors that name the file."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputFileError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pnm", ".bmp", ".webp"}
# Decompression-bomb guard: PIL refuses over ~179 Mpx by default; fundus images are far below that.
Image.MAX_IMAGE_PIXELS = 400_000_000


def _check_file(path: Path) -> None:
    if not path.exists():
        if path.is_symlink():
            raise InputFileError(path, f"broken symbolic link (its target {os.readlink(path)} does not exist)")
        raise InputFileError(path, "no such file")
    if not path.is_file():
        raise InputFileError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise InputFileError(path, "file is empty (0 bytes)")


def _read_array(path: Path) -> np.ndarray:
    """Decode any supported image to an array (H×W or H×W×C), keeping the bit depth."""
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                image.load()
                image = _upright(image)
                if image.mode == "P":  # palette (e.g. DRIVE 2nd_manual GIFs): expand through the palette
                    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                elif image.mode in ("1", "LA", "PA", "La", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"):
                    image = image.convert("RGBA" if image.mode in ("LA", "PA", "La", "RGBa") else ("L" if image.mode == "1" else "RGB"))
                array = np.asarray(image)
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _read_tiff(path)  # PIL cannot read 16-bit RGB TIFFs; tifffile can
        reason = "image too large" if isinstance(error, Image.DecompressionBombError) else "not an image file (unrecognised format)"
        raise InputFileError(path, reason) from None
    except OSError as error:
        message = str(error)
        if "truncated" in message:
            raise InputFileError(path, "image file is truncated") from None
        if path.suffix.lower() in (".tif", ".tiff"):
            return _read_tiff(path)
        raise InputFileError(path, f"cannot decode image ({message.splitlines()[0][:100]})") from None
    except (ValueError, SyntaxError) as error:
        raise InputFileError(path, f"cannot decode image ({str(error).splitlines()[0][:100]})") from None
    if array.dtype == np.int32 and array.max(initial=0) <= 65535:  # PIL's mode "I" for 16-bit PNG
        array = array.astype(np.uint16)
    return array


EXIF_ORIENTATION = 0x0112


def _upright(image: Image.Image) -> Image.Image:
    """The image as viewers show it: EXIF orientation (cameras and phones store portrait shots sideways) applied."""
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block: the pixels are still fine
        return image
    if orientation in (None, 1):
        return image
    return ImageOps.exif_transpose(image)


def _read_tiff(path: Path) -> np.ndarray:
    try:
        import tifffile

        array = np.asarray(tifffile.imread(path))
    except Exception as error:
        raise InputFileError(path, f"cannot decode TIFF, truncated or corrupt ({type(error).__name__})") from None
    if array.ndim < 2 or array.size == 0:
        raise InputFileError(path, "cannot decode TIFF, truncated or corrupt (no pixel data)")
    return array


def _to_unit_float(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        scaled = array.astype(np.float32)  # one float copy, scaled in place (a 7000×5000 RGB image is 420 MB)
        scaled *= np.float32(1.0 / np.iinfo(array.dtype).max)
        return scaled
    if np.issubdtype(array.dtype, np.floating):
        top = float(np.nanmax(array)) if array.size else 0.0
        return np.clip(array.astype(np.float32) / (top if top > 1.0 else 1.0), 0.0, 1.0)
    raise InputFileError(path, f"unsupported pixel type {array.dtype}")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An RGB image as float32 H×W×3 in [0, 1]: grayscale is repeated, alpha dropped, 16-bit scaled."""
    path = Path(path)
    array = _read_array(path)
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[2] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # planar TIFF
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 2:  # gray + alpha
        array = np.repeat(array[..., :1], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] >= 3:
        array = array[..., :3]
    else:
        raise InputFileError(path, f"unsupported image shape {array.shape}")
    if min(array.shape[:2]) < 16:
        raise InputFileError(path, f"image too small ({array.shape[1]}×{array.shape[0]}; need at least 16×16)")
    return _to_unit_float(np.ascontiguousarray(array), path)


def read_binary(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A label or mask as bool H×W: a pixel is on when its grey value is at least half of full scale.

    Handles 1-bit PNGs, palette GIFs (DRIVE 2nd_manual: grey 3/253), RGB masks with equal channels (HRF)
    and labels with a few intermediate grey values (HRF 11–13_h: binarised at ≥ 128).
    ``shape`` (H, W), when given, must match, else the error names the file and both sizes.
    """
    path = Path(path)
    array = _read_array(path)
    if array.ndim == 3:
        array = array[..., :3].max(axis=2) if array.shape[2] >= 3 else array[..., 0]
    if array.ndim != 2:
        raise InputFileError(path, f"unsupported mask shape {array.shape}")
    binary = _to_unit_float(array, path) >= 0.5
    if shape is not None and binary.shape != tuple(shape):
        raise InputFileError(path, f"size {binary.shape[1]}×{binary.shape[0]} does not match its image ({shape[1]}×{shape[0]})")
    return binary


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: reading it means setting it, which must not race with the writer threads of `segment`.
FILE_MODE = 0o666 & ~_process_umask()


def write_atomic(path: str | os.PathLike, writer) -> Path:
    """Write a file through a temporary name in the same folder, then rename: no half-written outputs.

    ``writer(tmp_path)`` writes the content; the temporary keeps the final suffix so format detection works.
    The file gets the usual permissions (0666 less the umask), not the temporary's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.stem + ".", suffix=path.suffix)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save uint8 / bool / float-in-[0,1] array as PNG, atomically."""
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        array = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(array))
    return write_atomic(path, lambda tmp: image.save(tmp, format="PNG"))


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES
