"""Embedded default dataset: a deterministic generator of handwritten-looking signatures.

Each writer has a consistent style that every sample varies around; skilled forgeries copy the
writer's glyphs with a forger's dynamics, and paper and ink levels share one distribution for
genuine and forged images (docs/design.md, "The embedded dataset"). Names are Latin cursive,
or with ``script`` "blocks" square characters of separate strokes, or "mixed" either; with
``name_sharing`` N, groups of N writers write one name (docs/synthetic-scripts.md). Layout
(paired folders): ``OUT/writer01/writer01_g001.png``, ``OUT/writer01_forg/writer01_f001.png``
and ``OUT/synthetic.json`` (the parameters). Each image is seeded by (seed, writer, kind, index)
alone, a shared name by (seed, group), so files are byte-identical across runs whatever the
generation order.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sigid.atomic import atomic_path, check_target, errors_about, make_parent
from sigid.data.images import is_image_file, load_image

GENERATOR = "sigid.data.synthetic"
VERSION = 1  # bump when the pixels change, so an old folder is never silently reused
SCRIPTS: tuple[str, ...] = ("latin", "blocks", "mixed")  # data.synthetic.script
# The newer options' defaults, under which a set is the one made before they existed.
SYNTHETIC_DEFAULTS: dict[str, Any] = {"script": "latin", "name_sharing": 1}
SUPERSAMPLE = 3  # strokes are drawn at this scale, then box-downsampled: antialiasing

# Glyphs as control points in hundredths of the x-height (x right, y up, baseline 0): the first
# point follows the previous glyph's exit, so consecutive glyphs join into one cursive stroke.
_LOWER = {
    "a": "35 60 60 90 35 100 10 70 12 20 30 0 55 30 63 92 62 20 78 0 98 25",
    "c": "60 80 45 100 18 80 12 30 30 0 55 5 80 25",
    "d": "35 55 60 88 35 100 10 70 12 20 30 0 55 30 72 210 66 20 80 0 100 22",
    "e": "45 50 62 75 45 95 20 80 12 40 30 5 55 0 80 20",
    "f": "45 130 60 210 45 235 28 200 30 0 32 -90 45 -100 50 -50 35 10 80 30",
    "g": "35 55 60 88 35 100 10 70 12 20 30 0 55 30 63 90 60 -60 45 -120 20 -110 25 -60 95 25",
    "h": "40 120 60 200 45 235 25 200 20 0 30 55 50 90 70 70 72 10 90 0 105 20",
    "i": "20 90 18 15 30 0 50 20",
    "k": "40 120 60 200 45 235 25 200 20 0 30 55 55 90 65 70 40 50 70 30 75 5 90 0 105 20",
    "l": "45 120 65 200 50 235 30 210 25 120 28 30 45 0 75 20",
    "m": "20 85 22 0 30 60 45 95 60 60 60 0 70 60 88 95 102 60 102 10 115 0 130 20",
    "n": "20 85 25 0 35 60 55 95 75 70 75 10 90 0 105 20",
    "o": "55 85 30 100 8 70 12 15 35 0 60 30 58 85 45 95 75 85 100 70",
    "r": "20 90 35 100 45 85 55 95 50 40 55 0 80 20",
    "s": "35 100 50 60 55 25 35 0 15 15 35 10 70 20",
    "t": "35 190 30 20 45 0 70 20",
    "u": "15 90 15 25 30 0 50 15 62 90 60 20 75 0 95 20",
    "v": "15 90 25 30 40 0 55 40 65 90 55 80 85 80",
    "w": "15 90 20 10 35 0 50 60 62 0 78 20 85 90 75 80 105 80",
    "y": "15 90 15 25 30 0 50 15 62 90 60 -60 45 -120 20 -110 30 -50 95 25",
}
_UPPER = {
    "B": "35 250 30 0 35 200 70 260 110 230 90 150 40 130 110 110 120 40 70 0 40 20 150 30",
    "C": "100 220 120 250 90 270 40 230 10 120 30 20 90 0 140 30",
    "D": "40 240 35 10 20 0 50 5 120 60 130 180 80 250 10 230 30 190 150 50",
    "E": "100 230 60 260 30 220 60 150 30 140 10 60 50 0 100 10 130 30",
    "H": "30 250 20 0 25 110 90 130 100 250 95 20 110 0 140 20",
    "J": "40 220 120 260 90 250 80 0 50 -100 20 -70 60 -10 120 30",
    "L": "60 220 90 260 70 270 45 230 30 80 10 0 -5 30 25 25 90 0 140 20",
    "M": "20 180 35 250 45 0 60 190 80 250 95 0 110 190 130 250 145 20 160 0 180 30",
    "R": "35 250 30 0 35 200 70 260 110 230 90 150 40 130 90 80 120 0 150 20",
    "S": "20 60 90 160 130 240 100 270 70 230 90 130 100 50 60 0 20 30 80 35 140 30",
    "W": "10 250 30 0 60 180 80 0 120 250 100 240 150 230",
}
GLYPHS = {k: np.array(v.split(), float).reshape(-1, 2) / 100 for k, v in (_LOWER | _UPPER).items()}
FLOURISHES = ("underline", "loop", "tail", "zigzag", "bar")

# Preview grid geometry (pixels): a label column, a header row, cells, a separator.
PREVIEW_CELL = (220, 90)
PREVIEW_LABEL_W = 100
PREVIEW_HEADER_H = 28
PREVIEW_SEP_W = 8


@dataclass
class _Style:
    """One writer's habits: what every genuine sample keeps and a forger tries to copy."""

    name: list[str]  # glyph keys: the writer's "name"
    ctrl: list[np.ndarray]  # the writer's own version of each glyph
    lifts: dict[int, float]  # glyph index -> extra gap before it (the pen is lifted)
    slant: float  # shear of upright strokes
    width: float  # letter width
    asc: float  # ascender and descender lengths
    desc: float
    taper: float  # size of the last letter relative to the first
    xh: float  # x-height in pixels
    pen: float  # mean pen width in pixels
    c_dir: float  # downstroke emphasis
    c_speed: float  # thickening in slow, tight curves
    taper_len: tuple[float, float]  # pixels of thin start and end (fast, flying strokes)
    drift: tuple[float, float, float, float]  # baseline slope, wave amplitude, period, phase
    flourish: str
    fp: np.ndarray  # flourish shape parameters in 0..1
    dots: float  # i-dot / t-bar length (0: none)
    blocks: _Blocks | None = None  # script "blocks": the square characters (None: Latin cursive)


