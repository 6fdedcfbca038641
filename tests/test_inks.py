"""A second ink colour taken out of a colour scan (``remove_stamps``, sigid.data.inks), colour
reading in load_image, and colour through preprocessing, inference and the robustness
protocol: drawn signatures under drawn stamps, and real CEDAR scans stamped by the acquisition
change."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw
from runs import cedar_subset_data

from sigid.data.acquisition import apply
from sigid.data.images import load_image
from sigid.data.inks import MIN_SHARE, luminance, pen_grey, second_ink
from sigid.data.layouts import Sample
from sigid.data.preprocess import check_preprocessing, ink_mask, prepare, preprocess
from sigid.evaluation.protocols.robustness import robustness, transformed_images
from sigid.evaluation.protocols.writer_dependent import EmbeddedSplit
from sigid.inference.inputs import prepare as prepare_input
from sigid.inference.shipped import SHIPPED_CHECKPOINT

SIZE = (128, 128)
PAGE = (240, 480)  # height, width
PAPER = (255, 255, 255)
CREAM = (242, 232, 200)
BLACK = (30, 30, 30)
BLUE_PEN = (45, 65, 175)
STAMPS = {"violet": (153, 119, 188), "blue": (104, 125, 194), "red": (209, 104, 111)}


def _page(pen: tuple[int, int, int], paper: tuple[int, int, int] = PAPER) -> Image.Image:
    """A drawn signature (a wave and a loop) in `pen` on `paper`."""
    page = Image.new("RGB", (PAGE[1], PAGE[0]), paper)
    draw = ImageDraw.Draw(page)
    xs = np.linspace(60, 420, 300)
    ys = 120 + 40 * np.sin(xs / 13) * np.cos(xs / 41)
    draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=pen, width=4)
    draw.ellipse([120, 80, 170, 160], outline=pen, width=3)
    return page


def _stamp(page: Image.Image, colour: tuple[int, int, int]) -> np.ndarray:
    """`page` with a round stamp in `colour` multiplied over the signature's right half."""
    layer = Image.new("RGB", page.size, (255, 255, 255))
    draw = ImageDraw.Draw(layer)
    for r in (70, 45):
        draw.ellipse([330 - r, 120 - r, 330 + r, 120 + r], outline=colour, width=5)
    draw.line([(290, 120), (370, 120)], fill=colour, width=5)
    marks = np.asarray(layer, dtype=np.float32) / 255.0
    return np.rint(np.asarray(page, dtype=np.float32) * marks).astype(np.uint8)


def _ink(rgb: np.ndarray) -> np.ndarray:
    return ink_mask(luminance(rgb))


@pytest.mark.parametrize("name", list(STAMPS))
def test_a_coloured_stamp_over_a_black_signature_becomes_paper(name):
    clean = np.asarray(_page(BLACK))
    stamped = _stamp(_page(BLACK), STAMPS[name])
    strokes = _ink(clean)
    stamp_only = _ink(stamped) & ~strokes
    grey = pen_grey(stamped, luminance(stamped), _ink(stamped))
    # the stamp's ink away from the strokes is paper again, all but its last anti-aliased edge
    assert stamp_only.sum() > 2000
    assert (grey[stamp_only] >= 250).mean() > 0.98
    # the strokes keep their ink, where the stamp crosses them too (dark over dark)
    assert np.abs(grey[strokes].astype(int) - luminance(clean)[strokes]).mean() < 3
    out = preprocess(stamped, "normalized", SIZE, remove_stamps=True)
    want = preprocess(clean, "normalized", SIZE)
    assert np.abs(out.astype(int) - want).mean() < 0.5
    assert np.abs(preprocess(stamped, "normalized", SIZE).astype(int) - want).mean() > 2


def test_a_blue_pen_under_a_red_stamp_keeps_the_darker_pen():
    stamped = _stamp(_page(BLUE_PEN, CREAM), STAMPS["red"])
    second = second_ink(stamped, _ink(stamped))
    strokes = _ink(np.asarray(_page(BLUE_PEN, CREAM)))
    assert second.sum() > 2000
    # the pen's strokes stay: all of them away from the stamp, nearly all under it
    assert not (second & strokes)[:, :250].any()
    assert (second & strokes).sum() < 0.03 * strokes.sum()


