"""Open the user's image and convert it to the RGB a model expects, refusing what is not an image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import sample_format as fmt
from .errors import UserError

# Formats a browser shows; others are stored as PNG in the sample.
BROWSER_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp"}


def open_image(image: Path | Image.Image) -> tuple[Image.Image, str]:
    """A file through load_image; an image in memory as RGB, with no file format (so it is stored as PNG)."""
    if isinstance(image, Image.Image):
        return to_rgb(image), ""
    return load_image(image)


def load_image(path: Path) -> tuple[Image.Image, str]:
    """The image as RGB, and the file format it came in (e.g. "JPEG")."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--image {path} is a folder; pass one image file")
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now, so a truncated file fails here and not inside the model
            file_format = opened.format or "PNG"
            image = ImageOps.exif_transpose(opened)
    except UnidentifiedImageError:
        raise UserError(f"{path} is not an image PIL can read") from None
    except Image.DecompressionBombError as err:  # a header that declares far more pixels than any photo
        raise UserError(f"{path} is too large to open safely: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise UserError(f"{path} is damaged or truncated: {err}") from None
    return to_rgb(image), file_format


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB as a viewer would show it: transparency over white, 16-bit and float scaled to 8 bits."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = _to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
    if image.mode == "F":
        top = max(float(values.max()), 1e-12) if values.max() > 1 else 1.0
    return Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")


def copy_image(
    writer: fmt.SampleWriter, source: Path | Image.Image, image: Image.Image, file_format: str, index: int = 0
) -> str:
    """Into the sample: the file as given when a browser can show it; otherwise the converted image as PNG.
    The first image is image.EXT, the next ones image_1.EXT, image_2.EXT, ..."""
    stem = "image" if index == 0 else f"image_{index}"
    if isinstance(source, Path) and file_format in BROWSER_FORMATS:
        name = stem + BROWSER_FORMATS[file_format]
        writer.copy_file(source, name)
    else:
        name = stem + ".png"
        image.save(writer.tmp / name)
    return name
