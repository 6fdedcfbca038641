"""The same seed trains the same weights on the CPU without torch's deterministic algorithms
(`trainer.deterministic: false`, the CPU default): the Siamese pair distances' backward sums
each image's gradients in one order."""

from __future__ import annotations

import torch

from sigid.models.siamese import distances_of


def test_pair_distances_backward_gives_the_same_gradients_every_time():
    """624 pairs over 64 images, as a writer batch of 8 x (4 + 4) has them: each image is in
    many pairs, so its gradient is a sum. Picked by plain indexing (``embeddings[left]``), 30
    backward passes gave 30 different gradients on this machine's 2 threads."""
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(64, 128, generator=generator)
    left = torch.randint(0, 64, (624,), generator=generator)
    right = torch.randint(0, 64, (624,), generator=generator)
    seen = set()
    for _ in range(30):
        leaf = embeddings.clone().requires_grad_()
        distances_of(leaf, left, right).sum().backward()
        seen.add(leaf.grad.numpy().tobytes())
    assert len(seen) == 1
