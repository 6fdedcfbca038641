"""Exact ranking against the two-stage one (a faiss HNSW index or a Milvus collection, then
`ranking.rescore`) on a generated gallery: per-query time, recall of the exact top-1 and top-k,
and how often the query's true writer is among the candidates.

    python tools/gallery_ann_bench.py --writers 100000 --queries 200 [--milvus DIR] [--json]

Writers are Gaussian centres in `--dim` dimensions with `--refs` references each, spread so that
a writer's own references lie at distance ~1 and other writers' at ~1.4; a query is one more
signature of a random writer. The verifier is an untrained Siamese module whose "images" are
their own embeddings (as in tests/test_gallery_ranking.py): similarity = sigmoid(2.5 - 1.3 d).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from sigid.inference.gallery.ann import ApproximateIndex, references_wanted
from sigid.inference.gallery.ranking import References, rescore
from sigid.inference.gallery.scores import writer_score
from sigid.inference.verifier import Verifier
from sigid.tasks import SiameseModule


def verifier(dim: int) -> Verifier:
    """An untrained Siamese module's verifier: similarity = sigmoid(2.5 - 1.3 distance)."""
    module = SiameseModule(
        preprocessing={"mode": "normalized", "size": [8, 8]},
        embedding="pixel", image_size=[8, 8], dim=dim, head={"scale": 1.3, "offset": 2.5},
    )  # fmt: skip
    module.genuine_distance.fill_(1.0)
    return Verifier(module)


def gallery(writers: int, refs: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres, references (writers * refs, dim)), float32."""
    rng = np.random.default_rng(seed)
    spread = 1 / np.sqrt(2 * dim)  # own references at distance ~1
    centres = rng.normal(0, spread, (writers, dim)).astype(np.float32)
    noise = rng.normal(0, spread, (writers, refs, dim)).astype(np.float32)
    return centres, (centres[:, None, :] + noise).reshape(-1, dim)


def exact(model: Verifier, table: References, query: np.ndarray, k: int) -> list[str]:
    """The exact ranking, as `Gallery._ranked` does it: contenders, then the rule."""
    found = table.contenders(model, query, k)
    rows = table.rows() if len(found) > 64 else None
    writers = [table.writers[i] for i in found.tolist()]
    if rows is None:
        rows = {
            table.writers[i]: table.matrix[table.starts[i] : table.starts[i] + table.counts[i]]
            for i in found.tolist()
        }
    scored = sorted(((w, writer_score(model, query, rows[w], "mean")) for w in writers),
                    key=lambda p: -p[1])  # fmt: skip
    return [w for w, _ in scored[:k]]


def agreement(name: str, answers: list[list[str]], exact: list[list[str]]) -> dict[str, float]:
    """How often the two-stage top-1 is the exact one, and the share of the exact top-k found."""
    pairs = list(zip(answers, exact, strict=True))
    return {
        f"{name}_top1_agrees": float(np.mean([a[0] == e[0] for a, e in pairs])),
        f"{name}_topk_recall": float(np.mean([len(set(a) & set(e)) / len(e) for a, e in pairs])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=100_000)
    parser.add_argument("--refs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--milvus", help="also a milvus-lite gallery in this folder")
    parser.add_argument("--no-faiss", action="store_true", help="skip the faiss index")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = verifier(args.dim)
    centres, matrix = gallery(args.writers, args.refs, args.dim, seed=0)
    names = [f"w{n:07d}" for n in range(args.writers)]
    table = References(names, matrix, [args.refs] * args.writers)
    rng = np.random.default_rng(1)
    truth = rng.integers(0, args.writers, args.queries)
    spread = 1 / np.sqrt(2 * args.dim)
    queries = (centres[truth] + rng.normal(0, spread, (args.queries, args.dim))).astype(np.float32)
    k = args.top_k

    out: dict[str, float | int] = {"writers": args.writers, "refs": args.refs, "dim": args.dim}

    def run(rank) -> tuple[list[list[str]], float]:
        answers, times = [], []
        for query in queries:
            t = time.perf_counter()
            answers.append(rank(query))
            times.append(time.perf_counter() - t)
        return answers, float(np.median(times) * 1000)

    exact_answers, out["exact_ms"] = run(lambda q: exact(model, table, q, k))
    out["exact_top1_is_truth"] = np.mean(
        [e[0] == names[t] for e, t in zip(exact_answers, truth, strict=True)]
    )
    wanted = references_wanted(k, args.writers)
    if not args.no_faiss:
        start = time.perf_counter()
        index = ApproximateIndex(table)
        out["faiss_build_s"] = round(time.perf_counter() - start, 1)
        ann_answers, out["faiss_ms"] = run(lambda q: [w for w, _ in index.ranked(model, q, k)])
        candidates = [set(index.candidates(q, wanted).tolist()) for q in queries]
        out.update(agreement("faiss", ann_answers, exact_answers))
        out["faiss_truth_in_candidates"] = np.mean(
            [t in c for t, c in zip(truth.tolist(), candidates, strict=True)]
        )
    if args.milvus:
        from sigid.inference.gallery.milvus import MilvusStore

        folder = Path(tempfile.mkdtemp(dir=args.milvus))
        store = MilvusStore(str(folder / "bench.milvus.db"))
        meta = {"checkpoint": None, "fingerprint": "bench", "preprocessing": {}, "dim": args.dim}
        store.create({**meta, "score": "mean"})
        t = time.perf_counter()
        store.add_many(
            (name, matrix[n * args.refs : (n + 1) * args.refs], ["<array>"] * args.refs)
            for n, name in enumerate(names)
        )
        out["milvus_load_all_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        store.nearest(queries[0], wanted)  # the engine builds its index on first search
        out["milvus_first_search_s"] = round(time.perf_counter() - t, 1)
        rows = table.rows()

        def milvus_rank(query: np.ndarray) -> list[str]:
            found = store.nearest(query, wanted) or []
            return [w for w, _ in rescore(model, rows, found, query, k)]

        milvus_answers, out["milvus_ms"] = run(milvus_rank)
        out.update(agreement("milvus", milvus_answers, exact_answers))
        found = [set(store.nearest(q, wanted) or []) for q in queries]
        out["milvus_truth_in_candidates"] = np.mean(
            [names[t] in c for t, c in zip(truth.tolist(), found, strict=True)]
        )
        store.close()
        shutil.rmtree(folder)
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    out = {key: (round(float(v), 4) if isinstance(v, float | np.floating) else v)
           for key, v in out.items()}  # fmt: skip
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
