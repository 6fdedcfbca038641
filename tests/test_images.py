"""sigid.data.images: any scan -> one HxW uint8 grey array, or an ImageLoadError naming the file."""

from __future__ import annotations

import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from sigid.data.images import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    ImageLoadError,
    is_image_file,
    load_image,
)
from sigid.data.preprocess import background_level, ink_mask


def _grey(path: Path, **kwargs) -> np.ndarray:
    """load_image, plus the contract every successful load must meet."""
    out = load_image(path, **kwargs)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.uint8
    assert out.ndim == 2
    return out


def _mode(path: Path) -> str:
    with Image.open(path) as img:
        return img.mode


def _blocks() -> np.ndarray:
    """A 32x48 grey test card: black, white and mid-grey 16x16 blocks (JPEG-friendly)."""
    card = np.full((32, 48), 255, dtype=np.uint8)
    card[:16, :16] = 0
    card[16:, 16:32] = 128
    card[:16, 32:] = 60
    return card


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A 1-bit PNG whose IHDR claims width x height but holds a few bytes of pixel data.

    Costs ~100 bytes on disk and nothing in memory unless someone tries to decode it.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return path


# ---------------------------------------------------------------------------------------------
# Modes


def test_mode_1_reads_black_as_0_and_white_as_255(tmp_path):
    bits = np.zeros((8, 10), dtype=bool)
    bits[:, 5:] = True
    Image.fromarray(bits).convert("1").save(tmp_path / "bw.png")
    assert _mode(tmp_path / "bw.png") == "1"
    out = _grey(tmp_path / "bw.png")
    assert out.shape == (8, 10)
    assert (out[:, :5] == 0).all()
    assert (out[:, 5:] == 255).all()


def test_mode_l_values_are_kept_exactly(tmp_path):
    card = _blocks()
    Image.fromarray(card).save(tmp_path / "l.png")
    np.testing.assert_array_equal(_grey(tmp_path / "l.png"), card)


def test_palette_png_goes_through_the_palette_not_the_indices(tmp_path):
    """Index order deliberately disagrees with grey order: 0 = white, 1 = black, 2 = grey, 3 = red.

    Reading indices as intensities would give 0 for paper and 1 for ink.
    """
    indices = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], dtype=np.uint8)
    img = Image.new("P", (4, 2))
    img.putdata(indices.ravel().tolist())
    img.putpalette([255, 255, 255, 0, 0, 0, 128, 128, 128, 255, 0, 0])
    img.save(tmp_path / "p.png")
    assert _mode(tmp_path / "p.png") == "P"
    out = _grey(tmp_path / "p.png")
    red = round(0.299 * 255)  # ITU-R 601-2 luma of pure red
    np.testing.assert_array_equal(out, [[255, 0, 128, red], [red, 128, 0, 255]])


def test_palette_transparent_index_reads_as_white_paper(tmp_path):
    img = Image.new("P", (3, 1))
    img.putdata([0, 1, 2])
    img.putpalette([0, 0, 0, 0, 0, 0, 90, 90, 90])
    img.save(tmp_path / "pt.png", transparency=1)  # index 1 is black but fully transparent
    out = _grey(tmp_path / "pt.png")
    np.testing.assert_array_equal(out, [[0, 255, 90]])


