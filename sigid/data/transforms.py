"""The tensor steps shared by training and inference: uint8 image -> float tensor, and the
Keras-style augmentation as one `torchvision.transforms.v2` transform, with its named presets.

The ranges are the paper's ImageDataGenerator's (rotation, width/height shift, shear, zoom) plus
`Stretch`, the independent x/y scale; uncovered areas are filled with the paper's grey.
Randomness comes from torch's global RNG.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.resources import files
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

KEYS: tuple[str, ...] = ("rotation", "width_shift", "height_shift", "shear", "zoom", "stretch")


class Stretch(v2.Transform):
    """Scale x and y independently by factors in [1 - stretch, 1 + stretch] about the centre.

    The anisotropic half of Keras' zoom_range, which `v2.RandomAffine` (isotropic scale) lacks.
    """

    def __init__(self, stretch: float, fill: float = 255) -> None:
        super().__init__()
        self.stretch = float(stretch)
        self.fill = fill

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        sx, sy = torch.empty(2).uniform_(1 - self.stretch, 1 + self.stretch).tolist()
        height, width = v2.query_size(flat_inputs)
        return {"height": height, "width": width, "sx": sx, "sy": sy}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        # Output pixel (x, y) samples input ((x - cx) / sx + cx, (y - cy) / sy + cy).
        cx, cy, sx, sy = params["width"] / 2, params["height"] / 2, params["sx"], params["sy"]
        coef = [1 / sx, 0.0, cx - cx / sx, 0.0, 1 / sy, cy - cy / sy, 0.0, 0.0]
        kernel_args = {"interpolation": v2.InterpolationMode.BILINEAR, "fill": self.fill}
        return self._call_kernel(F.perspective, inpt, None, None, **kernel_args, coefficients=coef)

    def extra_repr(self) -> str:
        return f"stretch={self.stretch}, fill={self.fill}"


class GreyAugment(v2.Transform):
    """Runs `steps` on a (1, H, W) or (H, W) image: v2 geometry kernels need a channel axis."""

    def __init__(self, steps: v2.Transform) -> None:
        super().__init__()
        self.steps = steps

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, torch.Tensor) and inpt.ndim == 2:
            return self.steps(inpt.unsqueeze(0)).squeeze(0)
        return self.steps(inpt)


def build_transform(
    rotation: float = 10.0, width_shift: float = 0.1, height_shift: float = 0.1,
    shear: float = 10.0, zoom: float = 0.1, stretch: float = 0.1, fill: int = 255,
) -> v2.Transform:  # fmt: skip
    """The Keras ImageDataGenerator ranges as one v2 transform (identity when all are 0).

    rotation and shear are max degrees, shifts max fractions of width/height, zoom the max
    isotropic scale change and stretch the max independent x/y scale change; bilinear, `fill`
    paints what the image no longer covers.
    """
    ranges = (rotation, width_shift, height_shift, shear, zoom, stretch)
    values = _check_ranges(dict(zip(KEYS, ranges, strict=True)))
    if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not 0 <= fill <= 255:
        raise ValueError(f"augmentation fill must be a grey level in 0..255, got {fill!r}")
    steps: list[v2.Transform] = []
    if values["stretch"]:
        steps.append(Stretch(values["stretch"], fill=fill))
    if any(values[key] for key in ("rotation", "width_shift", "height_shift", "shear", "zoom")):
        shift = (values["width_shift"], values["height_shift"])
        zoom, shear = values["zoom"], values["shear"]
        scale = (1 - zoom, 1 + zoom) if zoom else None
        translate, shears = (shift if any(shift) else None), ((-shear, shear) if shear else None)
        bilinear = v2.InterpolationMode.BILINEAR
        steps.append(v2.RandomAffine(values["rotation"], translate, scale, shears, bilinear, fill))
    if not steps:
        return v2.Identity()
    return GreyAugment(steps[0] if len(steps) == 1 else v2.Compose(steps))


def build_transform_from_config(cfg: Mapping[str, Any] | None, fill: int) -> v2.Transform:
    """`build_transform` from a config mapping; missing keys are 0, None/`enabled: false` is off."""
    return build_transform(**augment_settings(cfg), fill=fill)


def augment_settings(cfg: Mapping[str, Any] | None) -> dict[str, float]:
    """The six ranges of a config mapping as plain floats (all 0 when disabled), validated."""
    if cfg is None:
        return dict.fromkeys(KEYS, 0.0)
    if not isinstance(cfg, Mapping):
        raise ValueError(f"augmentation config must be a mapping or None, got {type(cfg).__name__}")
    unknown = [str(key) for key in cfg if key not in (*KEYS, "enabled")]
    if unknown:
        raise ValueError(f"unknown augmentation key(s) {unknown}; expected {[*KEYS, 'enabled']}")
    enabled = cfg.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError(f"augmentation 'enabled' must be true or false, got {enabled!r}")
    if not enabled:
        return dict.fromkeys(KEYS, 0.0)
    return _check_ranges({key: cfg.get(key, 0.0) for key in KEYS})


def _check_ranges(values: Mapping[str, Any]) -> dict[str, float]:
    checked: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"augmentation {key} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"augmentation {key} must be a finite value >= 0, got {value!r}")
        checked[key] = float(value)
    for key, limit in (("zoom", 1), ("stretch", 1), ("width_shift", 1), ("height_shift", 1)):
        if checked[key] >= limit:
            raise ValueError(f"augmentation {key} must be < {limit}, got {checked[key]!r}")
    if checked["shear"] >= 90:
        raise ValueError(f"augmentation shear must be < 90 degrees, got {checked['shear']!r}")
    return checked


@contextmanager
def one_thread() -> Iterator[None]:
    """torch's intra-op threads set to one inside, then back.

    For the augmentation of one image: its warps are small kernels, each split over every
    thread by default, and each waits for its slowest thread. On a busy machine (a loaded CPU,
    the training step's threads) that thread is often descheduled: measured on 2 shared cores,
    CEDAR's training batches augmented at 13-33 images/s with 2 threads against 476-487 with
    one. The images are the same: each output pixel is computed alike in either case, and the
    random draws come from the same generator.
    """
    threads = torch.get_num_threads()
    if threads == 1:  # a DataLoader worker, or a run on one thread
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def to_tensor(image: np.ndarray, transform=None) -> torch.Tensor:
    """uint8 (H, W) -> float (1, H, W) in [0, 1], through the optional uint8 transform (run on
    one thread: `one_thread`)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).unsqueeze(0)
    if transform is not None:
        with one_thread():
            tensor = transform(tensor)
    return tensor.float().div_(255.0)


def augment_preset(name: str) -> dict[str, Any]:
    """Augmentation ranges of ``conf/data/augment/<name>.yaml`` (paper, heavy, none)."""
    resource = files("sigid.conf") / "data" / "augment" / f"{name}.yaml"
    if not resource.is_file():
        choices = sorted(p.name[:-5] for p in resource.parent.iterdir() if p.name.endswith(".yaml"))
        raise ValueError(f"unknown augmentation preset {name!r}; choose from {', '.join(choices)}")
    return dict(OmegaConf.to_container(OmegaConf.create(resource.read_text())))
