"""The embedded synthetic signature set: layout, files, determinism, safety and realism checks."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shapes import shape_distance, shape_vectors, within_and_between
from test_atomic import read_only_folder

from sigid.data import synthetic
from sigid.data.images import load_image
from sigid.data.preprocess import background_level, ink_mask
from sigid.data.synthetic import generate, preview

WRITERS, GENUINE, FORGED = 3, 6, 3
NAMES = [f"writer{i:02d}" for i in range(1, WRITERS + 1)]


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "set", WRITERS, GENUINE, FORGED, seed=0)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_paired_folder_layout_and_counts(small_set: Path) -> None:
    assert sorted(p.name for p in small_set.iterdir()) == sorted(
        [*NAMES, *(f"{n}_forg" for n in NAMES), "synthetic.json"]
    )
    for name in NAMES:
        genuine = sorted(p.name for p in (small_set / name).iterdir())
        forged = sorted(p.name for p in (small_set / f"{name}_forg").iterdir())
        assert genuine == [f"{name}_g{i:03d}.png" for i in range(1, GENUINE + 1)]
        assert forged == [f"{name}_f{i:03d}.png" for i in range(1, FORGED + 1)]
    meta = json.loads((small_set / "synthetic.json").read_text())
    assert meta["generator"] == "sigid.data.synthetic"
    assert (meta["writers"], meta["per_writer"], meta["forgeries"], meta["seed"]) == (3, 6, 3, 0)
    assert meta["writer_names"] == NAMES
    assert meta["layout"] == "paired_folders"
    # Written atomically: nothing but the set itself, no temporary sibling left behind.
    assert [p.name for p in small_set.parent.iterdir()] == ["set"]


def test_files_are_grey_pngs_with_dark_ink_on_light_paper(small_set: Path) -> None:
    paths = sorted(small_set.rglob("*.png"))
    assert len(paths) == WRITERS * (GENUINE + FORGED)
    for path in paths:
        with Image.open(path) as img:
            assert (img.format, img.mode) == ("PNG", "L")
        grey = load_image(path)
        height, width = grey.shape
        assert 110 <= height <= 300 and 250 <= width <= 720, (path, grey.shape)
        assert 222 <= background_level(grey) <= 252, path
        ink = grey[ink_mask(grey)]
        assert 0.01 < ink.size / grey.size < 0.3, path
        assert np.percentile(ink, 5) < 100, path  # dark ink
        assert len(np.unique(grey)) > 100, path  # antialiased strokes and paper noise, not binary


def test_same_parameters_give_byte_identical_files(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", 2, 3, 1, seed=7)
    b = generate(tmp_path / "b", 2, 3, 1, seed=7)
    c = generate(tmp_path / "c", 2, 3, 1, seed=8)
    files_a, files_b, files_c = _files(a), _files(b), _files(c)
    assert files_a == files_b
    assert files_a.keys() == files_c.keys()
    pngs = [k for k in files_a if k.endswith(".png")]
    assert all(files_a[k] != files_c[k] for k in pngs)


def test_an_image_depends_only_on_seed_writer_and_index(tmp_path: Path, small_set: Path) -> None:
    # A smaller set made in another order holds the very same files for the shared names.
    other = _files(generate(tmp_path / "other", 2, 2, 1, seed=0))
    full = _files(small_set)
    shared = [k for k in other if k.endswith(".png")]
    assert len(shared) == 2 * 3
    assert all(other[k] == full[k] for k in shared)


def test_identical_existing_set_is_reused_untouched(tmp_path: Path) -> None:
    out = generate(tmp_path / "set", 2, 2, 1)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    os.utime(out / "synthetic.json", ns=(1, 1))  # a rewrite would move this stamp
    stamps[out / "synthetic.json"] = 1
    assert generate(tmp_path / "set", 2, 2, 1) == out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_existing_empty_folder_is_filled(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    out = generate(tmp_path / "set", 1, 2, 0)
    assert sorted(p.name for p in out.iterdir()) == ["synthetic.json", "writer01"]
    assert len(list((out / "writer01").iterdir())) == 2


def test_foreign_folder_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    with pytest.raises(ValueError, match=r"mine.*not empty.*synthetic\.json"):
        generate(out, 1, 1, 0)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folder left


def test_set_with_other_parameters_is_refused(tmp_path: Path) -> None:
    out = generate(tmp_path / "set", 1, 2, 1)
    before = _files(out)
    with pytest.raises(ValueError, match=r"set.*per_writer"):
        generate(out, 1, 3, 1)
    with pytest.raises(ValueError, match=r"set.*seed"):
        generate(out, 1, 2, 1, seed=5)
    assert _files(out) == before


def test_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "set").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        generate(tmp_path / "set", 1, 1, 0)


def test_failure_leaves_no_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = synthetic._render

    def flaky(*args: object) -> np.ndarray:
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real(*args)

    monkeypatch.setattr(synthetic, "_render", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate(tmp_path / "set", 2, 3, 1)
    assert list(tmp_path.iterdir()) == []


def test_losing_a_race_to_an_identical_set_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process renames its identical set onto OUT while we are still generating ours.
    out = generate(tmp_path / "set", 1, 2, 1)
    before = _files(out)
    real, seen = synthetic._existing, []

    def absent_at_first(*args: object) -> bool:
        seen.append(args)
        return False if len(seen) == 1 else real(*args)

    monkeypatch.setattr(synthetic, "_existing", absent_at_first)
    assert generate(tmp_path / "set", 1, 2, 1) == out
    assert len(seen) == 2
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"writers": 0}, "writers"),
        ({"per_writer": 0}, "per_writer"),
        ({"forgeries": -1}, "forgeries"),
        ({"seed": -1}, "seed"),
        ({"writers": 2.5}, "writers"),
        ({"per_writer": True}, "per_writer"),
    ],
)
def test_invalid_arguments_are_refused(tmp_path: Path, kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        generate(tmp_path / "set", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_writers_differ_more_than_samples_of_one_writer(small_set: Path) -> None:
    genuine = {name: shape_vectors(small_set / name) for name in NAMES}
    within, between = within_and_between(genuine)
    assert within < 0.85 * between, (within, between)


def _log_aspect(path: Path) -> float:
    mask = ink_mask(load_image(path))
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return float(np.log((cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)))


def test_forgeries_copy_the_shapes_with_proportion_errors(small_set: Path) -> None:
    genuine = {name: shape_vectors(small_set / name) for name in NAMES}
    forged = {name: shape_vectors(small_set / f"{name}_forg") for name in NAMES}
    within, _ = within_and_between(genuine)
    own = np.mean([shape_distance(f, g) for n in NAMES for f in forged[n] for g in genuine[n]])
    other = np.mean(
        [
            shape_distance(f, g)
            for n, m in itertools.permutations(NAMES, 2)
            for f in forged[n]
            for g in genuine[m]
        ]
    )
    # A skilled forgery imitates its writer's shapes: nearer to them than to other writers', and
    # nearer to a genuine-to-genuine distance than to a writer-to-writer one.
    assert own < (within + other) / 2, (within, own, other)
    # But it misjudges proportions: its ink box strays further from the writer's usual one than
    # a genuine sample's does (each genuine sample is left out of its own reference).
    errors: dict[str, list[float]] = {"genuine": [], "forged": []}
    for name in NAMES:
        real = [_log_aspect(p) for p in sorted((small_set / name).glob("*.png"))]
        fake = [_log_aspect(p) for p in sorted((small_set / f"{name}_forg").glob("*.png"))]
        errors["genuine"] += [
            abs(a - np.median(real[:i] + real[i + 1 :])) for i, a in enumerate(real)
        ]
        errors["forged"] += [abs(a - np.median(real)) for a in fake]
    assert np.mean(errors["forged"]) > 1.5 * np.mean(errors["genuine"]), errors


def test_forgeries_are_drawn_with_tremor_and_uniform_width() -> None:
    # Pins the forger's dynamics on the stroke paths themselves (pixels, before rendering).
    roughness: dict[bool, list[float]] = {False: [], True: []}
    spread: dict[bool, list[float]] = {False: [], True: []}
    for w in range(3):
        style = synthetic._style(0, w)
        for forged, j in itertools.product((False, True), range(4)):
            strokes = synthetic._curves(style, np.random.default_rng([w, j]), forged)
            paths = [p for p, _ in strokes if len(p) > 10]
            roughness[forged].append(
                np.mean(np.concatenate([np.hypot(*np.diff(p, 2, axis=0).T) for p in paths]))
            )
            widths = np.concatenate([f for _, f in strokes])
            spread[forged].append(widths.std() / widths.mean())
    assert np.mean(roughness[True]) > 2 * np.mean(roughness[False]), roughness
    assert np.mean(spread[True]) < 0.7 * np.mean(spread[False]), spread


def test_paper_and_ink_are_drawn_alike_for_genuine_and_forged(tmp_path: Path) -> None:
    root = generate(tmp_path / "set", 4, 8, 8, seed=3)
    stats: dict[str, list[tuple[int, float]]] = {"genuine": [], "forged": []}
    for name in ("writer01", "writer02", "writer03", "writer04"):
        for kind, folder in (("genuine", name), ("forged", f"{name}_forg")):
            for path in sorted((root / folder).glob("*.png")):
                grey = load_image(path)
                stats[kind].append((background_level(grey), float(grey[ink_mask(grey)].mean())))
    genuine, forged = np.array(stats["genuine"]), np.array(stats["forged"])
    for column, tolerance in ((0, 5.0), (1, 12.0)):  # paper level, mean grey of the ink
        assert abs(genuine[:, column].mean() - forged[:, column].mean()) < tolerance
        assert abs(genuine[:, column].std() - forged[:, column].std()) < tolerance
    assert genuine[:, 0].min() >= 222 and forged[:, 0].min() >= 222
    assert genuine[:, 0].max() <= 252 and forged[:, 0].max() <= 252


def test_preview_writes_a_grid_of_the_expected_size(small_set: Path, tmp_path: Path) -> None:
    png = preview(small_set, tmp_path / "out" / "grid.png", genuine_per_writer=2)
    (cw, ch), sep = synthetic.PREVIEW_CELL, synthetic.PREVIEW_SEP_W
    with Image.open(png) as img:
        assert img.format == "PNG"
        assert img.size == (
            synthetic.PREVIEW_LABEL_W + 4 * cw + sep,
            synthetic.PREVIEW_HEADER_H + 3 * ch,
        )
        rgb = np.asarray(img.convert("RGB")).astype(int)
    assert os.listdir(png.parent) == ["grid.png"]  # written atomically, no temporary file left
    # The forged block is marked in red: its separator column is red, the genuine block is not.
    x_sep = synthetic.PREVIEW_LABEL_W + 2 * cw + sep // 2
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)
    assert red[:, x_sep].mean() > 0.9
    assert red[:, synthetic.PREVIEW_LABEL_W : synthetic.PREVIEW_LABEL_W + 2 * cw].mean() < 0.01
    # Each cell shows a signature: some dark ink in every cell.
    for r, c in itertools.product(range(3), range(4)):
        x = synthetic.PREVIEW_LABEL_W + c * cw + (sep if c >= 2 else 0)
        y = synthetic.PREVIEW_HEADER_H + r * ch
        assert rgb[y + 6 : y + ch - 6, x + 6 : x + cw - 6].min() < 120, (r, c)


def test_preview_without_forgeries_has_no_separator(small_set: Path, tmp_path: Path) -> None:
    png = preview(small_set, tmp_path / "grid.png", genuine_per_writer=3, forgeries_per_writer=0)
    with Image.open(png) as img:
        assert img.size == (
            synthetic.PREVIEW_LABEL_W + 3 * synthetic.PREVIEW_CELL[0],
            synthetic.PREVIEW_HEADER_H + 3 * synthetic.PREVIEW_CELL[1],
        )


def test_preview_refuses_a_folder_without_writers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to preview"):
        preview(tmp_path, tmp_path / "grid.png")
    with pytest.raises(ValueError, match="at least one"):
        preview(tmp_path, tmp_path / "grid.png", 0, 0)
    assert list(tmp_path.iterdir()) == []


def test_preview_into_a_folder_is_refused_naming_it(small_set: Path, tmp_path: Path) -> None:
    folder = tmp_path / "grid.png"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as err:
        preview(small_set, folder)
    assert str(err.value) == f"{folder}: cannot write: it is a folder, not a file"
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"] and not any(folder.iterdir())


@pytest.mark.parametrize("out", ["afile/set", "afile/sub/set"])
def test_output_under_a_file_is_refused_naming_both(tmp_path: Path, out: str) -> None:
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(NotADirectoryError) as err:
        generate(tmp_path / out, 1, 1, 0)
    blocker = tmp_path / "afile"
    assert str(err.value) == f"{tmp_path / out}: cannot write: {blocker} is a file, not a folder"
    with pytest.raises(NotADirectoryError, match="afile is a file, not a folder"):
        preview(tmp_path, tmp_path / out / "grid.png")
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]


def test_read_only_parent_names_the_output_not_a_temporary_folder(tmp_path: Path) -> None:
    folder = read_only_folder(tmp_path / "ro")
    try:
        with pytest.raises(PermissionError) as err:
            generate(folder / "set", 1, 1, 0)
        assert str(err.value) == f"{folder / 'set'}: cannot write (permission denied)"
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []
