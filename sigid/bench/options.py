"""What a `sigid bench` run is asked: its parts, rounds and sizes. Light on purpose (no torch):
the `sigid` parser reads the choices and defaults from here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

PARTS: tuple[str, ...] = ("train", "loader", "epoch", "inference", "gallery", "peak")
DEVICES: tuple[str, ...] = ("cpu", "cuda")
# Defaults of the command: a full run takes a few minutes on 2 CPU cores.
ROUNDS, STEPS, WARMUP = 3, 10, 1
GALLERY_SIZES: tuple[int, ...] = (1_000, 10_000, 100_000)


@dataclass(frozen=True)
class BenchOptions:
    """One bench run. `steps`: timed training steps (and loader batches) per contender and
    round, after `warmup` untimed ones (inference: `steps` batches of images and `steps`
    verify calls); `data`: Hydra overrides for the loader's and the epoch's data (the training
    steps run on random batches of the fixed workloads); `checkpoint`: the Siamese checkpoint
    of the inference part (None: the shipped verifier); `device` None: cuda where there is one,
    else cpu."""

    parts: tuple[str, ...] = PARTS
    device: str | None = None
    rounds: int = ROUNDS
    steps: int = STEPS
    warmup: int = WARMUP
    gallery_sizes: tuple[int, ...] = GALLERY_SIZES
    data: tuple[str, ...] = field(default_factory=tuple)
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.parts) - set(PARTS))
        if unknown or not self.parts:
            raise ValueError(f"bench parts: {unknown or 'none'}; choose from {', '.join(PARTS)}")
        if self.device is not None and self.device not in DEVICES:
            raise ValueError(f"device {self.device!r}: choose from {', '.join(DEVICES)}")
        for name in ("rounds", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"--warmup must be at least 0, got {self.warmup}")
        if not self.gallery_sizes or min(self.gallery_sizes) < 2:
            raise ValueError(f"gallery sizes must be 2 writers or more, got {self.gallery_sizes}")


def parse_sizes(text: str) -> tuple[int, ...]:
    """``1000,10000,100000`` (``_`` allowed in numbers) -> sorted distinct sizes."""
    try:
        sizes = {int(part) for part in text.split(",") if part.strip()}
    except ValueError as err:
        raise ValueError(f"gallery sizes {text!r}: whole numbers separated by commas") from err
    return tuple(sorted(sizes))


def ordered(parts: Sequence[str]) -> tuple[str, ...]:
    """The asked parts in the order they run (`PARTS`): train before loader, whose ratio needs
    the step, and before peak, which reports the CNN step's arithmetic rate."""
    return tuple(p for p in PARTS if p in parts)
