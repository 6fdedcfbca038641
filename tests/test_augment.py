"""sigid.data.augment: the Keras-style transform, materialised folders, fixed distortions."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw
from test_atomic import read_only_folder
from torch.utils.data import DataLoader, Dataset

from sigid.data import augment
from sigid.data.augment import distort_deterministic, materialize
from sigid.data.images import ImageLoadError, load_image
from sigid.data.preprocess import preprocess
from sigid.data.transforms import (
    KEYS,
    Stretch,
    augment_preset,
    build_transform,
    build_transform_from_config,
)

PAPER = 225  # light-grey paper, so a fill of 255 would be visible
OFF = dict.fromkeys(KEYS, 0.0)

HEAVY = augment_preset("heavy")  # the paper's heavier test distortions


def _signature(rng: np.random.Generator, height: int = 48, width: int = 96) -> Image.Image:
    img = Image.new("L", (width, height), PAPER)
    draw = ImageDraw.Draw(img)
    points = [(int(x), int(y)) for x, y in zip(
        rng.integers(10, width - 10, 6), rng.integers(10, height - 10, 6), strict=True
    )]  # fmt: skip
    draw.line(points, fill=int(rng.integers(10, 60)), width=3)
    return img


@pytest.fixture
def sources(tmp_path: Path) -> list[tuple[Path, str]]:
    """3 writers x 4 scans as PNG files on disk."""
    rng = np.random.default_rng(0)
    samples = []
    for writer in ("alice", "bob", "carol"):
        folder = tmp_path / "scans" / writer
        folder.mkdir(parents=True)
        for i in range(4):
            path = folder / f"{i}.png"
            _signature(rng).save(path)
            samples.append((path, writer))
    return samples


def _page(height: int = 40, width: int = 60, value: int = 128) -> torch.Tensor:
    return torch.full((1, height, width), value, dtype=torch.uint8)


def _rectangle(height: int = 60, width: int = 80) -> torch.Tensor:
    img = _page(height, width, 200)
    img[0, 20:40, 30:50] = 10
    return img


def _bbox(img: torch.Tensor) -> tuple[int, int]:
    """(width, height) of the dark pixels."""
    ys, xs = np.nonzero(img.squeeze(0).numpy() < 100)
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_identity_when_all_ranges_are_zero() -> None:
    img = torch.randint(0, 256, (1, 33, 47), dtype=torch.uint8)
    for transform in (
        build_transform(**OFF),
        build_transform_from_config(None, fill=255),
        build_transform_from_config({}, fill=255),
        build_transform_from_config({"enabled": False, "rotation": 30}, fill=255),
    ):
        assert torch.equal(transform(img), img)


@pytest.mark.parametrize("shape", [(1, 37, 91), (37, 91)])
def test_shape_and_dtype_kept(shape: tuple[int, ...]) -> None:
    img = torch.randint(0, 256, shape, dtype=torch.uint8)
    out = build_transform(**HEAVY)(img)
    assert out.shape == img.shape
    assert out.dtype == torch.uint8
    assert not torch.equal(out, img)


@pytest.mark.parametrize("fill", [255, 0])
@pytest.mark.parametrize("ranges", [{"rotation": 60, "width_shift": 0.4}, {"stretch": 0.5}])
def test_fill_appears_in_uncovered_corners(fill: int, ranges: dict[str, float]) -> None:
    transform = build_transform(**{**OFF, **ranges}, fill=fill)
    torch.manual_seed(0)
    filled = 0
    for _ in range(12):
        out = transform(_page()).squeeze(0)
        corners = [out[0, 0], out[0, -1], out[-1, 0], out[-1, -1]]
        filled += any(int(c) == fill for c in corners)
        # only the page's grey and the fill (and blends of the two) may appear
        assert int(out.min()) >= min(fill, 128) and int(out.max()) <= max(fill, 128)
    assert filled >= 6


def test_stretch_scales_x_and_y_independently() -> None:
    img = _rectangle()
    assert _bbox(img) == (20, 20)
    out = Stretch(0.5).transform(img, {"height": 60, "width": 80, "sx": 1.5, "sy": 0.75})
    width, height = _bbox(out)
    assert abs(width - 30) <= 1 and abs(height - 15) <= 1
    # and the random draws differ between the axes
    transform = build_transform(**{**OFF, "stretch": 0.3})
    torch.manual_seed(1)
    aspects = [w / h for w, h in (_bbox(transform(img)) for _ in range(10))]
    assert max(aspects) - min(aspects) > 0.2


def test_randomness_differs_between_calls_and_follows_manual_seed() -> None:
    transform = build_transform()
    img = _rectangle()
    first, second = transform(img), transform(img)
    assert not torch.equal(first, second)
    torch.manual_seed(123)
    again = transform(img)
    torch.manual_seed(123)
    assert torch.equal(transform(img), again)


class _Repeat(Dataset):
    """The same image 8 times: any difference between items is the transform's randomness."""

    def __init__(self) -> None:
        self.transform = build_transform(fill=200)

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(_rectangle()), index


