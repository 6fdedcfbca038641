"""Generated galleries: N writers x K reference embeddings, in a store as `sigid enroll` keeps
one (or an .npz of sigid before the store).

The model is an untrained pixel Siamese network that stands in for a checkpoint (seeded:
every process builds the same weights, so a gallery written by one process loads in another).
Each writer's references are a centre drawn around 0 plus noise, scaled so that a writer's own
signatures lie about half as far apart as two writers' (distances about 4 and 9); the head is
set to sigmoid(6 - distance) and the typical genuine distance to 4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sigid.inference.gallery import storage
from sigid.inference.gallery.sqlite import SqliteStore
from sigid.inference.verifier import Verifier
from sigid.tasks import SiameseModule

# Spread of the writers' centres and of each writer's signatures about their centre.
CENTRE_SPREAD, SIGNATURE_SPREAD = 0.5, 0.25
# The head: similarity = sigmoid(OFFSET - SCALE * distance); GENUINE: the typical genuine distance.
SCALE, OFFSET, GENUINE = 1.0, 6.0, 4.0
IMAGE_SIZE = 32


def stand_in_verifier(dim: int, cls: type[Verifier] = Verifier) -> Verifier:
    """The seeded untrained model of every generated gallery, as a `cls` (a Verifier)."""
    torch.manual_seed(0)
    module = SiameseModule(
        preprocessing={"mode": "normalized", "size": [IMAGE_SIZE, IMAGE_SIZE]},
        embedding="pixel",
        image_size=[IMAGE_SIZE, IMAGE_SIZE],
        dim=dim,
        head={"scale": SCALE, "offset": OFFSET},
    )
    module.genuine_distance.fill_(GENUINE)
    return cls(module)


def write_gallery(
    path: Path, writers: int, references: int, dim: int, verifier: Verifier | None = None
) -> None:
    """Generate the gallery of `writers` x `references` embeddings at `path`: a store (one
    transaction for all), or for a path ending in .npz a gallery file of sigid before the
    store. `verifier`: the model it is recorded with (default: `stand_in_verifier`)."""
    rng = np.random.default_rng(writers)
    centres = rng.normal(0, CENTRE_SPREAD, (writers, dim)).astype(np.float32)
    rows = np.repeat(centres, references, axis=0)
    rows += rng.normal(0, SIGNATURE_SPREAD, rows.shape).astype(np.float32)
    names = [f"writer{n:06d}" for n in range(writers)]
    table = {name: rows[n * references : (n + 1) * references] for n, name in enumerate(names)}
    verifier = verifier or stand_in_verifier(dim)
    if str(path).endswith(".npz"):
        sources = {name: ["<array>"] * references for name in names}
        storage.write(path, verifier, "normalized", table, sources)
        return
    store = SqliteStore(path)
    try:
        store.create(
            {
                "checkpoint": str(verifier.checkpoint) if verifier.checkpoint else None,
                "fingerprint": verifier.fingerprint,
                "preprocessing": verifier.preprocessing,
                "dim": verifier.dim,
                "score": "normalized",
            }
        )
        store.add_many((name, rows, ["<array>"] * references) for name, rows in table.items())
    finally:
        store.close()