@dataclass
class _Blocks:
    """A blocks writer's characters and the habits a latin writer does not have."""

    chars: list[list[np.ndarray]]  # per character, its strokes in the unit cell (y up), own version
    joins: list[list[bool]]  # per character, stroke k runs into k + 1 without a lift (cursive)
    aspect: float  # cell width / height
    gap: float  # space between cells, in cell heights


def _style(seed: int, w: int, script: str = "latin", sharing: int = 1) -> _Style:
    """Draw writer `w`'s style; seeded by (seed, w) alone, and its name by (seed, w // sharing):
    the `sharing` writers of a group write the same name, each in a style of their own.

    ``script="latin", sharing=1`` is the original draw, number for number.
    """
    if script == "blocks":
        return _blocks_style(seed, w, sharing)
    rng = np.random.default_rng(np.random.SeedSequence([seed, w, 0, 0]))
    group = w // sharing
    # The name's own stream where a group shares it; the writer's, as it always was, otherwise.
    name_rng = rng if sharing == 1 else _group_rng(seed, group, 0)
    # Surname capitals and flourishes are dealt from shuffled decks, so neighbours always differ.
    deck = np.random.default_rng(np.random.SeedSequence([seed, 0, 3, 0]))
    caps, flourishes = deck.permutation(sorted(_UPPER)), deck.permutation(FLOURISHES)
    lower = sorted(_LOWER)
    name, lifts = [str(caps[group % len(caps)])], {}
    if name_rng.random() < 0.4:  # a first initial, then the surname
        name.insert(0, str(name_rng.choice(caps)))
        lifts[1] = name_rng.uniform(0.5, 1.0)
    if name_rng.random() < 0.5:  # the capital is not joined to the first small letter
        lifts[len(name)] = name_rng.uniform(0.0, 0.3)
    name += [str(name_rng.choice(lower)) for _ in range(int(name_rng.integers(5, 12 - len(name))))]
    width, target = rng.uniform(0.85, 1.5), rng.uniform(340, 540)  # target: ink width, pixels
    # A shared name is lengthened for the group's nominal hand, not for one writer's.
    n_width, n_target = (
        (width, target) if sharing == 1 else name_rng.uniform((0.85, 340), (1.5, 540))
    )

    def units(width: float = width) -> float:  # estimated ink width in x-heights
        return sum(GLYPHS[k][:, 0].max() for k in name) * width + sum(lifts.values()) + 1.5

    while units(n_width) * 32 < n_target and len(name) < 14:  # a short name: a longer surname
        name.append(str(name_rng.choice(lower)))
    ctrl = [GLYPHS[k] + rng.normal(0, 0.07, GLYPHS[k].shape) for k in name]
    drift = tuple(rng.uniform((-0.08, 0.0, 4.0, 0.0), (0.08, 0.25, 12.0, 6.3)).tolist())
    return _Style(
        name, ctrl, lifts, slant=rng.uniform(-0.15, 0.55), width=width, asc=rng.uniform(0.7, 1.3),
        desc=rng.uniform(0.7, 1.3), taper=rng.uniform(0.6, 1.1),
        xh=float(np.clip(target / units(), 18, 34)), pen=rng.uniform(1.4, 3.6),
        c_dir=rng.uniform(0.0, 0.4), c_speed=rng.uniform(0.0, 0.4),
        taper_len=(rng.uniform(2, 8), rng.uniform(4, 16)), drift=drift,
        flourish=str(flourishes[w % len(flourishes)]), fp=rng.random(8),
        dots=rng.uniform(0.02, 0.4) if rng.random() < 0.75 else 0.0,
    )  # fmt: skip


def _group_rng(seed: int, group: int, part: int) -> np.random.Generator:
    """The stream of a name group's shared draws (part 0: the Latin name, 1: the blocks
    characters, 2: the script under ``mixed``); disjoint from every writer's and image's."""
    return np.random.default_rng(np.random.SeedSequence([seed, group, 4, part]))