def test_rgb_is_converted_with_luma_weights(tmp_path):
    rgb = np.array(
        [[[0, 0, 0], [255, 255, 255], [100, 100, 100], [255, 0, 0], [0, 255, 0], [0, 0, 255]]],
        dtype=np.uint8,
    )
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    out = _grey(tmp_path / "rgb.png")
    expected = [0, 255, 100, round(0.299 * 255), round(0.587 * 255), round(0.114 * 255)]
    np.testing.assert_allclose(out[0], expected, atol=1)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_on_white(tmp_path, mode):
    """Black ink with alpha 0 / 128 / 255: invisible (255), half-tone (~128), black (0)."""
    alpha = np.array([[0, 128, 255]], dtype=np.uint8)
    black = np.zeros_like(alpha)
    if mode == "RGBA":
        pixels = np.dstack([black, black, black, alpha])
    else:
        pixels = np.dstack([black, alpha])
    Image.fromarray(pixels, mode=mode).save(tmp_path / "a.png")
    assert _mode(tmp_path / "a.png") == mode
    out = _grey(tmp_path / "a.png")
    assert out[0, 0] == 255
    assert abs(int(out[0, 1]) - 127) <= 2
    assert out[0, 2] == 0


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path):
    values = np.array([[0, 65535, 32768, 257 * 100, 200]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "16.png")
    assert _mode(tmp_path / "16.png").startswith("I;16")
    out = _grey(tmp_path / "16.png")
    np.testing.assert_array_equal(out, [[0, 255, 128, 100, 1]])


def test_32_bit_integer_tiff_with_16_bit_range_is_scaled(tmp_path):
    values = np.array([[0, 65535, 257 * 50]], dtype=np.int32)
    Image.fromarray(values).save(tmp_path / "i.tif")
    assert _mode(tmp_path / "i.tif") == "I"
    np.testing.assert_array_equal(_grey(tmp_path / "i.tif"), [[0, 255, 50]])


def test_cmyk_jpeg_reads_black_ink_dark_and_paper_white(tmp_path):
    img = Image.new("CMYK", (32, 16), (0, 0, 0, 0))
    img.paste((0, 0, 0, 255), (0, 0, 16, 16))  # pure K = black ink on the left half
    img.save(tmp_path / "cmyk.jpg", quality=95)
    assert _mode(tmp_path / "cmyk.jpg") == "CMYK"
    out = _grey(tmp_path / "cmyk.jpg")
    assert out.shape == (16, 32)
    assert out[2:14, 2:14].mean() < 30
    assert out[2:14, 18:30].mean() > 225


@pytest.mark.parametrize(("orientation", "quarter_turns"), [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_is_applied(tmp_path, orientation, quarter_turns):
    """Orientation 6 = turn 90° clockwise to display, 8 = 90° anticlockwise, 3 = 180°."""
    card = np.full((32, 64), 255, dtype=np.uint8)
    card[:16, :16] = 0  # ink in the stored top-left corner only
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(card).save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    with Image.open(tmp_path / "o.jpg") as raw:
        stored = np.asarray(raw.convert("L"))
    out = _grey(tmp_path / "o.jpg")
    np.testing.assert_array_equal(out, np.rot90(stored, k=quarter_turns))
    if orientation != 3:
        assert out.shape == (64, 32)


FORMATS = [
    ("png", {}, 0),
    ("tif", {}, 0),
    ("bmp", {}, 0),
    ("gif", {}, 0),
    ("jpg", {"quality": 95}, 3),
    pytest.param(
        "webp",
        {"lossless": True},
        0,
        marks=pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP"),
    ),
]


@pytest.mark.parametrize(("suffix", "options", "tolerance"), FORMATS)
def test_every_format_gives_the_same_grey_pixels(tmp_path, suffix, options, tolerance):
    card = _blocks()
    path = tmp_path / f"card.{suffix}"
    Image.fromarray(card).save(path, **options)
    out = _grey(path)
    assert out.shape == card.shape
    assert np.abs(out.astype(int) - card).mean() <= tolerance
    assert np.abs(out.astype(int) - card).max() <= 10 * tolerance


def test_rgb_tiff_and_rgb_jpeg_match_the_grey_card(tmp_path):
    card = _blocks()
    rgb = Image.fromarray(card).convert("RGB")
    rgb.save(tmp_path / "c.tif")
    rgb.save(tmp_path / "c.jpg", quality=95)
    np.testing.assert_array_equal(_grey(tmp_path / "c.tif"), card)
    assert np.abs(_grey(tmp_path / "c.jpg").astype(int) - card).mean() <= 3


def test_one_pixel_image_loads(tmp_path):
    Image.new("L", (1, 1), 77).save(tmp_path / "dot.png")
    np.testing.assert_array_equal(_grey(tmp_path / "dot.png"), [[77]])


def test_blank_page_loads_as_uniform_paper(tmp_path):
    Image.new("RGB", (300, 200), (250, 250, 250)).save(tmp_path / "blank.png")
    out = _grey(tmp_path / "blank.png")
    assert out.shape == (200, 300)
    assert (out == 250).all()


def test_string_paths_are_accepted(tmp_path):
    Image.new("L", (3, 2), 10).save(tmp_path / "s.png")
    assert _grey(str(tmp_path / "s.png")).shape == (2, 3)


def test_image_at_the_pixel_limit_loads(tmp_path):
    Image.new("L", (10, 10), 0).save(tmp_path / "ten.png")
    assert _grey(tmp_path / "ten.png", max_pixels=100).shape == (10, 10)


# ---------------------------------------------------------------------------------------------
# Bad input: each builder writes (or deliberately does not write) one file and returns its path.


def _zero_byte(tmp: Path) -> Path:
    path = tmp / "zero_byte.png"
    path.touch()
    return path


def _truncated_png(tmp: Path) -> Path:
    rng = np.random.default_rng(0)
    full = tmp / "whole.png"
    Image.fromarray(rng.integers(0, 256, (120, 160), dtype=np.uint8)).save(full)
    data = full.read_bytes()
    path = tmp / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_jpeg(tmp: Path) -> Path:
    rng = np.random.default_rng(1)
    full = tmp / "whole.jpg"
    Image.fromarray(rng.integers(0, 256, (120, 160), dtype=np.uint8)).save(full)
    data = full.read_bytes()
    path = tmp / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_tiff(tmp: Path) -> Path:
    rng = np.random.default_rng(2)
    full = tmp / "whole.tif"
    Image.fromarray(rng.integers(0, 256, (120, 160), dtype=np.uint8)).save(full)
    data = full.read_bytes()
    path = tmp / "truncated.tif"
    path.write_bytes(data[: len(data) // 2])
    return path


def _header_only_png(tmp: Path) -> Path:
    path = tmp / "header_only.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    return path


def _bad_crc_png(tmp: Path) -> Path:
    full = tmp / "ok.png"
    Image.new("L", (8, 8), 200).save(full)
    data = bytearray(full.read_bytes())
    data[29] ^= 0xFF  # last byte of the IHDR CRC
    path = tmp / "bad_crc.png"
    path.write_bytes(bytes(data))
    return path


def _text_named_png(tmp: Path) -> Path:
    path = tmp / "notes.png"
    path.write_text("this is a README, not a scan\n" * 20)
    return path


def _html_named_jpg(tmp: Path) -> Path:
    path = tmp / "page.jpg"
    path.write_text("<html><body>404 Not Found</body></html>")
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "missing.png"


def _directory(tmp: Path) -> Path:
    path = tmp / "folder.png"
    path.mkdir()
    return path


def _huge_header(tmp: Path) -> Path:
    # 10^10 pixels: beyond Pillow's own decompression-bomb limit.
    return _png_header_only(tmp / "bomb_huge.png", 100_000, 100_000)


def _pillow_warning_range(tmp: Path) -> Path:
    # 10^8 pixels: between Pillow's warning (~89 Mpx) and error (~179 Mpx) limits.
    return _png_header_only(tmp / "bomb_warning.png", 10_000, 10_000)


def _over_our_limit(tmp: Path) -> Path:
    # 81 Mpx: under Pillow's limits, over MAX_PIXELS (64 Mpx), so only our own check stops it.
    assert MAX_PIXELS < 9_000 * 9_000
    return _png_header_only(tmp / "bomb_ours.png", 9_000, 9_000)


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zero_byte": (_zero_byte, "empty"),
    "truncated_png": (_truncated_png, "truncated"),
    "truncated_jpeg": (_truncated_jpeg, "truncated"),
    "truncated_tiff": (_truncated_tiff, "truncated"),
    "png_signature_only": (_header_only_png, ""),
    "png_bad_crc": (_bad_crc_png, ""),
    "text_named_png": (_text_named_png, "not an image"),
    "html_named_jpg": (_html_named_jpg, "not an image"),
    "missing": (_missing, "cannot open"),
    "directory": (_directory, "not a regular file"),
    "huge_dimensions": (_huge_header, "too large"),
    "dimensions_in_pillow_warning_range": (_pillow_warning_range, "too large"),
    "dimensions_over_max_pixels": (_over_our_limit, "too large"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_raise_image_load_error_naming_file_and_reason(tmp_path, name):
    build, reason = BAD_FILES[name]
    path = build(tmp_path)
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    err = caught.value
    assert isinstance(err, ValueError)
    assert path.name in str(err)
    assert err.path == path
    assert err.reason and err.reason in str(err)
    assert reason.lower() in str(err).lower()


def test_small_max_pixels_refuses_a_normal_image(tmp_path):
    Image.new("L", (20, 10), 255).save(tmp_path / "small.png")
    with pytest.raises(ImageLoadError, match=r"small\.png.*too large"):
        load_image(tmp_path / "small.png", max_pixels=199)


def test_oversized_file_is_refused_before_decoding(tmp_path):
    """A 1-bit 20000x20000 PNG is a few KB on disk but 400 MB once decoded: never decode it."""
    path = _png_header_only(tmp_path / "wide.png", 20_000, 20_000)
    assert path.stat().st_size < 1_000
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(path)


# ---------------------------------------------------------------------------------------------
# is_image_file


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.png", True),
        ("a.PNG", True),
        ("scan.JPeg", True),
        ("x.tif", True),
        ("x.tiff", True),
        ("x.bmp", True),
        ("Readme.txt", False),
        ("noext", False),
        (".hidden.png", False),
        ("._mac_resource_fork.png", False),
        ("Thumbs.db", False),
    ],
)
def test_is_image_file_goes_by_suffix_and_skips_hidden_files(name, expected):
    assert is_image_file(name) is expected
    assert is_image_file(Path("some/folder") / name) is expected


def test_jfif_and_jpe_files_are_read_as_jpeg(tmp_path):
    """Windows saves JPEGs as .jfif: skipping them as "not an image" lost a writer's scans."""
    for name in ("scan.jfif", "scan.JPE"):
        Image.fromarray(_blocks()).save(tmp_path / name, format="JPEG", quality=95)
        assert is_image_file(tmp_path / name)
        assert np.abs(_grey(tmp_path / name).astype(int) - _blocks()).max() < 16


def test_image_suffixes_are_lower_case_with_dot():
    assert {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"} <= IMAGE_SUFFIXES
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)


# ---------------------------------------------------------------------------------------------
# Real CEDAR files: palette forgeries and grey genuine scans must read alike.


def test_cedar_palette_forgeries_and_grey_genuines_load_to_similar_ranges(cedar_root):
    """Writer 1: 24 genuine scans are mode L, 24 forgeries are mode P (palette).

    Both must come out as light paper (background level 230..255) with clearly darker ink; had
    the palette indices been read as intensities, the forgeries' paper would be near 0.
    """
    signatures = cedar_root / "signatures"
    stats: dict[str, list[tuple[int, float]]] = {}
    for kind, pattern, mode in [
        ("genuine", "full_org/original_1_*.png", "L"),
        ("forged", "full_forg/forgeries_1_*.png", "P"),
    ]:
        paths = sorted(signatures.glob(pattern))
        assert len(paths) == 24
        stats[kind] = []
        for path in paths:
            with Image.open(path) as img:
                assert img.mode == mode, path
            grey = _grey(path)
            paper = background_level(grey)
            ink = float(grey[ink_mask(grey)].mean())
            assert 230 <= paper <= 255, (path, paper)
            assert ink < paper - 30, (path, ink, paper)
            assert np.percentile(grey, 1) < 215, path
            stats[kind].append((paper, ink))
    genuine = np.array(stats["genuine"], dtype=float).mean(axis=0)
    forged = np.array(stats["forged"], dtype=float).mean(axis=0)
    assert abs(genuine[0] - forged[0]) < 20  # paper levels
    assert abs(genuine[1] - forged[1]) < 30  # ink levels


def test_loader_is_exported_from_sigid_data():
    import sigid.data

    assert sigid.data.load_image is load_image
    assert sigid.data.ImageLoadError is ImageLoadError


def test_image_load_error_survives_pickling_between_processes(tmp_path):
    err = pickle.loads(pickle.dumps(ImageLoadError(tmp_path / "x.png", "empty file (0 bytes)")))
    assert isinstance(err, ImageLoadError)
    assert err.path == tmp_path / "x.png" and str(err).endswith("x.png: empty file (0 bytes)")
