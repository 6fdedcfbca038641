"""Generated galleries: N writers x K reference embeddings, saved as `sigid enroll` saves one.

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


def write_gallery(path: Path, writers: int, references: int, dim: int) -> None:
    """Generate the gallery of `writers` x `references` embeddings and save it at `path`."""
    rng = np.random.default_rng(writers)
    centres = rng.normal(0, CENTRE_SPREAD, (writers, dim)).astype(np.float32)
    rows = np.repeat(centres, references, axis=0)
    rows += rng.normal(0, SIGNATURE_SPREAD, rows.shape).astype(np.float32)
    names = [f"writer{n:06d}" for n in range(writers)]
    table = {name: rows[n * references : (n + 1) * references] for n, name in enumerate(names)}
    sources = {name: ["<array>"] * references for name in names}
    storage.write(path, stand_in_verifier(dim), "normalized", table, sources)
