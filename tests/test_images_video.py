import io

import imageio_ffmpeg
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from worldsim.media.images import MIN_SIDE, ImageError, load_image
from worldsim.media.video import upscale, write_video


def save(image: Image.Image, tmp_path, name, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize(
    "mode, name",
    [
        ("RGB", "a.png"),
        ("RGBA", "a.png"),
        ("L", "a.png"),
        ("P", "a.png"),
        ("I;16", "a.png"),
        ("RGB", "a.jpg"),
        ("CMYK", "a.jpg"),
        ("RGB", "a.webp"),
    ],
)
def test_common_images_load_as_rgb(tmp_path, mode, name):
    image = Image.new(mode, (60, 40))
    path = save(image, tmp_path, name)
    frame = load_image(path)
    assert frame.shape == (40, 60, 3) and frame.dtype == np.uint8


def test_transparent_pixels_become_white(tmp_path):
    frame = load_image(save(Image.new("RGBA", (20, 20), (0, 0, 0, 0)), tmp_path, "t.png"))
    assert (frame == 255).all()


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    path = tmp_path / "a.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert tuple(load_image(path)[0, 0]) == (255, 0, 0)


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90
    path = save(image, tmp_path, "r.jpg", exif=exif)
    assert load_image(path).shape == (40, 20, 3)


def test_bad_uploads_get_clear_messages(tmp_path):
    not_image = tmp_path / "x.png"
    not_image.write_text("hello")
    with pytest.raises(ImageError, match="Not a readable image.*PNG, JPEG"):
        load_image(not_image)
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), (10, 200, 30)).save(buffer, "PNG")
    truncated = tmp_path / "t.png"
    truncated.write_bytes(buffer.getvalue()[:200])
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(truncated)
    with pytest.raises(ImageError, match="at least 8 px"):
        load_image(save(Image.new("RGB", (1, 1)), tmp_path, "tiny.png"))


def test_upscale_reaches_256_and_even_sizes():
    frames = np.zeros((2, 64, 160, 3), np.uint8)
    assert upscale(frames).shape == (2, 256, 640, 3)
    odd = upscale(np.zeros((1, 21, 21, 3), np.uint8))
    assert odd.shape[1] >= 256 and odd.shape[1] % 2 == 0 and odd.shape[2] % 2 == 0


def test_mp4_is_h264_yuv420p_with_every_frame(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.zeros((12, 64, 160, 3), np.uint8)
    for t in range(12):  # a white square moving right
        frames[t, 20:40, 10 * t : 10 * t + 20] = 250
    frames += rng.integers(0, 3, frames.shape, dtype=np.uint8)
    path = write_video(frames, tmp_path / "v.mp4", fps=50)
    reader = imageio_ffmpeg.read_frames(str(path))
    info = next(reader)
    assert info["codec"] == "h264" and info["pix_fmt"].startswith("yuv420p")
    assert info["size"] == (640, 256)
    decoded = list(reader)
    assert len(decoded) == 12
    last = np.frombuffer(decoded[-1], np.uint8).reshape(256, 640, 3)
    assert last[120, 4 * 115, 0] > 200 and last[120, 4 * 5, 0] < 50  # the square moved right
    gif = write_video(frames, tmp_path / "v.gif", fps=50)
    assert Image.open(gif).n_frames == 12


def test_huge_images_are_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 10_000)).save(bomb)  # 100 megapixels in a few kB
    with pytest.raises(ImageError, match="at most 40,000,000 pixels"):
        load_image(bomb)
    big = tmp_path / "big.png"
    Image.new("1", (7_000, 7_000)).save(big)  # over our limit, under PIL's own bomb guard
    with pytest.raises(ImageError, match=r"7000x7000; at most 40,000,000 pixels"):
        load_image(big)


# --- Properties: any bytes give an RGB frame or our ImageError; any small image gives RGB -----

SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"GIF89a", b"\xff\xd8\xff\xe0", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"BM"]
# Which formats can hold which modes (what PIL writes without converting first).
WRITABLE = {
    "1": ["PNG", "GIF"],
    "L": ["PNG", "JPEG", "GIF", "WEBP"],
    "LA": ["PNG"],
    "P": ["PNG", "GIF"],
    "RGB": ["PNG", "JPEG", "GIF", "WEBP"],
    "RGBA": ["PNG", "WEBP"],
    "I;16": ["PNG"],
    "CMYK": ["JPEG"],
}


def random_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "1":
        return Image.fromarray(rng.integers(0, 2, (height, width)).astype(bool))
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    image = Image.frombytes(mode, (width, height), rng.bytes(width * height * Image.getmodebands(mode)))
    if mode == "P":
        image.putpalette(rng.bytes(768))
    return image


sizes = st.integers(MIN_SIDE, 48)


@st.composite
def encoded_images(draw) -> bytes:
    mode = draw(st.sampled_from(sorted(WRITABLE)))
    image = random_image(mode, draw(sizes), draw(sizes), draw(st.integers(0, 2**32 - 1)))
    buffer = io.BytesIO()
    image.save(buffer, draw(st.sampled_from(WRITABLE[mode])))
    return buffer.getvalue()


@st.composite
def damaged(draw, images) -> bytes:
    """A valid file with some bytes overwritten and maybe its tail cut off."""
    data = bytearray(draw(images))
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


any_bytes = st.one_of(
    st.binary(max_size=2000),
    st.builds(
        lambda signature, tail: signature + tail, st.sampled_from(SIGNATURES), st.binary(max_size=2000)
    ),
    damaged(encoded_images()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=any_bytes)
def test_loader_raises_only_its_own_error_on_any_bytes(tmp_path, data):
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    try:
        frame = load_image(path)
    except ImageError:
        return
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_small_image_loads_as_rgb_uint8_of_its_size(tmp_path, data):
    mode = data.draw(st.sampled_from(sorted(WRITABLE)))
    width, height = data.draw(sizes), data.draw(sizes)
    image = random_image(mode, width, height, data.draw(st.integers(0, 2**32 - 1)))
    path = tmp_path / "upload"
    image.save(path, data.draw(st.sampled_from(WRITABLE[mode])))
    for source in (path, image):  # a file and a PIL image handed in
        frame = load_image(source)
        assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
