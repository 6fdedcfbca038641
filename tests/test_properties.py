"""Property tests: sigid's pure functions against brute-force statements of what they document.

Each property is checked on examples hypothesis draws (the "ci" profile in conftest.py draws the
same ones on every run). Small integer scores make ties common, drawn writers and sample counts
reach the edge cases (one writer, no forgeries, a writer with one signature), and drawn pages
vary the paper level and its noise. tools/mutation.py breaks the code these properties name and
checks that they notice.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from drawing import draw_signature
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageDraw, ImageFilter
from torchmetrics.functional.classification import binary_eer

from sigid.data.cache import preprocess_samples
from sigid.data.layouts import DatasetError, Sample, natural_key
from sigid.data.pairs import GENUINE, RANDOM, SKILLED, make_pairs, pairs_within
from sigid.data.preprocess import (
    _centre_on_canvas,
    _resize,
    background_value,
    ink_mask,
    normalize,
    preprocess,
)
from sigid.data.splits import samples_of, split_per_writer, split_writers
from sigid.inference.gallery import Gallery
from sigid.inference.gallery.scores import reference_spread, writer_score
from sigid.inference.verifier import Verifier
from sigid.metrics import auroc, eer, far_frr, roc

# -- metrics --------------------------------------------------------------------------------------


@st.composite
def labelled_scores(draw, dtype=torch.float64):
    """(scores, targets) with both classes; few distinct integer scores, so ties are common."""
    n = draw(st.integers(2, 30))
    levels = draw(st.integers(1, 6))
    scores = draw(st.lists(st.integers(-levels, levels), min_size=n, max_size=n))
    targets = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    assume(0 < sum(targets) < n)
    scale = draw(st.sampled_from([1.0, 0.25, 1000.0]))  # 1000: scores outside [0, 1]
    return torch.tensor(scores, dtype=dtype) * scale, torch.tensor(targets)


@st.composite
def float32_scores(draw):
    """(float32 scores, targets): arbitrary finite floats, neighbours in float32 included."""
    n = draw(st.integers(2, 20))
    base = draw(st.floats(-1e6, 1e6, width=32))
    steps = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    spread = draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=n, max_size=n))
    near = draw(st.booleans())
    values = []
    for k, s in zip(steps, spread, strict=True):
        value = np.float32(base)
        for _ in range(k):  # k float32 steps above base: distinct scores a hair apart
            value = np.nextafter(value, np.float32(np.inf))
        values.append(value if near else np.float32(s))
    targets = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    assume(0 < sum(targets) < n)
    return torch.tensor(np.array(values, dtype=np.float32)), torch.tensor(targets)


def _counts(scores: list[float], targets: list[int], threshold: float) -> tuple[int, int]:
    """(false accepts, false rejects) of ``score >= threshold``, counted one by one."""
    false_accepts = sum(
        1 for s, y in zip(scores, targets, strict=True) if y == 0 and s >= threshold
    )
    false_rejects = sum(1 for s, y in zip(scores, targets, strict=True) if y == 1 and s < threshold)
    return false_accepts, false_rejects


def _brute_points(
    scores: torch.Tensor, targets: torch.Tensor
) -> list[tuple[float, Fraction, Fraction]]:
    """Every ROC point (threshold, FAR, FRR) exactly: +inf (reject all), then each distinct
    score, descending."""
    s, y = scores.tolist(), targets.tolist()
    positives = sum(y)
    negatives = len(y) - positives
    points = []
    for t in [math.inf, *sorted(set(s), reverse=True)]:
        fa, fr = _counts(s, y, t)
        points.append((t, Fraction(fa, negatives), Fraction(fr, positives)))
    return points


def _eer_key(far: Fraction, frr: Fraction) -> tuple[Fraction, Fraction]:
    """metrics.eer's documented choice: smallest |FAR - FRR|, then the lowest mean."""
    return abs(far - frr), far + frr