@pytest.mark.parametrize(
    ("pen", "paper"), [(BLACK, PAPER), (BLUE_PEN, CREAM), (STAMPS["red"], PAPER)]
)
def test_one_ink_is_left_as_it_is(pen, paper):
    """A single ink, black or coloured, on white or tinted paper: nothing to take out."""
    rgb = np.asarray(_page(pen, paper))
    assert not second_ink(rgb, _ink(rgb)).any()
    assert (pen_grey(rgb, luminance(rgb), _ink(rgb)) == luminance(rgb)).all()


def test_a_mark_of_another_colour_below_the_minimum_share_is_no_second_ink():
    """A red dot of under MIN_SHARE of the ink beside a black signature (a tick, a colour
    fringe) is not split off as a second ink; a larger one is."""

    def dotted(radius: int) -> np.ndarray:
        page = _page(BLACK)
        ImageDraw.Draw(page).ellipse(
            [440 - radius, 40 - radius, 440 + radius, 40 + radius], fill=STAMPS["red"]
        )
        return np.asarray(page)

    small, large = dotted(3), dotted(14)
    assert _ink(small)[30:50, 430:450].sum() < MIN_SHARE * _ink(small).sum()
    assert not second_ink(small, _ink(small)).any()
    assert second_ink(large, _ink(large))[20:60, 420:460].sum() > 400


def test_a_stamp_of_the_pens_own_colour_stays():
    stamped = _stamp(_page((40, 70, 170)), STAMPS["blue"])
    assert second_ink(stamped, _ink(stamped)).sum() < 50


def test_colour_without_the_option_and_grey_with_it_prepare_as_grey_always_did():
    """An RGB scan without ``remove_stamps`` is its grey (as load_image reads a colour file);
    a grey scan with it is unchanged: the option needs colour to act."""
    stamped = _stamp(_page(BLACK), STAMPS["violet"])
    grey = luminance(stamped)
    assert (preprocess(stamped, "normalized", SIZE) == preprocess(grey, "normalized", SIZE)).all()
    with_option = preprocess(grey, "normalized", SIZE, remove_stamps=True)
    assert (with_option == preprocess(grey, "normalized", SIZE)).all()
    paper_mode = preprocess(stamped, "paper", SIZE)
    assert (paper_mode == preprocess(grey, "paper", SIZE)).all()
    with pytest.raises(ValueError, match="HxWx3 RGB"):
        preprocess(np.zeros((8, 8, 4), np.uint8), "normalized", SIZE)


def test_load_image_reads_colour_when_asked(tmp_path):
    stamped = _stamp(_page(BLACK), STAMPS["red"])
    rgb_file, grey_file, rgba_file = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    Image.fromarray(stamped).save(rgb_file)
    Image.fromarray(luminance(stamped)).save(grey_file)
    rgba = np.dstack([stamped, np.full(stamped.shape[:2], 255, np.uint8)])
    rgba[:10, :10] = (0, 0, 0, 0)  # a transparent black corner reads as white paper
    Image.fromarray(rgba, "RGBA").save(rgba_file)
    colour = load_image(rgb_file, colour=True)
    assert colour.shape == (*PAGE, 3) and (colour == stamped).all()
    assert (load_image(rgb_file) == luminance(colour)).all()
    assert load_image(grey_file, colour=True).ndim == 2
    composited = load_image(rgba_file, colour=True)
    assert (composited[:10, :10] == 255).all()
    assert (luminance(composited) == load_image(rgba_file)).all()


def test_inference_reads_a_file_in_colour_only_for_the_option(tmp_path):
    stamped = _stamp(_page(BLACK), STAMPS["violet"])
    path = tmp_path / "stamped.png"
    Image.fromarray(stamped).save(path)
    plain = check_preprocessing({"mode": "normalized", "size": list(SIZE)})
    option = {**plain, "remove_stamps": True}
    assert (prepare_input(path, option) == preprocess(stamped, "normalized", SIZE,
                                                      remove_stamps=True)).all()  # fmt: skip
    assert (prepare_input(path, plain) == preprocess(luminance(stamped), "normalized",
                                                     SIZE)).all()  # fmt: skip
    assert (prepare_input(stamped, option) == prepare_input(path, option)).all()
    with pytest.raises(ValueError, match=r"HxWx3 uint8 RGB .* got uint8 \(8, 8, 4\)"):
        prepare_input(np.zeros((8, 8, 4), np.uint8), option)


def test_real_cedar_scans_stamped_in_colour_come_back_near_clean(cedar_root):
    """The acquisition change's stamp (middle strength) on CEDAR scans made RGB: with the
    option the prepared scan is near the clean one; without it, far."""
    near, far = [], []
    for name in ("full_org/original_1_1.png", "full_forg/forgeries_17_5.png"):
        grey = load_image(cedar_root / "signatures" / name)
        rgb = np.repeat(grey[..., None], 3, axis=2)
        clean = preprocess(grey, "normalized", SIZE).astype(int)
        for seed in range(3):
            stamped = apply(rgb, "stamp", "middle", seed)
            near.append(
                np.abs(preprocess(stamped, "normalized", SIZE, remove_stamps=True) - clean).mean()
            )
            far.append(np.abs(preprocess(stamped, "normalized", SIZE) - clean).mean())
    assert max(near) < 4 < min(far)


def test_the_robustness_protocol_stamps_in_colour_with_the_option(cedar_subset):
    data = cedar_subset_data(cedar_subset, "data.preprocess.remove_stamps=true")
    result = robustness(
        SHIPPED_CHECKPOINT, data, references=[2], transforms=["stamp"], strengths=["middle"]
    )
    assert result["preprocessing"]["remove_stamps"] is True
    sample = Sample(cedar_subset / "full_org" / "original_1_1.png", "1", True)
    split = EmbeddedSplit([sample], np.zeros((1, 1)), np.zeros((1, 1)))
    images, refused = transformed_images(split, "stamp", "middle", result["preprocessing"], 0)
    grey = load_image(sample.path)
    draw = [0, zlib.crc32(b"original_1_1.png")]
    coloured = apply(np.repeat(grey[..., None], 3, axis=2), "stamp", "middle", draw)
    assert refused == 0
    assert (images[0] == prepare(coloured, result["preprocessing"])).all()
    # a stamp applied to the grey scan is grey: nothing for the option to take out
    greyed = prepare(apply(grey, "stamp", "middle", draw), result["preprocessing"])
    assert np.abs(images[0].astype(int) - greyed).mean() > 3


def test_a_palette_image_with_alpha_is_read_in_colour_as_its_colours(tmp_path):
    """A PA file (palette plus alpha, as TIFF keeps it) holds colours like a P one: read in
    colour it is the palette's RGB, composited on white, and its grey is the plain read's."""
    palette = Image.new("P", (40, 30), 0)
    palette.putpalette([255, 255, 255, 0, 0, 0, *STAMPS["red"]] + [0] * (256 * 3 - 9))
    ImageDraw.Draw(palette).line([(2, 5), (37, 5)], fill=1, width=3)  # black ink
    ImageDraw.Draw(palette).line([(2, 20), (37, 20)], fill=2, width=3)  # a red stamp's line
    alpha = Image.new("L", palette.size, 255)
    alpha.paste(0, (0, 25, 40, 30))  # a transparent strip reads as white paper
    Image.merge("PA", (palette, alpha)).save(tmp_path / "pa.tiff")
    colour = load_image(tmp_path / "pa.tiff", colour=True)
    assert colour.shape == (30, 40, 3)
    assert tuple(colour[20, 20]) == STAMPS["red"] and tuple(colour[5, 20]) == (0, 0, 0)
    assert (colour[25:] == 255).all()
    assert (luminance(colour) == load_image(tmp_path / "pa.tiff")).all()
