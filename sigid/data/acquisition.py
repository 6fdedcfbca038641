"""Realistic acquisition changes of a raw scan, each a named transform at three strengths.

They act on an image as read from disk (an HxW grey or HxWx3 RGB uint8 array, dark ink on
light paper), BEFORE sigid's preprocessing, so that the normaliser meets them as it would meet
a user's scan: another scanner's resolution, another pen, a tablet, JPEG, a ruling line, a box
or a stamp over the signature, a tilted or noisy page. `TRANSFORMS` is the one registry (name ->
`Acquisition`, whose ``strengths`` are ``low``, ``middle``, ``high``) that the robustness
protocol (`sigid.evaluation.protocols.robustness`) and training augmentation (`data.acquisition`:
`RawAcquisition`, live, or with ``variants`` the cached versions of `sigid.data.variants`) read.

Each output has the input's shape and dtype, and depends only on (transform, strength, seed,
image): `apply` draws its randomness from ``numpy.random.default_rng([*seed, transform,
strength])``. Geometry and resampling use ``torchvision.transforms.v2.functional``, JPEG uses
Pillow, grey erosion and dilation Pillow's min and max filters. Colour transforms render in RGB
and, for a grey input, convert back to grey as `sigid.data.images.load_image` does (Pillow's
``L``), so a grey scan stays a grey scan.

The strengths are in CEDAR's terms (about 300 dpi, strokes 2-4 pixels wide); docs/evaluation.md
("Robustness") lists what each one does.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from sigid.data.inks import as_grey, as_rgb
from sigid.data.preprocess import ink_mask, no_ink_reason, prepare, skeleton

if TYPE_CHECKING:
    import torch

# torch and torchvision are imported where a transform resamples: the `sigid` command lists
# the registry's names without loading them (tests/test_cli.py).

STRENGTHS: tuple[str, ...] = ("low", "middle", "high")

Seed = int | Sequence[int]


@dataclass(frozen=True)
class Acquisition:
    """One named acquisition change: `function(image, setting, rng)` with one setting per
    strength (`STRENGTHS`), and what it models, in a line."""

    name: str
    summary: str
    function: Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]
    strengths: Mapping[str, Any]


# --- colour and geometry helpers -------------------------------------------------------------
def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
    ):
        raise ValueError(
            f"an acquisition transform takes an HxW grey or HxWx3 RGB uint8 scan, got "
            f"{image.dtype} {image.shape}"
        )
    if min(image.shape[:2]) < 2:
        raise ValueError(f"an acquisition transform needs at least 2x2 pixels, got {image.shape}")
    return image


def _like(rgb: np.ndarray, image: np.ndarray) -> np.ndarray:
    """An RGB result in the input's form: grey as `load_image` makes it (Pillow's L)."""
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8) if rgb.dtype != np.uint8 else rgb
    if image.ndim == 3:
        return rgb
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"), dtype=np.uint8).copy()


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return np.asarray(Image.fromarray(image, "RGB").convert("L"), dtype=np.uint8)


def _paper(image: np.ndarray) -> list[float]:
    """The paper's colour, per channel: the median of the non-ink pixels."""
    mask = ink_mask(_grey(image))
    pixels = image[~mask] if (~mask).any() else image.reshape(-1, *image.shape[2:])
    level = np.median(pixels.reshape(len(pixels), -1), axis=0)
    return [float(v) for v in np.atleast_1d(level)]


def _ink_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the ink, bottom and right exclusive; the whole image if
    there is none."""
    mask = ink_mask(_grey(image))
    if not mask.any():
        return 0, image.shape[0], 0, image.shape[1]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _tensor(image: np.ndarray) -> torch.Tensor:
    """(C, H, W) uint8 tensor of an HxW or HxWx3 array, for torchvision's kernels."""
    import torch

    array = image[None] if image.ndim == 2 else np.moveaxis(image, 2, 0)
    return torch.from_numpy(np.ascontiguousarray(array))


def _array(tensor: torch.Tensor, image: np.ndarray) -> np.ndarray:
    out = tensor.numpy()
    return np.ascontiguousarray(out[0] if image.ndim == 2 else np.moveaxis(out, 0, 2))


# --- the transforms --------------------------------------------------------------------------
def _resolution(image: np.ndarray, dpi: float, rng: np.random.Generator) -> np.ndarray:
    """Scanned at `dpi` instead of ~300: area-averaged down to that resolution, then
    bilinearly back up to the original size (as a normaliser enlarges a small scan)."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    height, width = image.shape[:2]
    scale = dpi / 300.0
    small = [max(2, round(height * scale)), max(2, round(width * scale))]
    tensor = F.resize(_tensor(image), small, interpolation=InterpolationMode.BILINEAR,
                      antialias=True)  # fmt: skip
    back = F.resize(tensor, [height, width], interpolation=InterpolationMode.BILINEAR,
                    antialias=False)  # fmt: skip
    return _array(back, image)


def _morphology(image: np.ndarray, radius: int, thicker: bool) -> np.ndarray:
    """Grey erosion (thinner) or dilation (thicker) of the ink by `radius` half-pixels: at
    twice the size, a min or max filter of width 2 * radius + 1, then back down."""
    height, width = image.shape[:2]
    mode = "L" if image.ndim == 2 else "RGB"
    big = Image.fromarray(image, mode).resize((2 * width, 2 * height), Image.Resampling.BILINEAR)
    size = 2 * radius + 1
    # ink is dark: a min filter spreads it (thicker), a max filter spreads the paper (thinner)
    filtered = big.filter(ImageFilter.MinFilter(size) if thicker else ImageFilter.MaxFilter(size))
    return np.asarray(filtered.resize((width, height), Image.Resampling.BOX), dtype=np.uint8).copy()


def _thinner(image: np.ndarray, radius: int, rng: np.random.Generator) -> np.ndarray:
    return _morphology(image, radius, thicker=False)


def _thicker(image: np.ndarray, radius: int, rng: np.random.Generator) -> np.ndarray:
    return _morphology(image, radius, thicker=True)


def _recolour(image: np.ndarray, ink: Sequence[float], paper: Sequence[float]) -> np.ndarray:
    """The scan redrawn with `ink` for its darkest tone and `paper` for its own paper, each
    pixel's darkness (against its paper level) kept."""
    grey = _grey(image).astype(np.float32)
    level = max(float(np.median(grey[~ink_mask(_grey(image))])) if grey.size else 255.0, 1.0)
    darkness = np.clip((level - grey) / level, 0.0, 1.0)[..., None]
    ink_rgb, paper_rgb = np.asarray(ink, np.float32), np.asarray(paper, np.float32)
    return paper_rgb + darkness * (ink_rgb - paper_rgb)


def _pen(image: np.ndarray, setting: tuple, rng: np.random.Generator) -> np.ndarray:
    """Another pen on tinted paper: blue or coloured ink, cream, yellow or grey paper."""
    ink, paper = setting
    return _like(_recolour(image, ink, paper), image)


