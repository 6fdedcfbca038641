"""The robustness options of the ``normalized`` preprocessing (remove_lines, crop_main,
ink_contrast) on drawn signatures with what documents add, and their defaults: off, a
checkpoint's settings without the keys prepare CEDAR scans exactly as before (the digests were
taken with the preprocessing of the commit before the options)."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from PIL import Image, ImageDraw
from runs import SMALL, cedar_subset_data

import sigid
from sigid.data.acquisition import apply
from sigid.data.cache import preprocess_samples
from sigid.data.images import load_image
from sigid.data.layouts import Sample
from sigid.data.preprocess import (
    OPTIONS,
    check_preprocessing,
    ink_mask,
    line_mask,
    prepare,
    preprocess,
    without_lines,
)
from sigid.evaluation.protocols.robustness import robustness, transformed_images
from sigid.evaluation.protocols.writer_dependent import EmbeddedSplit
from sigid.evaluation.testing import evaluation_datamodule, preprocess_options
from sigid.inference.shipped import SHIPPED_CHECKPOINT
from sigid.inference.verifier import Verifier
from sigid.tasks.build import build_datamodule, build_module, task_class
from sigid.tasks.schema import check_config

SIZE = (128, 128)
# sha256 (first 16 hex digits) of preprocess(scan, "normalized", size) before the options
BEFORE = {
    ("full_org/original_1_1.png", (128, 128)): "62abd5afa7981aa5",
    ("full_org/original_1_1.png", (150, 220)): "f105fa4d9bb59798",
    ("full_org/original_17_5.png", (128, 128)): "36869530a4f7778d",
    ("full_org/original_17_5.png", (150, 220)): "50067d45d228c2b5",
    ("full_forg/forgeries_33_2.png", (128, 128)): "0711e7787008c7b3",
    ("full_forg/forgeries_33_2.png", (150, 220)): "01117cde9bbb3c3b",
    ("full_org/original_55_24.png", (128, 128)): "45fce84132c5e300",
    ("full_org/original_55_24.png", (150, 220)): "15063cb71770a593",
    ("full_forg/forgeries_8_11.png", (128, 128)): "49cacef9d3a269af",
    ("full_forg/forgeries_8_11.png", (150, 220)): "683343588e0ca270",
}
PAGE = (300, 600)  # height, width of the drawn page
SIGNATURE = (90, 120, 510, 200)  # left, top, right, bottom of the drawn strokes


def _signature(darkness: float = 1.0) -> Image.Image:
    """A drawn cursive-like signature (loops and a flourish) of ink `darkness` on white."""
    page = Image.new("L", (PAGE[1], PAGE[0]), 255)
    draw = ImageDraw.Draw(page)
    left, top, right, bottom = SIGNATURE
    ink = round(255 * (1 - 0.9 * darkness))
    xs = np.linspace(left, right, 400)
    ys = (top + bottom) / 2 + (bottom - top) / 2 * np.sin(xs / 11) * np.cos(xs / 37)
    draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=ink, width=4)
    draw.ellipse([150, 130, 190, 190], outline=ink, width=3)
    return page


def _grey(page: Image.Image) -> np.ndarray:
    return np.asarray(page, dtype=np.uint8).copy()


def _with(paint) -> np.ndarray:
    page = _signature()
    paint(ImageDraw.Draw(page))
    return _grey(page)


def _ink_box(image: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(image.max(axis=1) > 40), np.flatnonzero(image.max(axis=0) > 40)
    return np.array([rows[0], rows[-1], cols[0], cols[-1]])


def _ruled(draw: ImageDraw.ImageDraw, slant_deg: float = 0.0) -> None:
    rise = math.tan(math.radians(slant_deg)) * PAGE[1]
    for row in (140, 185):
        draw.line([(0, row), (PAGE[1], row + rise)], fill=50, width=2)


def _boxed(draw: ImageDraw.ImageDraw) -> None:
    draw.rectangle([60, 95, 540, 225], outline=40, width=2)


def _stamped(draw: ImageDraw.ImageDraw) -> None:
    draw.ellipse([560, 20, 580, 40], fill=60)  # a blot far from the signature


def _speckled(draw: ImageDraw.ImageDraw) -> None:
    rng = np.random.default_rng(3)
    for y, x in zip(rng.integers(0, PAGE[0], 300), rng.integers(0, PAGE[1], 300), strict=True):
        draw.rectangle([int(x), int(y), int(x) + 1, int(y) + 1], fill=0)


CASES = {
    "ruling": (_ruled, "remove_lines"),
    "slanted ruling": (lambda d: _ruled(d, 2.0), "remove_lines"),
    "box": (_boxed, "remove_lines"),
    "stamp blob": (_stamped, "crop_main"),
    "speckles": (_speckled, "crop_main"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_option_crops_to_the_signature_and_off_does_not(case):
    """With its option on, a marked page is cropped as the clean signature is (within a few
    pixels of the 128x128 output) and looks like it; with the option off, it does not."""
    paint, option = CASES[case]
    clean, marked = _grey(_signature()), _with(paint)
    want = preprocess(clean, "normalized", SIZE, **{option: True})
    got = preprocess(marked, "normalized", SIZE, **{option: True})
    off = preprocess(marked, "normalized", SIZE)
    assert np.abs(_ink_box(got) - _ink_box(want)).max() <= 3
    assert np.abs(got.astype(int) - want).mean() < 3
    assert np.abs(off.astype(int) - want).mean() > 2 * np.abs(got.astype(int) - want).mean()


@pytest.mark.parametrize("slant", [0.0, 2.0])
def test_line_pixels_leave_the_ink_and_the_strokes_stay(slant):
    marked = _with(lambda d: _ruled(d, slant))
    mask, lines = ink_mask(marked), line_mask(ink_mask(marked))
    # the lines' stretches away from the signature are gone, all of them
    outside = np.zeros_like(mask)
    outside[:, : SIGNATURE[0] - 10] = outside[:, SIGNATURE[2] + 10 :] = True
    assert mask[outside].sum() > 300
    assert not (mask & ~lines)[outside].any()
    # the strokes are kept, but where a line crosses them
    strokes = ink_mask(_grey(_signature()))
    ys, xs = np.mgrid[: PAGE[0], : PAGE[1]]
    away = np.ones_like(mask)
    for row in (140, 185):
        away &= np.abs(ys - row - xs * math.tan(math.radians(slant))) > 9
    assert (strokes & away).sum() > 0.45 * strokes.sum()
    assert not (strokes & away & lines).any()


@pytest.mark.parametrize("transpose", [False, True])
def test_strokes_crossing_a_line_keep_their_ink_across_it(transpose):
    """remove_lines on a 2-pixel printed line crossed by a stroke at 90 and one at 70 degrees
    (a ruling line; transposed, a box's side): the line leaves the ink away from the strokes,
    and each stroke's ink runs unbroken across it, no wider than the stroke."""
    page = Image.new("L", (PAGE[1], PAGE[0]), 255)
    draw = ImageDraw.Draw(page)
    draw.line([(0, 150), (PAGE[1], 150)], fill=60, width=2)
    draw.line([(200, 110), (200, 190)], fill=30, width=3)
    draw.line([(300, 110), (330, 190)], fill=30, width=3)
    draw.ellipse([420, 60, 470, 240], outline=30, width=3)  # the ink's height: strokes, no lines
    grey = _grey(page)
    grey = grey.T.copy() if transpose else grey
    mask = ink_mask(grey)
    kept = without_lines(mask)
    kept = kept.T if transpose else kept
    for away in (slice(0, 180), slice(360, 410), slice(480, PAGE[1])):
        assert not kept[140:160, away].any()
    for row in range(112, 189):  # both strokes, every row through the line
        straight = kept[row, 195:206]
        slanted_x = 300 + (row - 110) * 30 / 80
        slanted = kept[row, round(slanted_x) - 6 : round(slanted_x) + 7]
        assert straight.any() and slanted.any(), row
        assert straight.sum() <= 6 and slanted.sum() <= 8, row


def test_a_clean_signature_keeps_its_ink():
    grey = _grey(_signature())
    assert not line_mask(ink_mask(grey)).any()
    for option in OPTIONS:
        diff = np.abs(preprocess(grey, "normalized", SIZE, **{option: True}).astype(int))
        diff -= preprocess(grey, "normalized", SIZE)
        assert np.abs(diff).mean() < 3, option


def test_crop_main_keeps_every_part_when_none_holds_a_major_share():
    """Eight equal blots apart (a signature of separate letters): no part holds MAJOR_MASS of
    the ink, and all of it stays (this raised a ValueError once)."""
    page = Image.new("L", (PAGE[1], PAGE[0]), 255)
    draw = ImageDraw.Draw(page)
    for k in range(8):
        draw.rectangle([40 + 65 * k, 120 + 7 * k, 60 + 65 * k, 140 + 7 * k], fill=30)
    grey = _grey(page)
    kept = preprocess(grey, "normalized", SIZE, crop_main=True)
    assert (kept == preprocess(grey, "normalized", SIZE)).all()


def test_ink_contrast_brings_a_faint_pen_to_the_dark_one():
    dark, faint = _grey(_signature(1.0)), _grey(_signature(0.35))
    on = [preprocess(g, "normalized", SIZE, ink_contrast=True).astype(int) for g in (dark, faint)]
    off = [preprocess(g, "normalized", SIZE).astype(int) for g in (dark, faint)]
    assert np.abs(off[0] - off[1]).mean() > 4 * np.abs(on[0] - on[1]).mean()
    assert abs(on[0].max() - on[1].max()) < 20


def test_off_prepares_cedar_scans_exactly_as_before(cedar_root):
    """No option, or settings without the keys (every checkpoint made before them): the bytes
    the preprocessing made before the options existed."""
    for (name, size), digest in BEFORE.items():
        grey = load_image(cedar_root / "signatures" / name)
        settings = {"mode": "normalized", "size": list(size)}
        for image in (
            preprocess(grey, "normalized", size),
            prepare(grey, settings),
            prepare(grey, {**settings, **dict.fromkeys(OPTIONS, False)}),
        ):
            assert hashlib.sha256(image.tobytes()).hexdigest()[:16] == digest, name


def test_settings_keep_only_the_options_set_and_refuse_bad_ones():
    plain = {"mode": "normalized", "size": [8, 8]}
    assert check_preprocessing(plain) == plain
    assert check_preprocessing({**plain, "remove_lines": False}) == plain
    assert check_preprocessing({**plain, "ink_contrast": True}) == {**plain, "ink_contrast": True}
    with pytest.raises(ValueError, match="crop_main='yes' is not true or false"):
        check_preprocessing({**plain, "crop_main": "yes"})
    with pytest.raises(ValueError, match=r"need.* mode normalized"):
        check_preprocessing({"mode": "paper", "size": [8, 8], "remove_lines": True})


def test_the_cache_keeps_optioned_images_apart(cedar_root, tmp_path):
    samples = [
        Sample(cedar_root / "signatures" / name, "w", True)
        for name in ("full_org/original_1_1.png", "full_org/original_17_5.png")
    ]
    plain, _, _ = preprocess_samples(samples, "normalized", SIZE, tmp_path)
    again, _, _ = preprocess_samples(samples, "normalized", SIZE, tmp_path)
    options = {"ink_contrast": True}
    stretched, _, _ = preprocess_samples(samples, "normalized", SIZE, tmp_path, options=options)
    assert len(list((tmp_path / "preprocessed").iterdir())) == 2
    assert (again == plain).all()
    for image, sample in zip(stretched, samples, strict=True):
        assert (image == preprocess(load_image(sample.path), "normalized", SIZE, **options)).all()
    assert not (stretched == plain).all()


def test_evaluation_adds_an_option_to_a_checkpoint_without_the_keys(cedar_root):
    """The shipped verifier predates the options: it prepares as before, and evaluation data
    overrides add an option on top of its settings; mode and size stay its own."""
    verifier = Verifier.from_checkpoint(SHIPPED_CHECKPOINT)
    assert verifier.preprocessing == {"mode": "normalized", "size": [128, 128]}
    data = ["data=cedar", f"data.root={cedar_root}", "data.split.fold=0"]
    plain = evaluation_datamodule(verifier.module, data)
    assert plain.preprocess == verifier.preprocessing
    added = evaluation_datamodule(
        verifier.module,
        [*data, "data.preprocess.remove_lines=true", "data.preprocess.crop_main=false"],
    )
    assert added.preprocess == {**verifier.preprocessing, "remove_lines": True}
    # mode and size give way to the checkpoint's, as they always did
    resized = evaluation_datamodule(verifier.module, [*data, "data.preprocess.size=[64,64]"])
    assert resized.preprocess == verifier.preprocessing
    with pytest.raises(ValueError, match="ink_contrast is true or false, not 'maybe'"):
        preprocess_options(["data.preprocess.ink_contrast=maybe"])


def test_the_robustness_protocol_prepares_with_the_added_option(cedar_subset):
    """`sigid evaluate --protocol robustness ... data.preprocess.remove_lines=true`: the shipped
    verifier's clean and changed scans are prepared with the option, and the result says so."""
    data = cedar_subset_data(cedar_subset, "data.preprocess.remove_lines=true")
    result = robustness(
        SHIPPED_CHECKPOINT, data, references=[2], transforms=["box"], strengths=["middle"]
    )
    assert result["preprocessing"] == {
        "mode": "normalized",
        "size": [128, 128],
        "remove_lines": True,
    }
    sample = Sample(cedar_subset / "full_org" / "original_1_1.png", "1", True)
    split = EmbeddedSplit([sample], np.zeros((1, 1)), np.zeros((1, 1)))
    images, refused = transformed_images(split, "box", "middle", result["preprocessing"], 0)
    changed = apply(load_image(sample.path), "box", "middle", [0, zlib.crc32(b"original_1_1.png")])
    assert refused == 0
    assert (images[0] == preprocess(changed, "normalized", SIZE, remove_lines=True)).all()
    assert not (images[0] == preprocess(changed, "normalized", SIZE)).all()


def test_a_run_stores_the_options_it_was_trained_with(tmp_path):
    """``sigid-train ... data.preprocess.ink_contrast=true``: the module (so its checkpoint)
    keeps the option, and the schema refuses a value that is not a boolean."""
    with initialize_config_module("sigid.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*SMALL, "data.preprocess.ink_contrast=true", f"data.cache_dir={tmp_path}"],
        )
        bad = compose("train", overrides=[*SMALL, "data.preprocess.crop_main=3"])
    check_config(cfg, task_class(cfg))
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    assert module.hparams.preprocessing == {
        "mode": "normalized",
        "size": [32, 64],
        "ink_contrast": True,
    }
    with pytest.raises(ValueError, match=r"data\.preprocess\.crop_main=3"):
        check_config(bad, task_class(bad))


CACHED = """
import sys
import numpy as np
import sigid
from sigid.data.cache import preprocess_samples
from sigid.data.layouts import Sample
assert sigid.__file__.startswith(sys.argv[1]), sigid.__file__
samples = [Sample(__import__("pathlib").Path(p), "w", True) for p in sys.argv[3:]]
images, _, _ = preprocess_samples(samples, "normalized", (64, 96), sys.argv[2])
np.save(sys.argv[2] + "/out.npy", images)
"""


def test_the_cache_is_not_read_by_code_that_prepares_otherwise(cedar_root, tmp_path):
    """An entry made by one preprocessing code is not read by another that prepares otherwise
    (an edited constant, with PREPROCESS_VERSION as it was), and is read by the same code
    installed elsewhere. Each copy of sigid runs in its own process, as an upgrade would."""
    paths = [str(cedar_root / "signatures" / "full_org" / f"original_{w}_1.png") for w in (3, 9)]
    cache = tmp_path / "cache"
    made, _, _ = preprocess_samples(
        [Sample(Path(p), "w", True) for p in paths], "normalized", (64, 96), cache
    )
    package = Path(sigid.__file__).parent

    def run_copy(name: str, edit: tuple[str, str] | None) -> np.ndarray:
        root = tmp_path / name
        shutil.copytree(package, root / "sigid", ignore=shutil.ignore_patterns("__pycache__"))
        if edit is not None:
            source = root / "sigid" / "data" / "preprocess.py"
            text = source.read_text()
            assert text.count(edit[0]) == 1
            source.write_text(text.replace(*edit))
        env = {**os.environ, "PYTHONPATH": str(root)}
        done = subprocess.run(
            [sys.executable, "-c", CACHED, str(root), str(cache), *paths],
            env=env, cwd=root, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return np.load(cache / "out.npy")

    assert (run_copy("same", None) == made).all()
    assert len(list((cache / "preprocessed").iterdir())) == 1
    wider = run_copy("edited", ("CANVAS_MARGIN = 0.04", "CANVAS_MARGIN = 0.2"))
    assert len(list((cache / "preprocessed").iterdir())) == 2
    assert not (wider == made).all()
