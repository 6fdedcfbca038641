"""Samplers that share a pair loader out over DDP processes, so that N ranks see what 1 would.

Training: an epoch is a list of batches drawn from (seed, epoch) alone (`EpochBatches`); batch
``i`` goes to rank ``i % num_replicas``, so at every step the ranks together take the next
``num_replicas`` batches of the one-process epoch, in its order. When the batch count is not a
multiple of the ranks, the epoch is padded up to one so that every rank takes the same number of
steps (DDP needs it): how is the subclass's to say (`sigid.data.pairs.WriterBatchSampler` draws
further batches from the same stream, `ShuffledBatches` repeats the epoch's first ones).

Validation and test: `ShardSampler` gives each rank a contiguous share of the fixed pairs, never
padded, so that gathering the shards in rank order gives back every pair once, in order.

All are `DistributedSampler`s: Lightning injects its own sampler (which pads by repeating) only
into a loader whose sampler is not one, and sets the epoch of each from the fit loop
(``set_epoch``). With one rank they are plain samplers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, DistributedSampler


class ShardSampler(DistributedSampler):
    """Rank `rank`'s contiguous share of ``range(size)``: ``[size*rank//n, size*(rank+1)//n)``
    for ``n = num_replicas``; shares differ by at most one item, and nothing is repeated."""

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0) -> None:
        if size < num_replicas:
            raise ValueError(f"{size} items cannot be shared out over {num_replicas} processes")
        super().__init__(range(size), num_replicas=num_replicas, rank=rank, shuffle=False)
        self.start = size * rank // num_replicas
        self.stop = size * (rank + 1) // num_replicas

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


class EpochBatches(DistributedSampler):
    """An epoch's batches of indices, from (`seed`, epoch) alone, shared out over the ranks.

    Yields lists of indices: the loader takes it with ``batch_size=None`` and `Batches`.
    Subclasses say what an epoch is (`epoch_batches`) and set `batches`, its length in one
    process; `epoch` is the first epoch drawn (a resumed run's), each pass draws the next, and
    Lightning's ``set_epoch`` sets it.
    """

    batches: int

    def __init__(
        self, size: int, num_replicas: int = 1, rank: int = 0, seed: int = 0, epoch: int = 0
    ) -> None:
        super().__init__(
            range(size), num_replicas=num_replicas, rank=rank, shuffle=False, seed=seed
        )
        self.epoch = epoch

    @property
    def steps(self) -> int:
        """Batches each rank takes per epoch: the epoch's, padded up to a multiple of the ranks."""
        return -(-self.batches // self.num_replicas)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All ranks' batches of `epoch`, in the one-process order, ``steps * num_replicas`` of
        them (the first `batches` are the one-process epoch)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches(self.epoch)
        self.epoch += 1
        return iter(batches[self.rank :: self.num_replicas])


class ShuffledBatches(EpochBatches):
    """Batches of `batch_size` consecutive items of a fresh permutation of ``range(size)`` each
    epoch (the last one smaller), as a shuffling DataLoader would make them; several ranks pad
    the epoch with its first batches again (at most ``num_replicas - 1`` repeated per epoch)."""

    def __init__(self, size: int, batch_size: int, **kwargs: Any) -> None:
        super().__init__(size, **kwargs)
        self.size, self.batch_size = size, batch_size
        self.batches = -(-size // batch_size)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        order = np.random.default_rng((self.seed, epoch)).permutation(self.size).tolist()
        batches = [order[i : i + self.batch_size] for i in range(0, self.size, self.batch_size)]
        padding = self.steps * self.num_replicas - len(batches)
        return batches + [batches[k % len(batches)] for k in range(padding)]


class Batches(Dataset):
    """`dataset`, indexed by a list of indices: the list of their items, for a loader whose
    sampler yields whole batches (``batch_size=None``); the collate function makes the batch."""

    def __init__(self, dataset: Sequence[Any] | Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: list[int]) -> list[Any]:
        return [self.dataset[i] for i in indices]