def _faint(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """A pale pen or a light scan: the ink's darkness against its paper scaled by `strength`."""
    rgb = as_rgb(image).astype(np.float32)
    paper = np.asarray(_paper(as_rgb(image)), np.float32)
    return _like(paper - (paper - rgb) * strength, image)


def _tablet(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A stylus on a tablet: the strokes' centre lines redrawn black and even, `size`
    half-pixels wide (1: one pixel), without a pen's pressure or ink variation, on white."""
    mask = ink_mask(_grey(image))
    if not mask.any():
        return image.copy()
    height, width = mask.shape
    lines = Image.fromarray(np.where(skeleton(mask), 0, 255).astype(np.uint8), "L")
    big = lines.resize((2 * width, 2 * height), Image.Resampling.NEAREST)
    if size > 1:
        big = big.filter(ImageFilter.MinFilter(size))
    grey = np.asarray(big.resize((width, height), Image.Resampling.BOX), dtype=np.uint8)
    return _like(as_rgb(grey).astype(np.float32), image)


def _jpeg(image: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    """Saved as JPEG at `quality` (Pillow; colour with 4:2:0 chroma subsampling) and read back."""
    mode = "L" if image.ndim == 2 else "RGB"
    buffer = io.BytesIO()
    Image.fromarray(image, mode).save(buffer, format="JPEG", quality=int(quality))
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return np.asarray(decoded.convert(mode), dtype=np.uint8).copy()


def _draw(image: np.ndarray, paint: Callable[[ImageDraw.ImageDraw], None]) -> np.ndarray:
    """Dark marks painted by `paint` on a white layer, multiplied into the scan (ink over ink
    stays dark, as printed lines under a pen stroke do)."""
    layer = Image.new("RGB", (image.shape[1], image.shape[0]), (255, 255, 255))
    paint(ImageDraw.Draw(layer))
    marks = np.asarray(layer, dtype=np.float32) / 255.0
    return _like(as_rgb(image).astype(np.float32) * marks, image)


def _ruling(image: np.ndarray, setting: tuple, rng: np.random.Generator) -> np.ndarray:
    """Printed ruling lines across the page, `count` of them crossing the signature, `width`
    pixels wide in colour `colour` (a form's baseline, a notebook's lines)."""
    count, width, colour = setting
    top, bottom, _, _ = _ink_box(image)
    # the first line near the baseline (the lower third of the ink), the others spaced above
    spacing = max((bottom - top) / (count + 0.5), 2 * width + 2)
    first = bottom - (bottom - top) * rng.uniform(0.15, 0.35)
    rows = [round(first - i * spacing) for i in range(count)]

    def paint(draw: ImageDraw.ImageDraw) -> None:
        for row in rows:
            draw.line([(0, row), (image.shape[1], row)], fill=tuple(colour), width=width)

    return _draw(image, paint)


def _box(image: np.ndarray, setting: tuple, rng: np.random.Generator) -> np.ndarray:
    """A signature box: a rectangle `width` pixels wide whose sides lie `inset` of the ink's
    extent inside its edges (negative: a margin around it; positive: the box cuts the ink)."""
    inset, width = setting
    top, bottom, left, right = _ink_box(image)
    dy, dx = inset * (bottom - top), inset * (right - left)
    jitter = rng.uniform(-0.03, 0.03, 4) * [bottom - top, bottom - top, right - left, right - left]
    box = [left + dx + jitter[2], top + dy + jitter[0], right - dx + jitter[3],
           bottom - dy + jitter[1]]  # fmt: skip
    box = [
        min(max(box[0], 0), image.shape[1] - 1), min(max(box[1], 0), image.shape[0] - 1),
        max(min(box[2], image.shape[1] - 1), 0), max(min(box[3], image.shape[0] - 1), 0),
    ]  # fmt: skip
    box[2], box[3] = max(box[2], box[0] + 1), max(box[3], box[1] + 1)

    def paint(draw: ImageDraw.ImageDraw) -> None:
        draw.rectangle(box, outline=(40, 40, 40), width=width)

    return _draw(image, paint)


def _stamp(image: np.ndarray, setting: tuple, rng: np.random.Generator) -> np.ndarray:
    """A round rubber stamp (two rings and a band of marks, in violet, blue or red ink) of
    `size` times the ink's height, its centre `offset` of its radius away from the ink's,
    printed at `opacity`."""
    size, offset, opacity = setting
    top, bottom, left, right = _ink_box(image)
    radius = max(4.0, size * (bottom - top) / 2)
    angle = rng.uniform(0, 2 * np.pi)
    cy = (top + bottom) / 2 + offset * radius * np.sin(angle)
    cx = (left + right) / 2 + offset * radius * np.cos(angle)
    colours = ((110, 60, 160), (40, 70, 170), (190, 40, 50))
    colour = np.asarray(colours[int(rng.integers(len(colours)))], np.float32)
    ink = 255 - (255 - colour) * opacity
    ring = max(1, round(radius / 14))

    def paint(draw: ImageDraw.ImageDraw) -> None:
        fill = tuple(int(v) for v in ink)
        for r in (radius, radius * 0.62):
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=ring)
        for a in np.linspace(0, 2 * np.pi, 28, endpoint=False) + rng.uniform(0, 0.2):
            # letter-like marks in the band between the rings
            r0, r1 = radius * rng.uniform(0.68, 0.74), radius * rng.uniform(0.86, 0.93)
            start = (cx + r0 * np.cos(a), cy + r0 * np.sin(a))
            end = (cx + r1 * np.cos(a + 0.05), cy + r1 * np.sin(a + 0.05))
            draw.line([start, end], fill=fill, width=ring)
        draw.line([(cx - radius * 0.5, cy), (cx + radius * 0.5, cy)], fill=fill, width=ring)

    return _draw(image, paint)


def _rotation(image: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """The page turned by `degrees`, clockwise or not (drawn), about the centre; the corners
    filled with the paper's colour."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    angle = float(degrees * rng.choice((-1.0, 1.0)))
    out = F.rotate(_tensor(image), angle, interpolation=InterpolationMode.BILINEAR,
                   fill=_paper(image))  # fmt: skip
    return _array(out, image)


def _shear(image: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """A horizontal shear of `degrees`, either way (drawn): a slanted hand, or a skewed
    phone photograph."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    shear = float(degrees * rng.choice((-1.0, 1.0)))
    out = F.affine(_tensor(image), angle=0.0, translate=[0, 0], scale=1.0, shear=[shear, 0.0],
                   interpolation=InterpolationMode.BILINEAR, fill=_paper(image))  # fmt: skip
    return _array(out, image)


def _salt_pepper(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """`fraction` of the pixels set to black or white, half each (dust, a dirty glass)."""
    out = image.copy()
    hit = rng.random(image.shape[:2]) < fraction
    black = rng.random(image.shape[:2]) < 0.5
    out[hit & black], out[hit & ~black] = 0, 255
    return out


def _scanner_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A cheap sensor: Gaussian noise of `sigma` grey levels per pixel, plus a streak per row
    (a line sensor's uneven gain) of half that."""
    noise = (
        rng.normal(0.0, sigma, image.shape[:2])
        + rng.normal(0.0, sigma / 2, image.shape[0])[:, None]
    )
    if image.ndim == 3:
        noise = noise[..., None]
    return np.clip(np.rint(image.astype(np.float32) + noise), 0, 255).astype(np.uint8)


_REGISTRY = (
    Acquisition("resolution", "scanned at 200, 150 or 100 dpi instead of ~300, then enlarged",
                _resolution, {"low": 200, "middle": 150, "high": 100}),
    Acquisition("thinner", "strokes thinner: grey erosion by 0.5, 1 or 1.5 pixels",
                _thinner, {"low": 1, "middle": 2, "high": 3}),
    Acquisition("thicker", "strokes thicker (felt-tip): grey dilation by 0.5, 1 or 1.5 pixels",
                _thicker, {"low": 1, "middle": 2, "high": 3}),
    Acquisition("pen", "ink colour on tinted paper: dark blue on cream, blue on yellow, light "
                "blue on grey-beige",
                _pen, {"low": ((25, 35, 110), (250, 246, 232)),
                       "middle": ((45, 65, 175), (242, 232, 200)),
                       "high": ((90, 120, 215), (222, 214, 190))}),
    Acquisition("faint", "a faint pen: the ink's darkness scaled to 60, 40 or 25 %",
                _faint, {"low": 0.6, "middle": 0.4, "high": 0.25}),
    Acquisition("tablet", "a stylus on a tablet: centre lines redrawn black and even, 2.5, 1.5 "
                "or 1 pixel wide", _tablet, {"low": 5, "middle": 3, "high": 1}),
    Acquisition("jpeg", "JPEG at quality 70, 50 or 30", _jpeg,
                {"low": 70, "middle": 50, "high": 30}),
    Acquisition("ruling", "printed ruling lines crossing the signature: 1 light, 2 grey or 3 "
                "dark", _ruling,
                {"low": (1, 1, (170, 180, 200)), "middle": (2, 2, (120, 130, 150)),
                 "high": (3, 3, (60, 60, 70))}),
    Acquisition("box", "a signature box: around it with a margin, touching it, cutting "
                "through it", _box,
                {"low": (-0.12, 1), "middle": (0.0, 2), "high": (0.15, 3)}),
    Acquisition("stamp", "a round stamp beside, over a part of, or centred on the signature",
                _stamp, {"low": (1.2, 1.1, 0.5), "middle": (1.4, 0.5, 0.7),
                         "high": (1.6, 0.0, 0.9)}),
    Acquisition("rotation", "the page turned by 3, 7 or 12 degrees", _rotation,
                {"low": 3.0, "middle": 7.0, "high": 12.0}),
    Acquisition("shear", "a horizontal shear of 8, 15 or 25 degrees", _shear,
                {"low": 8.0, "middle": 15.0, "high": 25.0}),
    Acquisition("salt_pepper", "0.2, 1 or 3 % of the pixels black or white", _salt_pepper,
                {"low": 0.002, "middle": 0.01, "high": 0.03}),
    Acquisition("scanner_noise", "sensor noise of 4, 8 or 16 grey levels, and row streaks",
                _scanner_noise, {"low": 4.0, "middle": 8.0, "high": 16.0}),
)  # fmt: skip
TRANSFORMS: dict[str, Acquisition] = {t.name: t for t in _REGISTRY}


def check_names(transforms: Sequence[str] | None, strengths: Sequence[str] | None
                ) -> tuple[list[str], list[str]]:  # fmt: skip
    """The transforms and strengths asked for (all of each when None), in registry order; a
    ValueError naming the choices for an unknown one."""
    chosen = []
    for kind, given, choices in (
        ("transform", transforms, tuple(TRANSFORMS)),
        ("strength", strengths, STRENGTHS),
    ):
        names = list(choices if given is None else given)
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise ValueError(
                f"unknown acquisition {kind}(s) {', '.join(map(repr, unknown)) or '(none given)'}"
                f"; choose from {', '.join(choices)}"
            )
        chosen.append([n for n in choices if n in names])
    return chosen[0], chosen[1]


def apply(image: np.ndarray, transform: str, strength: str, seed: Seed = 0) -> np.ndarray:
    """`image` (HxW grey or HxWx3 RGB uint8, dark ink on light paper) changed by `transform`
    at `strength`; the same arguments give the same image."""
    check_names([transform], [strength])
    image = _check_image(image)
    acquisition = TRANSFORMS[transform]
    seeds = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
    rng = np.random.default_rng([*(int(s) for s in seeds), zlib.crc32(transform.encode()),
                                 STRENGTHS.index(strength)])  # fmt: skip
    out = acquisition.function(image, acquisition.strengths[strength], rng)
    if out.shape != image.shape or out.dtype != np.uint8:  # pragma: no cover - a bug here
        raise AssertionError(f"{transform} returned {out.dtype} {out.shape} for {image.shape}")
    return out


def prepared_change(
    grey: np.ndarray, transform: str, strength: str, seed: Seed, preprocessing: Mapping[str, Any]
) -> tuple[np.ndarray, bool]:
    """`grey` (or an RGB scan) changed by `transform` at `strength` (`apply`) and preprocessed
    as `preprocessing` says: (the image, whether the normaliser still finds ink in it)."""
    changed = apply(grey, transform, strength, seed)
    prepared = prepare(changed, preprocessing)
    reason = no_ink_reason(as_grey(changed), str(preprocessing["mode"]), prepared)
    return prepared, reason is None


# --- training augmentation -------------------------------------------------------------------
SETTINGS_KEYS = ("p", "transforms", "strengths", "variants")


class SettingError(ValueError):
    """A bad value of one key of ``data.acquisition``: `key` names it, so the message can say
    ``data.acquisition.<key>``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def acquisition_settings(cfg: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``data.acquisition`` (``{p, transforms, strengths, variants}``; null: off) as plain
    checked values: `p` in [0, 1] (0: off, None returned), `transforms` and `strengths` lists of
    names (null: all), and `variants` (null: fresh changes drawn live, `RawAcquisition`; N >= 1:
    N changed versions per image made once and cached, `sigid.data.variants`). The returned
    mapping holds ``variants`` only where it is set, so a run without it is as before. A
    ValueError of one line names the key and the choices (a `SettingError` for `variants`)."""
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping):
        raise ValueError(f"must be a mapping of {', '.join(SETTINGS_KEYS)} or null, got {cfg!r}")
    unknown = [str(key) for key in cfg if key not in SETTINGS_KEYS]
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; expected {list(SETTINGS_KEYS)}")
    p = cfg.get("p", 0.5)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    names = [None if cfg.get(k) is None else list(cfg[k]) for k in ("transforms", "strengths")]
    transforms, strengths = check_names(*names)
    variants = cfg.get("variants")
    if variants is not None and (
        isinstance(variants, bool) or not isinstance(variants, int) or variants < 1
    ):
        raise SettingError(
            "variants",
            f"must be a whole number >= 1 (changed versions per image, made once and cached) or "
            f"null (a fresh change each time), got {variants!r}",
        )
    if not p:
        return None
    settings: dict[str, Any] = {"p": float(p), "transforms": transforms, "strengths": strengths}
    if variants is not None:
        settings["variants"] = int(variants)
    return settings


class RawAcquisition:
    """Training augmentation from the registry, on the raw scans: with probability `p`, an
    image is read again from its file, changed by one of `transforms` at one of `strengths`
    (each drawn uniformly), and preprocessed as `preprocess` says; otherwise (or if the change
    left no ink the normaliser finds) the cached image is used. Draws come from torch's global
    RNG, as the geometric augmentation's (`sigid.data.transforms`), so a seeded run draws the
    same changes."""

    def __init__(
        self,
        paths: Sequence[Any],
        preprocess: Mapping[str, Any],
        p: float,
        transforms: Sequence[str],
        strengths: Sequence[str],
    ) -> None:
        self.paths = list(paths)
        self.preprocess = dict(preprocess)
        self.p, self.transforms, self.strengths = p, list(transforms), list(strengths)
        self.applied = 0  # images changed in this process (a test reads it)

    def __call__(self, index: int) -> np.ndarray | None:
        """The image `index` changed and preprocessed, or None: use the cached one."""
        import torch

        from sigid.data.images import load_image

        if float(torch.rand(())) >= self.p:
            return None
        transform = self.transforms[int(torch.randint(len(self.transforms), ()))]
        strength = self.strengths[int(torch.randint(len(self.strengths), ()))]
        seed = int(torch.randint(2**31 - 1, ()))
        grey = load_image(self.paths[index])
        prepared, inked = prepared_change(grey, transform, strength, seed, self.preprocess)
        if not inked:
            return None
        self.applied += 1
        return prepared
