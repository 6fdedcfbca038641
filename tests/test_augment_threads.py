"""Augmentation runs on one torch thread (`sigid.data.transforms.one_thread`), gives the same
images as on several, and hands the caller's thread count back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext

import numpy as np
import pytest
import torch

import sigid.data.transforms as transforms
from sigid.data.datamodules import PairCollate
from sigid.data.pairs import Pair
from sigid.data.transforms import build_transform, to_tensor


@pytest.fixture
def two_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _images(count: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, 48, 96), dtype=np.uint8)


class _Threads:
    """A transform that keeps the thread count it ran with, then applies `inner`."""

    def __init__(self, inner) -> None:
        self.inner, self.seen = inner, []

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return self.inner(tensor)


def test_a_pair_batch_is_augmented_on_one_thread(two_threads):
    transform = _Threads(build_transform(fill=0))
    pairs = [Pair(0, 1, 1, 0), Pair(2, 3, 0, 2), Pair(4, 5, 0, 1)]
    batch = PairCollate(_images(), transform)(pairs)
    assert transform.seen == [1] * 6 and batch["images"].shape == (6, 1, 48, 96)
    assert torch.get_num_threads() == 2  # handed back


def test_one_thread_gives_the_images_of_two(two_threads, monkeypatch):
    transform, image = build_transform(fill=0), _images(1)[0]
    torch.manual_seed(3)
    one = [to_tensor(image, transform) for _ in range(4)]
    monkeypatch.setattr(transforms, "one_thread", nullcontext)  # as before: on both threads
    torch.manual_seed(3)
    two = [to_tensor(image, transform) for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
    assert not torch.equal(one[0], one[1])  # four different draws


def test_an_image_alone_is_augmented_on_one_thread(two_threads):
    """The classifier's path (`ImageDataset` calls `to_tensor` per image)."""
    transform = _Threads(lambda t: t)
    image = _images(1)[0]
    assert torch.equal(to_tensor(image, transform), torch.from_numpy(image)[None] / 255.0)
    assert transform.seen == [1] and torch.get_num_threads() == 2
