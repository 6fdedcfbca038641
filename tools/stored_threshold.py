"""FAR and FRR of a Siamese checkpoint at its STORED threshold, as `sigid verify --gallery`
decides, on the test writers of a data split (each enrolled with K references).

    .venv/bin/python tools/stored_threshold.py CKPT [--references 5 12] [overrides ...]
    e.g. tools/stored_threshold.py sigid/inference/weights/verifier.ckpt \\
        data=cedar data.root=../shared/data/cedar data.split.fold=0

`sigid evaluate --protocol writer-dependent` reports FAR and FRR at the validation writers' EER
threshold instead: the figures of a threshold calibrated on the user's own writers. This tool
shows what a model gives before any calibration, for a model whose threshold was chosen on other
data (the shipped verifier: procedural writers; docs/shipped-model.md). Prints JSON.
"""

from __future__ import annotations

import argparse
import json

from sigid.evaluation.protocols.writer_dependent import (
    EmbeddedSplit,
    forgery_metrics,
    protocol_rule,
    score_trials,
)
from sigid.evaluation.testing import evaluation_datamodule
from sigid.inference.verifier import Verifier
from sigid.runs.paths import checkpoint_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--references", type=int, nargs="+", default=[5, 12])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    checkpoint = checkpoint_path(args.ckpt)
    verifier = Verifier.from_checkpoint(checkpoint)
    datamodule = evaluation_datamodule(verifier.module, list(args.overrides), checkpoint)
    datamodule.setup("test")
    splits = {
        name: EmbeddedSplit(
            datamodule.samples[name], verifier.embed_prepared(datamodule.images[name])
        )
        for name in ("val", "test")
    }
    rule = protocol_rule(verifier, splits["val"], None)  # a new gallery's score
    results = []
    for k in args.references:
        trials = score_trials(verifier, splits["test"], k, args.seed, rule)
        results.append({"references": k, **forgery_metrics(trials, verifier.threshold)})
    print(json.dumps({"threshold": verifier.threshold, "score": rule.score, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
