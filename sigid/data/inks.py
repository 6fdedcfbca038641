"""Colour scans to grey, with a second ink colour (a stamp, a coloured form's print) taken out.

A pen's strokes and a rubber stamp over them are hard to tell apart in grey: the stamp's rings
are strokes as dark as the pen's. In colour they differ in hue. `pen_grey` measures each ink
pixel's colour as optical density relative to the page's own paper (so a tinted paper is no
colour of its own), splits the ink into two colour groups, and when they are clearly apart
keeps the pen's and turns the other into paper. The pen is the neutral group (black or grey
ink, pencil) when one group is neutral; otherwise the darker one (a blue ballpoint under a red
stamp). Ink of the two groups overlapping is dark and near neutral, so it stays with the pen.
A stamp of the pen's own colour cannot be told apart this way and stays.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Chromaticity (optical densities of R, G, B over their sum) of this far from neutral (1/3 each)
# is coloured ink; within it, neutral.
NEUTRAL = 0.08
# Two ink groups are two inks when their mean chromaticities are this far apart ...
SEPARATION = 0.12
# ... and the smaller holds at least this share of the ink pixels.
MIN_SHARE = 0.03
# Ink pixels used to find the groups, and paper pixels its colour (evenly spread; every ink
# pixel is then assigned).
SAMPLE = 4000
ITERATIONS = 8


def luminance(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW uint8 grey, exactly as `sigid.data.images.load_image` reads a
    colour file (Pillow's L)."""
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"), dtype=np.uint8).copy()


def as_grey(image: np.ndarray) -> np.ndarray:
    """A grey array as it is, a colour one as `luminance`."""
    return image if image.ndim == 2 else luminance(image)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A colour array as it is, a grey one as RGB (its value in every channel)."""
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


def pen_grey(rgb: np.ndarray, grey: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """`grey` (`rgb`'s `luminance`) with the pixels of a second ink colour painted as paper, as
    a new array. `ink`: the grey's ink mask (`sigid.data.preprocess.ink_mask`)."""
    second = second_ink(rgb, ink)
    if not second.any():
        return grey
    paper = float(np.median(grey[~ink]))  # second_ink finds none on a page without paper
    painted = grey.copy()
    painted[second] = np.uint8(round(paper))
    return painted


def second_ink(rgb: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The pixels of `ink` in a second colour apart from the pen's, grown by one pixel into the
    paper around them (their anti-aliased edge); all False for one ink."""
    none = np.zeros(ink.shape, dtype=bool)
    if ink.sum() < 2 or (~ink).sum() == 0:
        return none
    blank = rgb[~ink]
    paper = np.median(blank[:: max(1, blank.shape[0] // (4 * SAMPLE))].astype(np.float64), axis=0)
    pixels = rgb[ink].astype(np.float64)
    density = -np.log(np.clip(pixels / np.maximum(paper, 1.0), 1e-3, 1.0))
    total = density.sum(axis=1)
    inked = total > 0.05  # lighter than this, a pixel's colour is noise
    shares = density[inked] / total[inked, None]
    # the third share is fixed by the other two
    labels, centres = _two_groups(shares[:, :2] - 1 / 3)
    sizes = np.bincount(labels, minlength=2)
    if (
        np.linalg.norm(centres[0] - centres[1]) < SEPARATION
        or sizes.min() < MIN_SHARE * sizes.sum()
    ):
        return none
    saturation = np.linalg.norm(_full(centres), axis=1)
    neutral = saturation < NEUTRAL
    if neutral.sum() == 1:
        pen = int(np.flatnonzero(neutral)[0])
    else:
        dark = [np.percentile(total[inked][labels == g], 90) for g in (0, 1)]
        pen = int(np.argmax(dark))
    other = np.zeros(pixels.shape[0], dtype=bool)
    other[np.flatnonzero(inked)[labels != pen]] = True
    found = none.copy()
    found[ink] = other
    # the stamp's edge: its paper-side neighbours, never the pen's ink
    grown = found.copy()
    grown[1:] |= found[:-1]
    grown[:-1] |= found[1:]
    grown[:, 1:] |= found[:, :-1]
    grown[:, :-1] |= found[:, 1:]
    return grown & (found | ~ink)


def _full(chroma: np.ndarray) -> np.ndarray:
    """2-d chromaticity offsets -> the 3 channels' offsets from neutral."""
    return np.column_stack([chroma, -chroma.sum(axis=1)])


def _two_groups(chroma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-means of the chromaticity offsets, from the most neutral and the most coloured
    sampled pixel: (each pixel's group, the groups' centres)."""
    if chroma.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((2, 2))
    step = max(1, chroma.shape[0] // SAMPLE)
    sample = chroma[::step]
    norms = np.linalg.norm(_full(sample), axis=1)
    centres = np.stack([sample[np.argmin(norms)], sample[np.argmax(norms)]])
    for _ in range(ITERATIONS):
        near = _nearest(sample, centres)
        for g in (0, 1):
            if (near == g).any():
                centres[g] = sample[near == g].mean(axis=0)
    return _nearest(chroma, centres), centres


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Each point's nearer centre (0 or 1): the side of the two centres' bisector it lies on."""
    direction = centres[1] - centres[0]
    middle = (centres[0] + centres[1]) / 2
    return ((points - middle) @ direction > 0).astype(np.int64)