@given(labelled_scores())
def test_eer_is_the_documented_point_of_the_brute_force_roc(data):
    """eer() is the mean of FAR and FRR at the point of smallest |FAR - FRR| (ties: lowest
    mean), over every threshold; its threshold gives that point's FAR and FRR exactly."""
    scores, targets = data
    points = _brute_points(scores, targets)
    best = min(_eer_key(far, frr) for _, far, frr in points)
    value, threshold = eer(scores, targets)
    assert value == pytest.approx(float(best[1] / 2), abs=1e-12)
    fa, fr = _counts(scores.tolist(), targets.tolist(), threshold)
    positives = int(targets.sum())
    negatives = len(targets) - positives
    assert _eer_key(Fraction(fa, negatives), Fraction(fr, positives)) == best
    far, frr = far_frr(scores, targets, threshold)
    assert (far, frr) == (fa / negatives, fr / positives)


@given(labelled_scores())
def test_eer_is_torchmetrics_binary_eer_where_one_point_is_closest(data):
    """Where a single ROC point has the smallest |FAR - FRR|, eer() is torchmetrics' value (on
    the scores' order, which torchmetrics would otherwise squash with a sigmoid)."""
    scores, targets = data
    gaps = sorted(abs(far - frr) for _, far, frr in _brute_points(scores, targets))
    assume(len(gaps) == 1 or gaps[0] < gaps[1])
    ranks = torch.unique(scores, return_inverse=True)[1].double()
    expected = float(binary_eer(ranks / max(float(ranks.max()), 1.0), targets))
    assert eer(scores, targets)[0] == pytest.approx(expected, abs=1e-6)


@given(labelled_scores())
def test_eer_threshold_is_the_midpoint_below_its_point(data):
    """The threshold is the midpoint between the EER point's score and the next lower distinct
    score (just above the top score when rejecting all; the lowest score when accepting all)."""
    scores, targets = data
    _, threshold = eer(scores, targets)
    values = sorted(set(scores.tolist()))
    above = [v for v in values if v >= threshold]
    below = [v for v in values if v < threshold]
    if not above:  # reject everything: the next float above the highest score
        assert threshold == math.nextafter(values[-1], math.inf)
    elif not below:  # accept everything
        assert threshold == values[0]
    else:  # these scores are exact in float64, and so is their midpoint
        assert threshold == (above[0] + below[-1]) / 2


@given(float32_scores())
def test_eer_threshold_reproduces_the_eer_on_float32_scores(data):
    """For float32 scores a hair apart too, far_frr at the returned threshold is the EER point."""
    scores, targets = data
    points = _brute_points(scores, targets)  # float32 values are exact as Python floats
    best = min(_eer_key(far, frr) for _, far, frr in points)
    value, threshold = eer(scores, targets)
    assert value == pytest.approx(float(best[1] / 2), abs=1e-12)
    fa, fr = _counts(scores.tolist(), targets.tolist(), threshold)
    positives = int(targets.sum())
    negatives = len(targets) - positives
    assert _eer_key(Fraction(fa, negatives), Fraction(fr, positives)) == best
    assert far_frr(scores, targets, threshold) == (fa / negatives, fr / positives)


@given(labelled_scores())
def test_roc_is_the_brute_force_roc(data):
    """roc(): thresholds +inf then every distinct score, descending; fpr and tpr counted."""
    scores, targets = data
    fpr, tpr, thresholds = roc(scores, targets)
    points = _brute_points(scores, targets)
    assert thresholds.tolist() == [t for t, _, _ in points]
    assert fpr.tolist() == pytest.approx([float(far) for _, far, _ in points], abs=1e-6)
    assert tpr.tolist() == pytest.approx([float(1 - frr) for _, _, frr in points], abs=1e-6)


@given(labelled_scores())
def test_auroc_counts_ties_half(data):
    """auroc() is the fraction of (positive, negative) pairs ranked right, ties counted half."""
    scores, targets = data
    s, y = scores.tolist(), targets.tolist()
    pos = [v for v, t in zip(s, y, strict=True) if t == 1]
    neg = [v for v, t in zip(s, y, strict=True) if t == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    assert auroc(scores, targets) == pytest.approx(wins / (len(pos) * len(neg)), abs=1e-6)


# -- pairs ----------------------------------------------------------------------------------------


@st.composite
def sample_tables(draw, min_writers=1, max_writers=5):
    """Samples of a few writers: 0-5 genuine and 0-3 forged each, in a drawn order."""
    samples = []
    for w in range(draw(st.integers(min_writers, max_writers))):
        genuine = draw(st.integers(0, 5))
        forged = draw(st.integers(0, 3))
        samples += [Sample(Path(f"w{w}/g{n}.png"), f"w{w}", True) for n in range(genuine)]
        samples += [Sample(Path(f"w{w}_forg/f{n}.png"), f"w{w}", False) for n in range(forged)]
    return draw(st.permutations(samples))


def _check_pair_kinds(samples, pairs) -> None:
    """Each pair's target and kind say who wrote its two images (pairs.py's docstring)."""
    for pair in pairs:
        a, b = samples[pair.a], samples[pair.b]
        assert pair.target == int(pair.kind == GENUINE)
        if pair.kind == GENUINE:  # two genuine signatures of one writer, two images
            assert a.genuine and b.genuine and a.writer == b.writer and pair.a != pair.b
        elif pair.kind == SKILLED:  # a writer's genuine against a forgery of that writer
            assert a.genuine and not b.genuine and a.writer == b.writer
        else:  # genuine signatures of two writers
            assert pair.kind == RANDOM
            assert a.genuine and b.genuine and a.writer != b.writer


@given(
    sample_tables(),
    st.integers(2, 40),
    st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    st.integers(0, 2**16),
)
def test_make_pairs_labels_match_writers_and_kinds(samples, n_pairs, skilled_fraction, seed):
    """Half positive; every pair's label says who wrote it; writers take turns; unique pairs
    come before repeats; the same seed makes the same pairs."""
    genuine = Counter(s.writer for s in samples if s.genuine)
    try:
        pairs = make_pairs(samples, n_pairs, skilled_fraction, seed)
    except DatasetError:
        # only when the samples cannot make such pairs: no writer with two genuine signatures
        # for a positive pair, or fewer than two writers for a random one
        assert max(genuine.values(), default=0) < 2 or len(genuine) < 2
        return
    assert len(pairs) == n_pairs
    assert sum(p.target for p in pairs) == n_pairs // 2
    _check_pair_kinds(samples, pairs)
    assert make_pairs(samples, n_pairs, skilled_fraction, seed) == pairs
    # positives: writers with two genuine take turns (counts differ by at most one), and a
    # writer repeats a pair only when all of theirs are used
    positive = [p for p in pairs if p.kind == GENUINE]
    turns = Counter(samples[p.a].writer for p in positive)
    eligible = [w for w, n in genuine.items() if n >= 2]
    counts = [turns.get(w, 0) for w in eligible]
    assert max(counts) - min(counts) <= 1
    for writer in eligible:
        mine = [frozenset((p.a, p.b)) for p in positive if samples[p.a].writer == writer]
        available = math.comb(genuine[writer], 2)
        assert len(set(mine)) == min(len(mine), available)


@given(
    sample_tables(min_writers=3, max_writers=6),
    st.integers(0, 2),
    st.integers(2, 24),
    st.integers(0, 2**16),
)
def test_pairs_never_cross_a_split(samples, fold, n_pairs, seed):
    """As the pair datamodule makes them: each split's pairs hold only that split's writers,
    and no forgery whose forger is a writer of a later split."""
    # a known forger for some forgeries: the writer after the one they imitate
    writers = sorted({s.writer for s in samples}, key=natural_key)
    assume(len(writers) >= 3)
    forger = {w: writers[(i + 1) % len(writers)] for i, w in enumerate(writers)}
    samples = [
        s if s.genuine or n % 2 else Sample(s.path, s.writer, False, forger[s.writer])
        for n, s in enumerate(samples)
    ]
    parts = split_writers(writers, folds=3, fold=fold, val=1, seed=seed)
    splits = ("train", "val", "test")
    for offset, name in enumerate(splits):
        later = [w for split in splits[offset + 1 :] for w in parts[split]]
        chosen = samples_of(samples, parts[name], held_out=later)
        try:
            pairs = make_pairs(chosen, n_pairs, 0.5, seed + offset)
        except DatasetError:
            continue
        _check_pair_kinds(chosen, pairs)
        for pair in pairs:
            for sample in (chosen[pair.a], chosen[pair.b]):
                assert sample.writer in parts[name]
                assert sample.forger not in later


@given(sample_tables(max_writers=4), st.data())
def test_pairs_within_is_every_labelled_pair_of_the_batch(samples, data):
    """pairs_within: genuine-genuine (genuine or random by writer) and genuine-forgery of one
    writer (skilled, genuine first), each once; nothing else."""
    indices = (
        data.draw(st.lists(st.sampled_from(range(len(samples))), unique=True)) if samples else []
    )
    expected = set()
    for a, b in itertools.combinations(indices, 2):
        sa, sb = samples[a], samples[b]
        if sa.genuine and sb.genuine:
            same = sa.writer == sb.writer
            expected.add((a, b, int(same), GENUINE if same else RANDOM))
        elif sa.writer == sb.writer and sa.genuine != sb.genuine:
            expected.add((a, b, 0, SKILLED) if sa.genuine else (b, a, 0, SKILLED))
    pairs = pairs_within(samples, indices)
    assert len(pairs) == len(expected)
    assert {(p.a, p.b, p.target, p.kind) for p in pairs} == expected
    _check_pair_kinds(samples, pairs)


# -- splits ---------------------------------------------------------------------------------------


def _size(amount: float, total: int) -> int:
    """splits.py's rule: a fraction (< 1) of `total`, at least 1 when not 0; else a count."""
    if amount == 0:
        return 0
    return max(1, round(amount * total)) if amount < 1 else int(amount)


split_amounts = st.sampled_from([0, 1, 2, 0.1, 0.15, 0.2, 0.3])


@st.composite
def genuine_tables(draw):
    """Writers with 1-12 genuine signatures (and some forgeries), in a drawn order."""
    samples = []
    for w in draw(st.sets(st.integers(0, 30), min_size=1, max_size=5)):
        samples += [
            Sample(Path(f"w{w}/{n}.png"), f"w{w}", True) for n in range(draw(st.integers(1, 12)))
        ]
        samples += [Sample(Path(f"w{w}_forg/{n}.png"), f"w{w}", False) for n in range(2)]
    return draw(st.permutations(samples))


@given(genuine_tables(), split_amounts, split_amounts, st.integers(0, 2**16), st.data())
def test_split_per_writer_is_a_seeded_per_writer_partition(samples, val, test, seed, data):
    """Each writer's genuine signatures, and only they, fall in exactly one split, in the
    documented numbers; the same seed gives the same split whatever the order of the samples;
    a writer's split does not depend on which other writers exist."""
    by_writer = Counter(s.writer for s in samples if s.genuine)
    too_few = [w for w, n in by_writer.items() if n - _size(val, n) - _size(test, n) < 1]
    if too_few:
        with pytest.raises(DatasetError, match="genuine image"):
            split_per_writer(samples, val, test, seed)
        return
    parts = split_per_writer(samples, val, test, seed)
    everything = [s for part in parts.values() for s in part]
    assert Counter(everything) == Counter(s for s in samples if s.genuine)  # each exactly once
    for writer, n in by_writer.items():
        for name, amount in (("val", val), ("test", test)):
            assert sum(s.writer == writer for s in parts[name]) == _size(amount, n)
    assert split_per_writer(data.draw(st.permutations(samples)), val, test, seed) == parts
    writer = data.draw(st.sampled_from(sorted(by_writer)))
    alone = split_per_writer([s for s in samples if s.writer == writer], val, test, seed)
    for name, part in parts.items():
        assert [s for s in part if s.writer == writer] == alone[name]


@given(
    st.sets(st.integers(0, 99), min_size=2, max_size=20),
    st.integers(2, 5),
    st.sampled_from([0, 1, 2, 0.2, 0.5]),
    st.integers(0, 2**16),
    st.booleans(),
    st.data(),
)
def test_split_writers_folds_partition_the_writers(numbers, folds, val, seed, rotate_val, data):
    """Every fold splits the writers into disjoint train/val/test (sorted, `val` of the non-test
    writers); over the folds each writer is tested exactly once; the split depends on the set
    of writers only (not their order or repeats), and fold 0 is the same with rotate_val."""
    writers = [f"w{n}" for n in sorted(numbers)]
    assume(len(writers) >= folds)
    tested = []
    for fold in range(folds):
        try:
            parts = split_writers(writers, folds, fold, val, seed, rotate_val)
        except DatasetError:  # only when no training writer would remain
            n_test = len(np.array_split(np.arange(len(writers)), folds)[fold])
            rest = len(writers) - n_test
            assert rest - _size(val, rest) < 1
            return
        train, valid, test = parts["train"], parts["val"], parts["test"]
        assert Counter(train + valid + test) == Counter(writers)
        assert all(part == sorted(part, key=natural_key) for part in parts.values())
        assert len(valid) == _size(val, len(writers) - len(test)) and train
        shuffled = data.draw(st.permutations(writers + writers[:2]))
        assert split_writers(shuffled, folds, fold, val, seed, rotate_val) == parts
        if fold == 0:
            assert split_writers(writers, folds, 0, val, seed, not rotate_val) == parts
        tested += test
    assert sorted(tested) == sorted(writers)


# -- preprocessing --------------------------------------------------------------------------------


@given(
    arrays(np.uint8, st.tuples(st.integers(1, 48), st.integers(1, 48))),
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from(["paper", "normalized"]),
)
def test_preprocess_makes_the_asked_size_from_any_image(grey, height, width, mode):
    out = preprocess(grey, mode, (height, width))
    assert out.shape == (height, width) and out.dtype == np.uint8


@st.composite
def pages(draw, max_noise=12.0):
    """(grey page, stroke mask): paper of a drawn grey level with gaussian or uniform noise of
    up to `max_noise` grey levels, and a few dark strokes, at least 60 levels darker."""
    height, width = draw(st.integers(24, 90)), draw(st.integers(24, 140))
    paper = draw(st.integers(110, 255))
    ink = draw(st.integers(0, paper - 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    amplitude = draw(st.floats(1.0, max_noise))
    if draw(st.booleans()):
        noise = rng.normal(0, amplitude, (height, width))
    else:
        noise = rng.uniform(-2 * amplitude, 2 * amplitude, (height, width))
    strokes = Image.new("L", (width, height), 0)
    pen = ImageDraw.Draw(strokes)
    for _ in range(draw(st.integers(1, 3))):
        points = draw(
            st.lists(
                st.tuples(st.integers(2, width - 3), st.integers(2, height - 3)),
                min_size=2,
                max_size=5,
            )
        )
        pen.line(points, fill=255, width=draw(st.integers(1, 4)))
    mask = np.asarray(strokes) > 0
    assume(mask.sum() >= 6)
    grey = np.where(mask, ink, paper) + noise
    return np.clip(np.round(grey), 0, 255).astype(np.uint8), mask


def _through_normalize(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`mask` (as 255) cropped to its bounding box, centred and resized as normalize() does
    with the ink."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.uint8) * 255
    return _resize(_centre_on_canvas(crop, size[0] / size[1]), *size)


@given(pages(), st.sampled_from([(128, 128), (32, 64), (150, 220), (40, 40)]))
def test_normalized_paper_is_exactly_zero(page, size):
    """What normalize() guarantees, whatever the paper's level and noise: only ink pixels
    (ink_mask) reach the output. Every output pixel is at most the ink mask's own image through
    the same crop, centring and resize, so wherever no ink pixel reaches, the output is exactly
    0 (background_value), never noise."""
    grey, _ = page
    mask = ink_mask(grey)
    assume(mask.any())
    out = normalize(grey, size)
    bound = _through_normalize(mask, size)
    assert (out <= bound).all()
    assert (out[bound == 0] == background_value("normalized")).all()


@given(pages(max_noise=8.0))
def test_paper_noise_is_not_taken_for_ink(page):
    """On a page whose strokes cover at least 2% of it, ink_mask finds ink only within 3 pixels
    of a stroke: paper noise is not ink. (Not on every page: a stroke of under 1% of a dark,
    noisy page loses to the noise, as Otsu splits the paper's own noise instead; see
    docs/testing.md.)"""
    grey, strokes = page
    assume(strokes.mean() >= 0.02)
    near = np.asarray(
        Image.fromarray(strokes.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(7))
    )
    mask = ink_mask(grey)  # empty for a stroke too faint once blurred: MIN_INK_CONTRAST
    assert not (mask & (near == 0)).any(), "paper noise taken for ink"


# -- the preprocessing cache ---------------------------------------------------------------------


def _save_uncompressed(image: Image.Image, path: Path) -> None:
    """PNG without compression: any drawing of one size makes a file of one byte size."""
    image.save(path, format="PNG", compress_level=0)


@settings(max_examples=15)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["paper", "normalized"]),
            st.sampled_from([(32, 64), (40, 40), (64, 32)]),
            st.booleans(),
        ),
        min_size=2,
        max_size=5,
    )
)
def test_the_preprocessing_cache_is_invisible(tmp_path_factory, steps):
    """preprocess_samples through a shared cache folder returns what it computes without one,
    whatever settings were cached before, and after a file is edited in place to another image
    of the very same byte size (only its modification time tells)."""
    folder = tmp_path_factory.mktemp("cached")
    paths = [folder / f"s{n}.png" for n in range(3)]
    for n, path in enumerate(paths):
        _save_uncompressed(draw_signature(1, n), path)
    samples = [Sample(path, "w1", True) for path in paths]
    for step, (mode, size, edit) in enumerate(steps):
        if edit:
            before = paths[0].stat()
            _save_uncompressed(draw_signature(2, step), paths[0])
            assert paths[0].stat().st_size == before.st_size
            os.utime(paths[0], ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
        cached, _, _ = preprocess_samples(samples, mode, size, cache_dir=folder / "cache")
        fresh, _, _ = preprocess_samples(samples, mode, size, cache_dir=None)
        assert cached.shape == (3, *size) and np.array_equal(cached, fresh)


# -- gallery --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def verifier(siamese_ckpt) -> Verifier:
    return Verifier.from_checkpoint(siamese_ckpt)


embeddings = arrays(
    np.float32, st.tuples(st.integers(1, 6), st.just(16)), elements=st.floats(-2, 2, width=32)
)


@settings(max_examples=30)
@given(embeddings, arrays(np.float32, 16, elements=st.floats(-2, 2, width=32)), st.data())
def test_writer_score_ignores_the_order_of_references(verifier, references, query, data):
    """A writer's score (either rule) and reference spread do not depend on the order their
    references were enrolled in; the spread is the mean distance over pairs of references."""
    order = data.draw(st.permutations(range(len(references))))
    shuffled = references[list(order)]
    for score in ("mean", "normalized"):
        a = writer_score(verifier, query, references, score)
        b = writer_score(verifier, query, shuffled, score)
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    refs = references.astype(np.float64)
    pairs = [np.linalg.norm(x - y) for x, y in itertools.combinations(refs, 2)]
    expected = float(np.mean(pairs)) if pairs else 0.5
    assert reference_spread(shuffled, 0.5) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_verifier_decides_score_at_least_threshold(verifier, threshold, score):
    """A verdict is "same" exactly when score >= threshold, a score at the threshold included."""
    decide = Verifier(verifier.module, threshold=threshold).decide
    assert decide(threshold).same
    assert decide(score).same == (score >= threshold)


WRITERS = (1, 2, 3, 4)


def _gallery(verifier: Verifier, order, reference_orders) -> Gallery:
    gallery = Gallery(verifier)
    for writer in order:
        images = [np.asarray(draw_signature(writer, n)) for n in reference_orders[writer]]
        gallery.enroll(f"w{writer}", images)
    return gallery


@settings(max_examples=12)
@given(
    st.permutations(WRITERS),
    st.fixed_dictionaries({w: st.permutations(range(3)) for w in WRITERS}),
    st.sampled_from(WRITERS),
)
def test_identify_does_not_depend_on_enrolment_order(verifier, order, reference_orders, writer):
    """The ranking, the answer and its score are the same whatever order the writers (and each
    writer's references) were enrolled in."""
    query = np.asarray(draw_signature(writer, 7))
    expected = _gallery(verifier, WRITERS, {w: range(3) for w in WRITERS}).identify(query)
    found = _gallery(verifier, order, reference_orders).identify(query)
    assert [c.writer for c in found.candidates] == [c.writer for c in expected.candidates]
    for got, want in zip(found.candidates, expected.candidates, strict=True):
        assert got.score == pytest.approx(want.score, rel=1e-5, abs=1e-6)
    assert found.writer == expected.writer
    assert found.score == pytest.approx(expected.score, rel=1e-5, abs=1e-6)