def test_works_in_dataloader_with_workers() -> None:
    def epoch(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        loader = DataLoader(_Repeat(), batch_size=None, num_workers=2)
        return torch.stack([image for image, _ in loader])

    images = epoch(0)
    assert images.shape == (8, 1, 60, 80) and images.dtype == torch.uint8
    flat = images.flatten(1)
    # workers must not share one random stream: no two items identical
    assert len({tuple(row.tolist()) for row in flat}) == 8
    assert torch.equal(epoch(0), images)
    assert not torch.equal(epoch(1), images)
    # spawn-started workers (macOS, Windows) receive the transform pickled
    clone = pickle.loads(pickle.dumps(build_transform(fill=200)))
    torch.manual_seed(0)
    assert clone(_rectangle()).shape == (1, 60, 80)


def test_from_config_reads_mappings_and_rejects_unknown_keys() -> None:
    cfg = OmegaConf.create({"enabled": True, "rotation": 5, "stretch": 0.2})
    assert not torch.equal(build_transform_from_config(cfg, fill=255)(_rectangle()), _rectangle())
    with pytest.raises(ValueError, match="rotaton"):
        build_transform_from_config({"rotaton": 5}, fill=255)


@pytest.mark.parametrize(
    "bad",
    [{"rotation": -1}, {"zoom": 1.0}, {"stretch": 1.5}, {"width_shift": -0.1}, {"shear": 90}],
)
def test_invalid_ranges_are_rejected(bad: dict[str, float]) -> None:
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        build_transform(**bad)
    with pytest.raises(ValueError, match=name):
        build_transform_from_config(bad, fill=255)


def test_materialize_counts_and_content(tmp_path: Path, sources: list[tuple[Path, str]]) -> None:
    dst = materialize(sources, tmp_path / "aug", per_class=7, seed=0, augment=HEAVY)
    assert dst == tmp_path / "aug"
    for writer in ("alice", "bob", "carol"):
        files = sorted((dst / writer).iterdir())
        assert [f.name for f in files] == [f"{writer}_{i:05d}.png" for i in range(1, 8)]
        own = [path for path, w in sources if w == writer]
        for i, path in enumerate(own):  # the sources first, pixel for pixel
            assert np.array_equal(load_image(files[i]), load_image(path))
        for i in range(4, 7):
            with Image.open(files[i]) as img:
                assert img.mode == "L"
            pixels = load_image(files[i])
            assert not np.array_equal(pixels, load_image(own[i - 4]))
            # uncovered areas take the scan's own paper grey, never white
            assert int(pixels.max()) <= PAPER + 1


def test_materialize_with_preprocessing_augments_the_preprocessed_image(
    tmp_path: Path, sources: list[tuple[Path, str]]
) -> None:
    prepared = {"mode": "normalized", "size": [32, 64]}
    dst = materialize(sources, tmp_path / "aug", 6, seed=0, augment=HEAVY, preprocess=prepared)
    for writer in ("alice", "bob", "carol"):
        files = sorted((dst / writer).iterdir())
        own = [
            preprocess(load_image(path), "normalized", (32, 64))
            for path, w in sources
            if w == writer
        ]
        for i, image in enumerate(own):  # the sources first, as training would see them
            assert np.array_equal(load_image(files[i]), image)
        for i in range(4, 6):
            pixels = load_image(files[i])
            assert pixels.shape == (32, 64) and not np.array_equal(pixels, own[i - 4])
            assert pixels[0, 0] == 0  # uncovered areas take the normalized background
    plain = materialize(sources, tmp_path / "plain", 6, seed=0, augment=HEAVY)
    assert json.loads((dst / "augment.json").read_text())["preprocess"] == prepared
    assert "preprocess" not in json.loads((plain / "augment.json").read_text())
    with pytest.raises(ValueError, match="preprocess"):
        materialize(
            sources, dst, 6, seed=0, augment=HEAVY, preprocess={**prepared, "mode": "paper"}
        )


def test_materialize_is_deterministic_and_leaves_sources_alone(
    tmp_path: Path, sources: list[tuple[Path, str]]
) -> None:
    before = _digests(tmp_path / "scans")
    first = materialize(sources, tmp_path / "a", per_class=6, seed=3, augment=HEAVY)
    second = materialize(sources, tmp_path / "b", per_class=6, seed=3, augment=HEAVY)
    assert _digests(first) == _digests(second)
    other = materialize(sources, tmp_path / "c", per_class=6, seed=4, augment=HEAVY)
    assert _digests(other) != _digests(first)
    assert _digests(tmp_path / "scans") == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders


@pytest.mark.slow  # spawns 2 processes that import torch: ~3 s idle, 20 s on a busy machine
@pytest.mark.parametrize("prepared", [None, {"mode": "normalized", "size": [32, 64]}])
def test_materialize_pool_matches_in_process(
    tmp_path: Path, sources: list[tuple[Path, str]], monkeypatch: pytest.MonkeyPatch, prepared
) -> None:
    serial = materialize(sources, tmp_path / "serial", 9, 5, HEAVY, preprocess=prepared)
    monkeypatch.setattr(augment, "PARALLEL_MIN", 0)
    monkeypatch.setattr(augment, "CHUNK", 2)
    pooled = materialize(sources, tmp_path / "pooled", 9, 5, HEAVY, preprocess=prepared)
    assert _digests(pooled) == _digests(serial)


def test_materialize_reuses_a_matching_folder(
    tmp_path: Path, sources: list[tuple[Path, str]]
) -> None:
    dst = materialize(sources, tmp_path / "aug", per_class=5, seed=0, augment={"rotation": 5})
    stamps = {p: p.stat().st_mtime_ns for p in dst.rglob("*")}
    inode = dst.stat().st_ino
    again = materialize(sources, tmp_path / "aug", per_class=5, seed=0, augment={"rotation": 5})
    assert again == dst and dst.stat().st_ino == inode
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*")} == stamps


def test_materialize_refuses_a_different_request(
    tmp_path: Path, sources: list[tuple[Path, str]]
) -> None:
    dst = materialize(sources, tmp_path / "aug", per_class=5, seed=0, augment={"rotation": 5})
    before = _digests(dst)
    with pytest.raises(ValueError, match="seed") as err:
        materialize(sources, dst, per_class=5, seed=1, augment={"rotation": 5})
    assert str(dst) in str(err.value)
    with pytest.raises(ValueError, match="augment"):
        materialize(sources, dst, per_class=5, seed=0, augment={"rotation": 6})
    os.utime(sources[0][0], ns=(1, 1))  # a source changed since
    with pytest.raises(ValueError, match="sources"):
        materialize(sources, dst, per_class=5, seed=0, augment={"rotation": 5})
    assert _digests(dst) == before


def test_materialize_refuses_a_foreign_folder(
    tmp_path: Path, sources: list[tuple[Path, str]]
) -> None:
    dst = tmp_path / "mine"
    dst.mkdir()
    (dst / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="non-empty") as err:
        materialize(sources, dst, per_class=5, seed=0, augment={})
    assert str(dst) in str(err.value)
    assert [p.name for p in dst.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is fine to fill
    assert len(list(materialize(sources, empty, 5, seed=0, augment={}).rglob("*.png"))) == 15


def test_materialize_errors(tmp_path: Path, sources: list[tuple[Path, str]]) -> None:
    extra = (sources[0][0], "bob")  # bob now has 5 sources, the others 4
    with pytest.raises(ValueError, match="bob"):
        materialize([*sources, extra], tmp_path / "aug", per_class=4, seed=0, augment={})
    broken = tmp_path / "scans" / "bob" / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ImageLoadError, match=r"broken\.png"):
        materialize([*sources, (broken, "bob")], tmp_path / "aug", 8, seed=0, augment={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scans"]  # no dst, no temp folder


def test_distort_deterministic(sources: list[tuple[Path, str]]) -> None:
    images = np.stack([load_image(path) for path, _ in sources])
    original = images.copy()
    transform = build_transform(**HEAVY, fill=PAPER)
    torch.manual_seed(9)
    expected_next = torch.rand(3)
    torch.manual_seed(9)
    first = distort_deterministic(images, transform, seed=1)
    assert torch.equal(torch.rand(3), expected_next)  # the global RNG is left alone
    assert first.shape == images.shape and first.dtype == np.uint8
    assert np.array_equal(distort_deterministic(images, transform, seed=1), first)
    assert not np.array_equal(distort_deterministic(images, transform, seed=2), first)
    assert all(not np.array_equal(a, b) for a, b in zip(first, images, strict=True))
    assert np.array_equal(images, original)


def test_materialize_refuses_a_dst_inside_or_around_the_sources(
    tmp_path: Path, sources: list[tuple[Path, str]]
) -> None:
    scans = tmp_path / "scans"
    before = _digests(scans)
    for dst, why in [
        (scans / "alice" / "out", "inside the source folder"),  # a writer's folder
        (scans / "out", "inside the source folder"),  # the dataset folder, when named
        (scans, "is the source folder"),
        (scans / "carol", "is the source folder"),
        (tmp_path, "holds the source folder"),
    ]:
        with pytest.raises(ValueError, match=why) as err:
            materialize(sources, dst, per_class=5, seed=0, augment={}, source_root=scans)
        assert str(err.value).startswith(f"{dst}: cannot write augmented images there")
    with pytest.raises(ValueError, match="inside the source folder"):  # no root: writer folders
        materialize(sources, scans / "bob" / "out", per_class=5, seed=0, augment={})
    assert _digests(scans) == before and sorted(p.name for p in tmp_path.iterdir()) == ["scans"]
    assert materialize(sources, tmp_path / "aug", 5, seed=0, augment={}, source_root=scans).is_dir()


@pytest.mark.parametrize("dst", ["afile/aug", "afile/sub/aug"])
def test_materialize_under_a_file_is_refused_naming_both(
    tmp_path: Path, sources: list[tuple[Path, str]], dst: str
) -> None:
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(NotADirectoryError) as err:
        materialize(sources, tmp_path / dst, per_class=5, seed=0, augment={})
    blocker = tmp_path / "afile"
    assert str(err.value) == f"{tmp_path / dst}: cannot write: {blocker} is a file, not a folder"


def test_materialize_read_only_parent_names_dst(
    tmp_path: Path, sources: list[tuple[Path, str]]
) -> None:
    folder = read_only_folder(tmp_path / "ro")
    try:
        with pytest.raises(PermissionError) as err:
            materialize(sources, folder / "aug", per_class=5, seed=0, augment={})
        assert str(err.value) == f"{folder / 'aug'}: cannot write (permission denied)"
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []
