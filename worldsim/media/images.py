"""Reading start frames people upload: any common image, any size, checked before any work."""

from __future__ import annotations

import warnings
from collections import deque
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_IMAGES = "PNG, JPEG, WebP or GIF (first frame)"
# Only these decoders ever see an upload: fewer parsers to attack, and none that shells out
# (Pillow's EPS reader runs Ghostscript). Phone photos with a preview (MPO) are read as JPEG.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
MAX_IMAGE_PIXELS = 40_000_000  # larger declared sizes are refused before decoding (bomb guard)
MIN_SIDE = 8

Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


class ImageError(ValueError):
    """An upload that is not a usable start frame; the message says why and what is accepted."""


def load_image(source: str | Path | np.ndarray | Image.Image) -> np.ndarray:
    """A file path, PIL image or array -> RGB uint8 (H, W, 3).

    Transparency is composited on white, palettes, grayscale, 16-bit and CMYK are converted, EXIF
    rotation is applied, and an animated GIF gives its first frame. Anything else, whatever the
    bytes, raises ImageError saying what was wrong and what is accepted.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    try:
        with warnings.catch_warnings():  # PIL warns on big images; we refuse them just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = (
                source if isinstance(source, Image.Image) else Image.open(source, formats=ACCEPTED_FORMATS)
            )
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise ImageError(
                f"Image is {image.width}x{image.height}; at most {MAX_IMAGE_PIXELS:,} pixels are accepted."
            )
        image.seek(0)
        image = ImageOps.exif_transpose(image)
        image.load()
        if min(image.size) < MIN_SIDE:
            raise ImageError(
                f"Image is {image.width}x{image.height}; both sides must be at least {MIN_SIDE} px."
            )
        return _pil_to_rgb(image)
    except ImageError:
        raise
    except (FileNotFoundError, IsADirectoryError):
        raise ImageError(f"No such file: {source}.") from None
    except Image.DecompressionBombError:  # PIL's own guard, at twice our limit
        raise ImageError(f"Image is too large; at most {MAX_IMAGE_PIXELS:,} pixels are accepted.") from None
    except UnidentifiedImageError as error:
        raise ImageError(f"Not a readable image ({error}). Accepted: {ACCEPTED_IMAGES}.") from None
    except Exception as error:  # Pillow's decoders report corrupt data as OSError, SyntaxError,
        # ValueError, struct.error, EOFError, IndexError, ...: all of them mean a damaged file
        raise ImageError(
            f"The image file is damaged or truncated ({_short(error)}). Accepted: {ACCEPTED_IMAGES}."
        ) from None


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: scale to 8 bits
        values = np.asarray(image, dtype=np.float32)
        # A 16-bit file spans 0..65535 however dark the picture; only a 32-bit "I" image handed
        # in as a PIL image has no stated range, and is taken as 8-bit if it fits.
        top = 65535.0 if image.mode != "I" or values.max() > 255 else 255.0
        image = Image.fromarray((values / top * 255).round().astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(f"Expected an image array (H, W, 3) or (H, W, 4); got shape {array.shape}.")
    if array.dtype != np.uint8:
        raise ImageError(f"Expected a uint8 image array; got {array.dtype}.")
    if min(array.shape[:2]) < MIN_SIDE:
        raise ImageError(
            f"Image is {array.shape[1]}x{array.shape[0]}; both sides must be at least {MIN_SIDE} px."
        )
    return _pil_to_rgb(Image.fromarray(array)) if array.shape[2] == 4 else np.ascontiguousarray(array)


CLIP_TYPES = (".gif", ".webp", ".mp4", ".webm", ".mov")
MAX_CLIP_FRAMES = 3000  # read at most this many frames of a clip (a minute at 50 fps)


def load_clip(path: str | Path, keep: int) -> list[np.ndarray]:
    """The last `keep` frames of a short clip (animated GIF/WebP, or MP4/WebM/MOV through ffmpeg)
    as RGB uint8 arrays, oldest first: the context a model starts from."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CLIP_TYPES:
        raise ImageError(f"Clips must be {', '.join(CLIP_TYPES)}; got {path.name!r}.")
    read = _last_pil_frames if suffix in (".gif", ".webp") else _last_video_frames
    frames = read(path, keep)
    if not frames:
        raise ImageError(f"{path.name!r} holds no frames.")
    return frames


def _last_pil_frames(path: Path, keep: int) -> list[np.ndarray]:
    frames = deque([load_image(path)], maxlen=keep)  # size checks; a clear error for a non-image
    with Image.open(path) as image:
        for index in range(1, min(getattr(image, "n_frames", 1), MAX_CLIP_FRAMES)):
            image.seek(index)
            frames.append(_pil_to_rgb(image.convert("RGBA")))
    return list(frames)


def _last_video_frames(path: Path, keep: int) -> list[np.ndarray]:
    import imageio_ffmpeg

    frames: deque[np.ndarray] = deque(maxlen=keep)
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        width, height = next(reader)["size"]
        if width * height > MAX_IMAGE_PIXELS or min(width, height) < MIN_SIDE:
            raise ImageError(f"Clip frames are {width}x{height}; that size is not accepted.")
        for _, raw in zip(range(MAX_CLIP_FRAMES), reader, strict=False):
            frames.append(np.frombuffer(raw, np.uint8).reshape(height, width, 3))
        reader.close()
    except (OSError, RuntimeError, StopIteration, KeyError) as error:
        raise ImageError(f"Cannot read {path.name!r} as a video clip ({error}).") from None
    return list(frames)


def _short(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."