def writer_script(seed: int, w: int, script: str = "latin", sharing: int = 1) -> str:
    """The script writer `w` writes in: `script` itself, or under ``mixed`` latin or blocks at
    random, drawn once per name group (a shared name is written in one script)."""
    if script != "mixed":
        return script
    return "blocks" if _group_rng(seed, w // sharing, 2).random() < 0.5 else "latin"


# Stroke kinds of the blocks script and how often each is drawn; a "box" is three strokes.
_STROKE_KINDS = ("h", "v", "pie", "na", "hook", "dot", "turn", "box")
_STROKE_P = np.array([0.26, 0.18, 0.12, 0.08, 0.08, 0.12, 0.08, 0.08])


def _spaced(rng: np.random.Generator, used: list[float], low: float, high: float) -> float:
    """A position in [low, high] away from those `used` (the best of a few draws), recorded:
    parallel strokes of a character keep a regular spacing instead of piling up."""
    tries = rng.uniform(low, high, 5)
    best = float(tries[np.argmax([min((abs(t - v) for v in used), default=1.0) for t in tries])])
    used.append(best)
    return best


def _stroke(
    kind: str,
    box: tuple[float, float, float, float],
    rng: np.random.Generator,
    used: dict[str, list[float]],
) -> list[np.ndarray]:
    """Control points of one stroke kind (or a box's three) inside `box` = (x0, y0, x1, y1) of
    the unit cell, y up, in writing direction (top to bottom, left to right). `used`: the
    positions of the part's horizontals ("h") and verticals ("v") so far, in 0..1 of the box."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0

    def u(a: float, b: float) -> float:
        return float(rng.uniform(a, b))

    if kind == "h":  # rising a little to the right, as a brush horizontal does
        y = y0 + h * _spaced(rng, used["h"], 0.08, 0.92)
        a, b = x0 + w * u(0.0, 0.2), x1 - w * u(0.0, 0.2)
        return [np.array([(a, y), (0.5 * (a + b), y + 0.02 * h), (b, y + 0.05 * h)])]
    if kind == "v":
        x = x0 + w * _spaced(rng, used["v"], 0.15, 0.85)
        a, b = y1 - h * u(0.0, 0.15), y0 + h * u(0.0, 0.2)
        return [np.array([(x, a), (x + 0.01, 0.5 * (a + b)), (x, b)])]
    if kind == "pie":  # left-falling, curving out
        a, b = (
            (x0 + w * u(0.45, 0.9), y1 - h * u(0.0, 0.2)),
            (x0 + w * u(0.0, 0.3), y0 + h * u(0.0, 0.3)),
        )
        mid = (0.5 * (a[0] + b[0]) + 0.08 * w, 0.5 * (a[1] + b[1]))
        return [np.array([a, mid, b])]
    if kind == "na":  # right-falling, with a flat foot
        a, b = (
            (x0 + w * u(0.1, 0.5), y1 - h * u(0.1, 0.4)),
            (x1 - w * u(0.0, 0.1), y0 + h * u(0.0, 0.2)),
        )
        mid, foot = (0.6 * a[0] + 0.4 * b[0], 0.5 * (a[1] + b[1])), (b[0] + 0.08 * w, b[1] + 0.02)
        return [np.array([a, mid, b, foot])]
    if kind == "hook":  # down, then a flick up and left
        x, a, b = x0 + w * u(0.3, 0.9), y1 - h * u(0.0, 0.15), y0 + h * u(0.05, 0.2)
        return [np.array([(x, a), (x, 0.5 * (a + b)), (x - 0.02, b), (x - 0.15 * w, b + 0.12 * h)])]
    if kind == "dot":
        x, y = x0 + w * u(0.15, 0.85), y0 + h * u(0.3, 0.95)
        return [np.array([(x, y), (x + 0.06 * w + 0.03, y - 0.08 * h - 0.04)])]
    top, bottom = y1 - h * u(0.0, 0.25), y0 + h * u(0.0, 0.25)
    left, right = x0 + w * u(0.0, 0.25), x1 - w * u(0.0, 0.25)
    turn = np.array(
        [(left, top), (right, top + 0.02), (right + 0.005, top - 0.02), (right, bottom)]
    )
    if kind == "turn":  # across, then down (the corner kept sharp by a close pair of points)
        return [turn]
    return [
        np.array([(left, top), (left, 0.5 * (top + bottom)), (left + 0.01, bottom)]), turn,
        np.array([(left, bottom + 0.01), (0.5 * (left + right), bottom), (right, bottom + 0.01)]),
    ]  # fmt: skip


def _char(rng: np.random.Generator) -> list[np.ndarray]:
    """One square character: 3-9 strokes, in one cell or in two parts (left-right, top-bottom),
    each part's strokes in writing order."""
    n = int(rng.integers(3, 10))
    parts = [(0.0, 0.0, 1.0, 1.0)]
    split = rng.choice(3, p=(0.35, 0.45, 0.2)) if n >= 5 else 0
    if split == 1:
        cut = rng.uniform(0.35, 0.5)
        parts = [(0.0, 0.0, cut - 0.03, 1.0), (cut + 0.03, 0.0, 1.0, 1.0)]
    elif split == 2:
        cut = rng.uniform(0.4, 0.6)
        parts = [(0.0, cut + 0.03, 1.0, 1.0), (0.0, 0.0, 1.0, cut - 0.03)]
    counts = [n] if len(parts) == 1 else [int(rng.integers(2, n - 1)), 0]
    counts[-1] = n - sum(counts[:-1])
    strokes: list[np.ndarray] = []
    for box, count in zip(parts, counts, strict=True):
        mine: list[np.ndarray] = []
        used: dict[str, list[float]] = {"h": [], "v": []}
        kinds = [str(k) for k in rng.choice(_STROKE_KINDS, size=count, p=_STROKE_P)]
        if not {"v", "hook", "pie", "na", "turn", "box"} & set(kinds):  # not all flat
            kinds[int(rng.integers(count))] = "v"
        boxed = False
        for kind in kinds:
            if len(mine) >= count:
                break
            if kind == "box" and (boxed or count - len(mine) < 3):  # one box a part, whole
                kind = "h"
            where = box
            if kind == "box":  # the whole part, or its upper or lower half (口 over or under)
                boxed, x0, y0, x1, y1 = True, *box
                half = rng.choice(3)
                mid = 0.5 * (y0 + y1)
                where = (
                    (x0, y0, x1, y1)
                    if half == 0
                    else (x0, mid, x1, y1)
                    if half == 1
                    else (x0, y0, x1, mid)
                )
            mine += _stroke(kind, where, rng, used)
        # top to bottom, then left to right: roughly the order a hand writes them in
        mine.sort(key=lambda p: (-round(float(p[0, 1]) * 4), float(p[0, 0])))
        strokes += mine
    return strokes


def _blocks_style(seed: int, w: int, sharing: int) -> _Style:
    """A blocks writer: the group's name of 2-4 square characters (seeded by the group), in the
    writer's own version and habits (seeded by (seed, w))."""
    name_rng = _group_rng(seed, w // sharing, 1)
    chars = [_char(name_rng) for _ in range(int(name_rng.integers(2, 5)))]
    rng = np.random.default_rng(np.random.SeedSequence([seed, w, 0, 1]))
    lh, lv = rng.uniform(0.75, 1.3, 2)  # habits: long or short horizontals and verticals
    cursive = rng.uniform(0.0, 0.55)  # how often strokes run into one another
    own, joins = [], []
    for strokes in chars:
        mine = []
        for p in strokes:
            c = p.mean(0)
            q = c + (p - c) * (lh, lv) + rng.normal(0, 0.05, p.shape)
            mine.append(q)
        own.append(mine)
        joins.append([bool(rng.random() < cursive) for _ in strokes[1:]])
    xh = rng.uniform(34, 60)
    return _Style(
        name=[f"char{i}" for i in range(len(chars))], ctrl=[], lifts={},
        slant=rng.uniform(-0.12, 0.25), width=1.0, asc=1.0, desc=1.0,
        taper=rng.uniform(0.8, 1.1), xh=float(xh), pen=rng.uniform(1.8, 5.0),
        c_dir=rng.uniform(0.0, 0.4), c_speed=rng.uniform(0.0, 0.3),
        taper_len=(rng.uniform(1, 5), rng.uniform(2, 10)),
        drift=tuple(rng.uniform((-0.06, 0.0, 3.0, 0.0), (0.06, 0.08, 8.0, 6.3)).tolist()),
        flourish="", fp=np.zeros(8), dots=0.0,
        blocks=_Blocks(own, joins, aspect=rng.uniform(0.8, 1.2), gap=rng.uniform(0.05, 0.5)),
    )  # fmt: skip


def _layout_blocks(
    st: _Style, rng: np.random.Generator, forged: bool
) -> tuple[list[np.ndarray], float]:
    """Control polygons of one blocks sample (cell-height units, y up) and its slant: the
    writer's characters cell after cell, strokes joined where the hand runs on."""
    assert st.blocks is not None
    b, jit = st.blocks, 0.045 if forged else 0.025
    wscale, hscale = b.aspect * (1 + rng.normal(0, 0.04)), 1 + rng.normal(0, 0.04)
    slant, gap = st.slant + rng.normal(0, 0.025), b.gap * (1 + rng.normal(0, 0.1))
    flip = 0.1
    if forged:  # the forger copies the shapes but misjudges proportions, slant and spacing
        wscale *= 1 + _sign(rng, 0.04, 0.13)
        hscale *= 1 + _sign(rng, 0.04, 0.13)
        slant += _sign(rng, 0.06, 0.16)
        gap = max(0.0, gap + _sign(rng, 0.08, 0.25))
        flip = 0.25  # and runs strokes together where the writer would not, or lifts
    out, x, n = [], 0.0, len(b.chars)
    for i, (strokes, joins) in enumerate(zip(b.chars, b.joins, strict=True)):
        size = 1 + (st.taper - 1) * i / max(1, n - 1)
        size *= 1 + rng.normal(0, 0.05 if forged else 0.02)
        dy = rng.normal(0, 0.03)
        cur: np.ndarray | None = None
        for k, p in enumerate(strokes):
            q = (p + rng.normal(0, jit, p.shape)) * (wscale * size, hscale * size) + (x, dy)
            joined = k > 0 and (joins[k - 1] != (rng.random() < flip))
            if cur is not None and joined:  # the pen runs on: a connecting stroke
                cur = np.vstack([cur, q])
            else:
                if cur is not None:
                    out.append(cur)
                cur = q
        if cur is not None:
            out.append(cur)
        x += wscale * size + gap
    return [s + rng.normal(0, jit * 0.3, s.shape) for s in out], slant


def _sign(rng: np.random.Generator, low: float, high: float) -> float:
    """A moderate error of random sign: a forger errs either way."""
    return float(rng.choice((-1.0, 1.0)) * rng.uniform(low, high))


def _layout(st: _Style, rng: np.random.Generator, forged: bool) -> tuple[list[np.ndarray], float]:
    """Control polygons of one sample (x-height units, y up) and its slant."""
    if st.blocks is not None:
        return _layout_blocks(st, rng, forged)
    jit = 0.045 if forged else 0.03
    wscale, hscale = st.width * (1 + rng.normal(0, 0.04)), 1 + rng.normal(0, 0.04)
    slant = st.slant + rng.normal(0, 0.025)
    if forged:  # the forger copies the shapes but misjudges proportions and slant
        wscale *= 1 + _sign(rng, 0.04, 0.13)
        hscale *= 1 + _sign(rng, 0.04, 0.13)
        slant += _sign(rng, 0.06, 0.16)
    strokes, extras, cur, x, cap, n = [], [], [], 0.0, (0.0, 1.0), len(st.name)
    for i, (key, ctrl) in enumerate(zip(st.name, st.ctrl, strict=True)):
        if i in st.lifts:
            strokes.append(np.array(cur))
            cur, x = [], x + st.lifts[i] * wscale
        size = 1 + (st.taper - 1) * i / max(1, n - 1)
        size *= 1 + rng.normal(0, 0.05 if forged else 0.02)
        p = ctrl + rng.normal(0, jit, ctrl.shape)
        p[:, 1] = np.where(p[:, 1] > 1, 1 + (p[:, 1] - 1) * st.asc, p[:, 1])
        p[:, 1] = np.where(p[:, 1] < 0, p[:, 1] * st.desc, p[:, 1]) * size * hscale
        p[:, 0] = x + p[:, 0] * wscale * size
        if not cur:  # a lead-in from below
            cur.append(p[0] + (-0.25, -0.6 * p[0, 1]))
        cur.extend(p)
        if key in ("i", "t") and st.dots:  # dots and bars come after the word, as separate strokes
            h = (1.55 if key == "i" else 1.2 * st.asc) * size * hscale
            x0 = p[0, 0] + (0.05 if key == "i" else -0.15)
            ln = st.dots if key == "i" else 0.5 + st.dots
            extras.append(np.array([(x0, h), (x0 + ln, h + 0.05)]) + rng.normal(0, jit, (2, 2)))
        x += GLYPHS[key][:, 0].max() * wscale * size * (1 + rng.normal(0, 0.05))
        if key.isupper():  # the surname capital, for the loop flourish
            cap = (p[:, 0].min(), p[:, 0].max())
    pts = np.vstack([*strokes, cur]) if strokes else np.array(cur)
    x0, x1, ex, f = pts[:, 0].min(), pts[:, 0].max(), cur[-1][0], st.fp
    if st.flourish == "underline":  # a swoosh back under the name, continuing the last letter
        d = 1.0 + 0.6 * f[0]
        cur.extend([(ex + 0.4, -0.3), (ex + 0.2 * f[1], -d), (0.5 * (x0 + x1), -d - 0.3 * f[2])])
        cur.extend([(x0 + 0.6 * f[3], -d + 0.1), (x0 - 0.6, -d + 0.5 + 0.5 * f[4])])
    elif st.flourish == "tail":  # the last letter drops into a loop, then a long rising finish
        cur.extend([(ex + 0.4, -0.6), (ex + 0.1 - 0.4 * f[0], -1.3 - 0.5 * f[1]), (ex - 0.5, -0.9)])
        cur.extend([(ex + 1.0 + f[2], 0.2 + 0.5 * f[3]), (ex + 2.2 + f[2], 1.2 + f[4])])
    elif st.flourish == "loop":  # a big loop around the surname capital
        t = np.linspace(-1.9, 4.6 + f[0], 11)
        rx, cy = 0.5 * (cap[1] - cap[0]) + 0.5 + 0.4 * f[1], 1.1 + 0.3 * f[2]
        loop = np.c_[0.5 * (cap[0] + cap[1]) + rx * np.cos(t), cy + (1.9 + 0.4 * f[3]) * np.sin(t)]
        strokes.insert(0, np.vstack([loop, loop[-1] + (0.8, -0.6)]))
    elif st.flourish == "zigzag":  # a separate wavy underline
        m = 4 + int(4 * f[0])
        ys = -1.1 - 0.3 * f[2] + 0.35 * (np.arange(m) % 2) + np.linspace(0, 0.4 * f[3], m)
        extras.append(np.c_[np.linspace(x0 + 0.3, x1 - 0.2 * f[1], m), ys])
    else:  # "bar": a high stroke over the name with a curl at its start
        y = 2.4 + 0.5 * f[0]
        bar = [(x0 + 0.5, y - 0.4), (x0 + 0.2, y), (x0 + 0.6, y + 0.1), (x1, y + 0.3 * f[1])]
        extras.append(np.array(bar))
    strokes.append(np.array(cur))
    return [s + rng.normal(0, jit * 0.5, s.shape) for s in [*strokes, *extras]], slant


def _spline(ctrl: np.ndarray, n: int = 12) -> np.ndarray:
    """Catmull-Rom curve through the control points: smooth, and it passes through each one."""
    p = np.vstack([2 * ctrl[0] - ctrl[1], ctrl, 2 * ctrl[-1] - ctrl[-2]])
    p0, p1, p2, p3 = p[:-3], p[1:-2], p[2:-1], p[3:]
    t = np.linspace(0, 1, n, endpoint=False)[:, None, None]
    c = 2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
    c = 0.5 * (c + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
    return np.vstack([c.transpose(1, 0, 2).reshape(-1, 2), ctrl[-1:]])


def _resample(pts: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Points evenly spaced along the curve, `step` pixels apart (tremor and width per pixel)."""
    s = np.r_[0, np.cumsum(np.hypot(*np.diff(pts, axis=0).T))]
    u = np.linspace(0, s[-1], max(2, int(s[-1] / step) + 1))
    return np.c_[np.interp(u, s, pts[:, 0]), np.interp(u, s, pts[:, 1])]


def _smooth(v: np.ndarray, k: int) -> np.ndarray:
    """Moving average with edge padding (same length)."""
    k = max(1, min(k, len(v)))
    return np.convolve(np.pad(v, (k // 2, k - 1 - k // 2), mode="edge"), np.ones(k) / k, "valid")


def _tangents(p: np.ndarray) -> np.ndarray:
    d = np.gradient(p, axis=0)
    return d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]


def _curves(st: _Style, rng: np.random.Generator, forged: bool) -> list[tuple[Any, Any]]:
    """Strokes of one sample: pixel paths (y down) and a pen width per point."""
    ctrl, slant = _layout(st, rng, forged)
    slope, amp, period, phase = st.drift
    angle, scale = rng.normal(0, 0.04), st.xh * (1 + rng.normal(0, 0.04))
    rot = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    paths = []
    for c in ctrl:
        p = _spline(c) if len(c) > 2 else np.linspace(c[0], c[-1], 4)
        x, y = p[:, 0] + slant * p[:, 1], p[:, 1]
        y = y + slope * x + amp * np.sin(2 * np.pi * x / period + phase)
        paths.append(_resample((np.c_[x, y] @ rot) * scale * (1, -1)))
    if forged:
        paths = _forge(paths, rng)
    strokes = []
    for p in paths:
        t = _tangents(p)
        if forged:  # slow and careful: near-uniform width, full width up to blunt ends
            f = 1 + 0.06 * _smooth(rng.normal(0, 1, len(p)), 9)
            f[:3] *= 1.2
        else:  # fluent: thin in fast straight runs, thick in slow curves and downstrokes
            turn = np.abs(np.diff(np.unwrap(np.arctan2(t[:, 1], t[:, 0])), prepend=0))
            curv = np.minimum(_smooth(turn, 7) * 0.4 * st.xh, 2.0)
            f = (1 + st.c_speed * (curv - 0.5)) * (1 + st.c_dir * t[:, 1])
            s = np.arange(len(p), dtype=float)
            f *= np.minimum(1, 0.35 + 0.65 * s / st.taper_len[0])
            f *= np.minimum(1, 0.15 + 0.85 * s[::-1] / st.taper_len[1])
        strokes.append((p, np.maximum(f, 0.2)))
    mean = sum(float(f.sum()) for _, f in strokes) / sum(len(f) for _, f in strokes)
    # The same ink mass per unit length for both kinds, so total darkness is no shortcut; tremor
    # lengthens and spreads a forged path a little, hence its slightly finer pen.
    pen = st.pen * (1 + rng.normal(0, 0.08)) * (0.96 if forged else 1.0) / mean
    return [(p, f * pen) for p, f in strokes]


def _forge(paths: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """A forger's dynamics on pixel paths: tremor across the stroke, hesitation gaps."""
    amp, wave = rng.uniform(0.3, 0.8), rng.uniform(5, 12)
    out = []
    for p in paths:
        s, ph = np.arange(len(p), dtype=float), rng.uniform(0, 6.3, 3)
        u = 2 * np.pi * s / wave
        wob = np.sin(u + ph[0]) + 0.6 * np.sin(u / 0.6 + ph[1])
        wob = wob * (0.6 + 0.4 * np.sin(s / 40 + ph[2])) + _smooth(rng.normal(0, 0.6, len(p)), 3)
        t = _tangents(p)
        out.append(p + np.c_[-t[:, 1], t[:, 0]] * (amp * wob)[:, None])
    for _ in range(int(rng.integers(1, 4))):  # hesitations: stop, lift, restart a bit off
        i = int(np.argmax([len(p) for p in out]))
        p = out[i]
        if len(p) < 60:
            break
        k, g = int(rng.integers(len(p) // 6, len(p) * 5 // 6)), int(rng.integers(-3, 5))
        out[i : i + 1] = [p[:k], p[max(k + g, 1) :] + rng.normal(0, 0.7, 2)]
    return out


def _render(st: _Style, seed: int, w: int, forged: bool, j: int) -> np.ndarray:
    """One sample as an HxW uint8 array, seeded by (seed, writer, kind, index) alone.

    Paper, noise, ink and margins come from their own stream, drawn the same way for both kinds.
    """
    seq = np.random.SeedSequence([seed, w, 2 if forged else 1, j])
    shape_rng, paper_rng = (np.random.default_rng(s) for s in seq.spawn(2))
    strokes = _curves(st, shape_rng, forged)
    pts, pad = np.vstack([p for p, _ in strokes]), max(float(f.max()) for _, f in strokes)
    lo, margin = pts.min(0) - pad, paper_rng.uniform((12, 14, 12, 14), (34, 34, 34, 34))
    width, height = np.ceil(pts.max(0) + pad - lo + margin[:2] + margin[2:]).astype(int).tolist()
    ss = SUPERSAMPLE
    img = Image.new("L", (width * ss, height * ss), 0)
    draw = ImageDraw.Draw(img)
    for p, f in strokes:  # runs of equal width (in pieces of 4 segments), with round ends
        q = (p - lo + margin[:2]) * ss
        starts = np.arange(0, max(1, len(q) - 1), 4)
        wds = np.maximum(
            1, np.rint(np.add.reduceat(f, starts) / np.diff(np.r_[starts, len(f)]) * ss)
        )
        keep = np.r_[True, wds[1:] != wds[:-1]]
        bounds, flat = [*starts[keep].tolist(), len(q) - 1], q.ravel().tolist()
        for a, b, wd in zip(bounds[:-1], bounds[1:], wds[keep].tolist(), strict=True):
            draw.line(flat[2 * a : 2 * b + 2], fill=255, width=int(wd))
        for (x, y), wd in ((q[0], wds[0]), (q[-1], wds[-1])):
            draw.ellipse((x - wd / 2, y - wd / 2, x + wd / 2, y + wd / 2), fill=255)
    alpha = np.asarray(img.reduce(ss), dtype=np.float32) / 255
    level, noise, ink = paper_rng.uniform((225, 1.0, 20), (250, 3.0, 80))
    gx, gy = paper_rng.normal(0, 2.0, 2)  # a faint shading across the page
    shade = level + gx * np.linspace(-0.5, 0.5, width, dtype=np.float32)
    shade = shade + gy * np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    grain = paper_rng.standard_normal((height, width), dtype=np.float32)  # paper and ink texture
    grey = shade + alpha * (ink - shade) + grain * (noise + alpha * (6 - noise))
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def _params(
    writers: int, per_writer: int, forgeries: int, seed: int, script: str = "latin",
    name_sharing: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """The content of synthetic.json: what the folder holds and how it was made.

    The keys of the newer options appear only where they are not the default, so a default set's
    file (and so its folder's reuse) is what it always was. ``writer_texts`` (with name_sharing)
    names the text each writer writes: the paired layout attaches it to the samples
    (`sigid.data.layouts`), whose other writers' renderings become skilled negatives.
    """
    names = [f"writer{w + 1:0{max(2, len(str(writers)))}d}" for w in range(writers)]
    params = {"generator": GENERATOR, "version": VERSION, "writers": writers,
              "per_writer": per_writer, "forgeries": forgeries, "seed": seed,
              "layout": "paired_folders", "writer_names": names}  # fmt: skip
    if script != "latin":
        params["script"] = script
    if script == "mixed":
        params["writer_scripts"] = {
            n: writer_script(seed, w, script, name_sharing) for w, n in enumerate(names)
        }
    if name_sharing != 1:
        params["name_sharing"] = name_sharing
        width = len(str((writers - 1) // name_sharing + 1))
        params["writer_texts"] = {
            n: f"name{w // name_sharing + 1:0{width}d}" for w, n in enumerate(names)
        }
    return params


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _existing(out: Path, params: dict[str, Any]) -> bool:
    """True if `out` already holds this exact set, False if absent or empty; else raise."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder; refusing to write a synthetic set")
    if not any(out.iterdir()):
        return False
    try:
        found = json.loads((out / "synthetic.json").read_text())
    except (OSError, ValueError):
        found = None
    if found == params:
        return True
    why = "no readable synthetic.json"
    if isinstance(found, dict):
        keys = [k for k in params if k != "writer_names" and found.get(k) != params[k]]
        diff = ", ".join(f"{k}: {found.get(k)!r} there, {params[k]!r} asked" for k in keys)
        why = f"a set made with other parameters ({diff})"
    raise ValueError(
        f"{out}: folder is not empty and holds {why}; refusing to overwrite it "
        "(choose another folder, or delete this one yourself)"
    )


def _write(job: tuple[_Style, int, int, bool, int, Path]) -> None:
    *args, path = job
    Image.fromarray(_render(*args), "L").save(path, format="PNG", compress_level=1)


def generate(
    out: str | Path,
    writers: int = 8,
    per_writer: int = 88,
    forgeries: int = 24,
    seed: int = 0,
    script: str = "latin",
    name_sharing: int = 1,
) -> Path:
    """Write the synthetic set to `out` atomically and return `out`.

    `script`: latin (cursive names), blocks (names of 2-4 square characters of separate strokes)
    or mixed (each name group one or the other at random). `name_sharing`: groups of that many
    consecutive writers write the same name, each in a style of their own. An `out` that already
    holds the same parameters is reused as it is (no work); one that holds anything else is
    refused with a ValueError, never deleted.
    """
    params = _params(
        _check_int("writers", writers, 1), _check_int("per_writer", per_writer, 1),
        _check_int("forgeries", forgeries, 0), _check_int("seed", seed, 0),
        _check_choice("script", script, SCRIPTS), _check_int("name_sharing", name_sharing, 1),
    )  # fmt: skip
    out = Path(out)
    if _existing(out, params):
        return out
    make_parent(out)
    # A sibling on the same file system, so that the final rename is atomic; unique per call.
    where = out.absolute()
    tmp = where.with_name(f"{where.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with errors_about(out, tmp):  # errors name `out`, not the temporary folder
            tmp.mkdir()
            _fill(tmp, params)
            try:
                os.replace(tmp, out)  # also replaces an empty folder, on POSIX
            except OSError:
                if _existing(out, params):  # another process finished the same set first
                    return out
                out.rmdir()  # an empty folder on a platform that will not replace it
                os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _fill(tmp: Path, params: dict[str, Any]) -> None:
    """Write every image of the set, then synthetic.json, into the folder `tmp`."""
    jobs = []
    for w, writer in enumerate(params["writer_names"]):
        sharing = params.get("name_sharing", 1)
        script = writer_script(params["seed"], w, params.get("script", "latin"), sharing)
        st = _style(params["seed"], w, script, sharing)
        for forged, count in ((False, params["per_writer"]), (True, params["forgeries"])):
            folder = tmp / (f"{writer}_forg" if forged else writer)
            stem = f"{writer}_{'f' if forged else 'g'}"
            for j in range(count):
                folder.mkdir(exist_ok=True)
                path = folder / f"{stem}{j + 1:0{max(3, len(str(count)))}d}.png"
                jobs.append((st, params["seed"], w, forged, j, path))
    # Drawing, noise and PNG encoding release the GIL in part: threads suffice and stay safe
    # inside any host process (no fork, no re-import of __main__).
    pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
    try:
        for _ in pool.map(_write, jobs):
            pass
    finally:
        pool.shutdown(cancel_futures=True)
    (tmp / "synthetic.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")


def check_preview_path(png: str | Path) -> Path:
    """Raise now, naming it, if `png` cannot take the preview grid: not a .png name, or not
    writable (a folder, a read-only file); `sigid synth` checks it before drawing the set."""
    png = check_target(png)
    if png.suffix.lower() != ".png":
        raise ValueError(f"{png}: the preview is a PNG image; give a file name ending in .png")
    return png


def preview(
    root: str | Path, png: str | Path, genuine_per_writer: int = 6, forgeries_per_writer: int = 2
) -> Path:
    """Save a grid of a paired-folder set (a row per writer: genuine, then forged samples).

    Why: a person should see at a glance that writers differ and that forgeries come close.
    """
    g = _check_int("genuine_per_writer", genuine_per_writer, 0)
    f = _check_int("forgeries_per_writer", forgeries_per_writer, 0)
    if g + f < 1:
        raise ValueError("preview needs at least one genuine or forged column")
    root, png = Path(root), check_preview_path(png)  # before the work, not after it
    names = sorted(
        d.name for d in (root.iterdir() if root.is_dir() else ())
        if d.is_dir() and not d.name.startswith(".") and not d.name.endswith("_forg")
    )  # fmt: skip
    if not names:
        raise ValueError(f"{root}: not a folder of writer folders; nothing to preview")
    (cw, ch), sep, red = PREVIEW_CELL, PREVIEW_SEP_W if g and f else 0, (200, 30, 30)
    left, top = PREVIEW_LABEL_W, PREVIEW_HEADER_H
    grid = Image.new("RGB", (left + (g + f) * cw + sep, top + len(names) * ch), "white")
    draw = ImageDraw.Draw(grid)
    try:
        font: Any = ImageFont.load_default(size=16)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        font = ImageFont.load_default()

    def text(x: float, y: float, s: str, colour: Any, centre: bool = True) -> None:
        x0, y0, x1, y1 = draw.textbbox((0, 0), s, font=font)
        draw.text((x - (x1 - x0) / 2 * centre, y - (y0 + y1) / 2), s, fill=colour, font=font)

    if g:
        text(left + g * cw / 2, top / 2, "genuine", "black")
    if f:
        text(left + g * cw + sep + f * cw / 2, top / 2, "forged", red)
        draw.rectangle((left + g * cw, 0, left + g * cw + sep - 1, grid.height), fill=red)
    for r, name in enumerate(names):
        y = top + r * ch
        draw.line((0, y, grid.width, y), fill=(190, 190, 190))
        text(6, y + ch / 2, name, "black", centre=False)
        real, forged = _first(root / name, g), _first(root / f"{name}_forg", f)
        for c, path in [*enumerate(real), *((g + k, p) for k, p in enumerate(forged))]:
            x = left + c * cw + (sep if c >= g else 0)
            thumb = Image.fromarray(load_image(path))
            thumb.thumbnail((cw - 8, ch - 8), Image.Resampling.LANCZOS)
            grid.paste(thumb, (x + (cw - thumb.width) // 2, y + (ch - thumb.height) // 2))
            if c >= g:  # forged cells are framed in red as well
                draw.rectangle((x + 1, y + 1, x + cw - 2, y + ch - 2), outline=red, width=2)
    with atomic_path(png) as tmp:
        grid.save(tmp, format="PNG")
    return png


def _first(folder: Path, count: int) -> list[Path]:
    """The first `count` images of `folder` in name order (none if it does not exist)."""
    if not count or not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))[:count]
