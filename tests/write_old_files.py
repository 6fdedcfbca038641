"""Run by tests/test_compatibility.py with the code of before the move (issue 20) on its path:
writes the files that version wrote, and what it read back from them.

    python write_old_files.py OUT IMAGES

OUT receives the run folders ``finished/`` (a Siamese run that ended) and ``interrupted/`` (one
stopped by Ctrl-C after its first epoch: checkpoints, no metrics.json), both by ``sigid-train``
(so with Hydra's own record, ``.hydra/hydra.yaml``); ``member/`` (a second run of the same
split, by ``sigid.train``) and ``ensemble/`` (the two combined, as ``sigid ensemble`` does); a
gallery ``gallery.npz`` enrolled from IMAGES/w<writer>/s<n>.png; and ``expected.json``: what the
old code read from them (similarities, identifications, ...), for the current code to reproduce.

``python write_old_files.py --sigid-train OVERRIDES...`` is the old ``sigid-train`` command, with
this file's `InterruptAt` importable as ``__main__.InterruptAt``.

Only names that existed before the move are used (``sigid.gallery``, ``sigid.ensemble``...), and
nothing from the tests' helpers, which follow the current code: this file must keep running the
old code as it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightning as L

import sigid

# The tests' small settings (tests/runs.py: SMALL, SMALL_NET, QUIET without test=false), as of
# the move; a copy, so that later changes to the helpers leave this old run as it was.
DATA = [
    "data.synthetic.writers=6",
    "data.synthetic.per_writer=12",
    "data.synthetic.forgeries=4",
    "data.preprocess.size=[32,64]",
    "data.split.val=2",
    "data.split.test=2",
    "data.split.folds=3",
    "data.split.val_writers=1",
    "data.pairs.train=48",
    "data.pairs.val=24",
    "data.pairs.test=24",
    "data.batch_size=16",
    "data.seed=0",  # the split, whatever the run's seed: the ensemble's members share it
]
RUN = [
    *DATA,
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=3",
    "model=siamese_conv",
    "model.depth=2",
    "model.channels=[8,16,16,16,16]",
    "model.dim=16",
    "trainer.enable_model_summary=false",
    "logger=none",
]


class InterruptAt(L.Callback):
    """Ctrl-C at the start of `epoch`, as the terminal delivers it."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt


def sigid_train(status: int, *overrides: str) -> None:
    """The old `sigid-train` in a process of its own, which must end with `status`."""
    done = subprocess.run(
        [sys.executable, __file__, "--sigid-train", *overrides],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != status:
        raise AssertionError(f"sigid-train ended with {done.returncode}:\n{done.stderr[-3000:]}")


def main(out: Path, images: Path) -> None:
    from sigid.ensemble import combine  # before the move: top-level modules
    from sigid.gallery import Gallery
    from sigid.verifier import Verifier

    finished = out / "finished"
    sigid_train(0, *RUN, f"hydra.run.dir={finished}")
    stop = "+callbacks.stop={_target_:__main__.InterruptAt,epoch:1}"
    sigid_train(1, *RUN, stop, f"hydra.run.dir={out / 'interrupted'}")
    member = sigid.train([*RUN, "seed=1", f"hydra.run.dir={out / 'member'}"])
    ensemble = combine([finished, member.output_dir], out / "ensemble", DATA)

    def png(writer: int, n: int) -> str:
        return str(images / f"w{writer}" / f"s{n}.png")

    queries = [png(writer, 7) for writer in (1, 2, 3)]
    checkpoint = finished / "checkpoints" / "best.ckpt"
    verifier = Verifier.from_checkpoint(checkpoint)
    gallery = Gallery(verifier)
    for writer in (1, 2):
        gallery.enroll(f"w{writer}", [png(writer, n) for n in range(3)])
    gallery.save(out / "gallery.npz")
    ensembled = Verifier.from_checkpoint(out / "ensemble" / "checkpoints" / "best.ckpt")
    expected = {
        "code": [sigid.__file__, sys.modules["sigid.conf"].__file__],  # which code ran
        "queries": queries,
        "checkpoint": str(checkpoint),
        "ensemble_metrics": ensemble,
        "fingerprint": verifier.fingerprint,
        "threshold": verifier.threshold,
        "genuine_distance": verifier.genuine_distance,
        "embeddings": verifier.embed(queries).tolist(),
        "similarities": [verifier.similarity(queries[0], q) for q in queries],
        "ensemble_similarities": [ensembled.similarity(queries[0], q) for q in queries],
        "identify": [gallery.identify(q).to_dict() for q in queries],
        "verify": [gallery.verify("w1", q).to_dict() for q in queries],
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=1, default=str))


if __name__ == "__main__":
    if sys.argv[1] == "--sigid-train":
        from sigid.training import main as sigid_train_main  # the old console script

        sys.argv = ["sigid-train", *sys.argv[2:]]
        sigid_train_main()
    else:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
