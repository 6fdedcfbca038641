"""Read any signature scan into one 8-bit grey array (or, asked, its colour), or fail with a
reason that names the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sigid.errors import os_reason

# Suffixes we try to decode (.jfif: Windows' name for JPEG); anything else in a dataset folder is
# skipped as a non-image.
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
)

# A signature scan at 600 dpi of a full A4 page is ~35 Mpx; beyond this we refuse to decode.
MAX_PIXELS = 64_000_000


class ImageLoadError(ValueError):
    """A file that cannot be read as a signature image; the message names the file and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # survives the trip back from a DataLoader or pool worker
        return type(self), (self.path, self.reason)


def is_image_file(path: str | Path) -> bool:
    """Whether a dataset file should be decoded (by suffix; hidden files never are)."""
    path = Path(path)
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def load_image(
    path: str | Path, max_pixels: int = MAX_PIXELS, *, colour: bool = False
) -> np.ndarray:
    """Decode `path` to an HxW uint8 grey array: white paper is 255, ink is dark.

    Palette images go through their palette, transparency is composited on white, 16/32-bit
    images are scaled to 8 bits and EXIF orientation is applied, so that the file's mode and
    format never leak into the pixels. `colour`: a colour file is kept as HxWx3 RGB (its grey,
    `sigid.data.inks.luminance`, is the array read without it); a grey one stays HxW.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ImageLoadError(path, f"cannot open file ({os_reason(err)})") from err
    if not path.is_file():
        raise ImageLoadError(path, "not a regular file")
    if size == 0:
        raise ImageLoadError(path, "empty file (0 bytes)")
    try:
        # Opened here, not by Pillow, so that an unreadable file is not reported as corrupt data.
        handle = path.open("rb")
    except OSError as err:
        raise ImageLoadError(path, f"cannot open file ({os_reason(err)})") from err
    try:
        with handle, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(handle) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageLoadError(
                        path,
                        f"image too large ({width}x{height} = {width * height} pixels, "
                        f"limit {max_pixels}); refusing to decode",
                    )
                img.load()
                upright = ImageOps.exif_transpose(img)
                pixels = _to_rgb(upright) if colour else None
                pixels = _to_grey(upright) if pixels is None else pixels
    except ImageLoadError:
        raise
    except UnidentifiedImageError as err:
        raise ImageLoadError(path, "not an image file that Pillow can identify") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageLoadError(path, f"image too large (decompression bomb): {err}") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageLoadError(path, f"truncated or corrupt image data ({err})") from err
    if pixels.size == 0:
        raise ImageLoadError(path, "image has no pixels")
    return pixels


# Modes `load_image(colour=True)` keeps in colour (a palette image too).
COLOUR_MODES = ("RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA")


def _opaque(img: Image.Image) -> Image.Image:
    """`img` with its palette applied and its transparency composited on white paper."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img


def _to_rgb(img: Image.Image) -> np.ndarray | None:
    """A colour image's RGB pixels (`COLOUR_MODES`, made `_opaque`), or None for another."""
    if img.mode not in COLOUR_MODES:
        return None
    return np.array(_opaque(img).convert("RGB"), dtype=np.uint8)


def _to_grey(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(img, dtype=np.float64)
        # 16-bit data stored as 'I' keeps its 0..65535 range; 8-bit data promoted to 'I' does not.
        scale = 257.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 1.0
        return np.clip(np.rint(values / scale), 0, 255).astype(np.uint8)
    if mode == "F":
        values = np.asarray(img, dtype=np.float64)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    img = _opaque(img)
    if img.mode != "L":
        img = img.convert("RGB").convert("L") if img.mode not in ("1", "RGB") else img.convert("L")
    return np.array(img, dtype=np.uint8)
