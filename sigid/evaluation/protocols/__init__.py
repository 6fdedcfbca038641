"""Evaluation protocols of the signature literature, on trained checkpoints and runs.

- `identification`: closed-set writer identification with a CNN (top-1, top-5, confusion matrix);
- `writer_dependent`: a Siamese model used as a deployment uses it, each writer enrolled with K
  references; EER, AUC, FAR/FRR at a threshold chosen on validation writers, skilled and random;
- `writer_independent`: k-fold over writers, mean and spread of the folds' test metrics;
- `same_name`: a collection whose writers all wrote the same names (chinese_names): (writer,
  name) units verified against other writers' renderings of the name, overall and per medium
  pair, and each name's writers ranked (identification top-1).
- `robustness`: a Siamese checkpoint's pair and writer-dependent figures again with the
  questioned scans changed as other scanners, pens and documents change them
  (`sigid.data.acquisition`), one row per change and strength against clean.

Each returns a JSON-ready dict and, given an output folder, writes ``evaluation.json`` and its
figures there; `report.format_result` renders any result as a table. `sigid.evaluation.api`
dispatches to them by name.
"""

from sigid.evaluation.protocols.identification import identification
from sigid.evaluation.protocols.report import format_result
from sigid.evaluation.protocols.robustness import robustness
from sigid.evaluation.protocols.same_name import same_name
from sigid.evaluation.protocols.writer_dependent import writer_dependent
from sigid.evaluation.protocols.writer_independent import writer_independent_summary

__all__ = [
    "format_result", "identification", "robustness", "same_name", "writer_dependent",
    "writer_independent_summary",
]  # fmt: skip
