"""LightningDataModules: writer-labelled images for the CNN, labelled pairs for the Siamese network.

Both share one pipeline: find the dataset (generating the embedded synthetic one if no root is
given), scan it, decode and preprocess every image once into a uint8 array, and split. Training
images are augmented on the fly in the DataLoader (`sigid.data.transforms`), or for the CNN, with
``materialize``, read from augmented class folders written once (`sigid.data.augment`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sigid.data.acquisition import RawAcquisition, acquisition_settings
from sigid.data.augment import MANIFEST as AUGMENT_MANIFEST
from sigid.data.augment import distort_deterministic, materialize, request
from sigid.data.cache import default_cache_dir, preprocess_samples
from sigid.data.extra import parse_extra, scan_extra, training_samples
from sigid.data.layouts import DatasetError, Sample, SampleTable, natural_key, scan
from sigid.data.pairs import Pair, WriterBatchSampler, by_image, make_pairs, pairs_within
from sigid.data.preprocess import background_value, options_of
from sigid.data.sharding import Batches, EpochBatches, ShardSampler, ShuffledBatches
from sigid.data.splits import (
    SPLITS,
    claimed_by,
    samples_of,
    split_per_writer,
    split_writers,
)
from sigid.data.synthetic import SYNTHETIC_DEFAULTS, generate
from sigid.data.transforms import augment_preset, build_transform_from_config, to_tensor
from sigid.data.variants import VariantAcquisition, VariantPool, variant_pool

log = logging.getLogger(__name__)

# Training images changed as a scanner, pen or document would: live, or from a variant pool.
Acquire = RawAcquisition | VariantAcquisition


def _image(images: np.ndarray, index: int, acquire: Acquire | None) -> np.ndarray:
    """Image `index`: the cached one, or (`acquire`) one changed as a scanner, pen or document
    would (`sigid.data.acquisition`): read again and changed now, or one of its cached
    variants (`sigid.data.variants`)."""
    changed = acquire(index) if acquire is not None else None
    return images[index] if changed is None else changed


class ImageDataset(Dataset):
    """(image, label) from a uint8 array; the transform draws new augmentation on every access,
    and `acquire` (indices into `images`) a new acquisition change of the raw scan."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        transform=None,
        acquire: Acquire | None = None,
    ) -> None:
        self.images, self.labels, self.transform = images, labels, transform
        self.acquire = acquire

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = _image(self.images, index, self.acquire)
        return to_tensor(image, self.transform), int(self.labels[index])


class PairDataset(Dataset):
    """Pairs as index records; `PairCollate` turns a list of them into a batch."""

    def __init__(self, pairs: Sequence[Pair]) -> None:
        self.pairs = list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Pair:
        return self.pairs[index]


class PairCollate:
    """Batch of pairs holding each distinct image once, so the network embeds it once.

    Returns ``images`` (U, 1, H, W) float in [0, 1], ``left``/``right`` (B,) indices into it,
    ``target`` (B,) float, ``kind`` (B,) long (codes of `sigid.data.pairs.KINDS`) and
    ``writer`` (U,) long: each image's class from `writers` (`PairDataModule._writer_labels`:
    a genuine image's writer index; a forgery's -1, no label, or with ``forgery_classes`` its
    own class "a forgery of" the writer), for an auxiliary writer-classification loss; all -1
    where `writers` is not given.
    ``sample`` (U,) long is each image's index among the split's images: which pairs a batch
    held (what each DDP rank trained on, say).
    """

    def __init__(
        self,
        images: np.ndarray,
        transform=None,
        writers: np.ndarray | None = None,
        acquire: Acquire | None = None,
    ) -> None:
        self.images, self.transform, self.acquire = images, transform, acquire
        self.writers = writers if writers is not None else np.full(len(images), -1, np.int64)

    def __call__(self, pairs: Sequence[Pair]) -> dict[str, torch.Tensor]:
        distinct = sorted({p.a for p in pairs} | {p.b for p in pairs})
        slot = {index: k for k, index in enumerate(distinct)}
        images = [_image(self.images, i, self.acquire) for i in distinct]
        return {
            "images": torch.stack([to_tensor(image, self.transform) for image in images]),
            "left": torch.tensor([slot[p.a] for p in pairs], dtype=torch.long),
            "right": torch.tensor([slot[p.b] for p in pairs], dtype=torch.long),
            "target": torch.tensor([float(p.target) for p in pairs], dtype=torch.float32),
            "kind": torch.tensor([p.kind for p in pairs], dtype=torch.long),
            "writer": torch.from_numpy(self.writers[distinct].astype(np.int64)),
            "sample": torch.tensor(distinct, dtype=torch.long),
        }


class IndexDataset(Dataset):
    """Sample indices; a `WriterBatchSampler` chooses them, `WithinCollate` pairs them."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


class WithinCollate:
    """A batch of sample indices -> a pair batch of every labelled pair among them."""

    def __init__(self, samples: Sequence[Sample], pair_collate: PairCollate) -> None:
        self.samples, self.pair_collate = list(samples), pair_collate

    def __call__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        return self.pair_collate(pairs_within(self.samples, list(indices)))


class SignatureDataModule(L.LightningDataModule):
    """The shared pipeline; subclasses decide how samples are split and served.

    Arguments mirror ``conf/data/*.yaml``: `root`/`layout` locate a dataset (``root: null``
    generates the synthetic one described by `synthetic` under `cache_dir`), `preprocess` holds
    ``mode`` and ``size`` and any robustness option (`sigid.data.preprocess.OPTIONS`),
    `augment` the on-the-fly training augmentation (null: none),
    `test_distortion` an optional fixed distortion of the test images (the paper's heavier test),
    as ranges or the name of a ``conf/data/augment`` preset such as ``heavy``; `acquisition`
    (null: off) changes training images as another scanner, pen or document would, on the raw
    scan before preprocessing (``{p, transforms, strengths, variants}``,
    `sigid.data.acquisition`; with ``variants: N``, N changed versions per image made once and
    cached, `sigid.data.variants`);
    `extra` lists other collections whose writers join the training split
    (`sigid.data.extra`; pairs only).
    """

    def __init__(
        self,
        root: str | None,
        layout: str,
        preprocess: Mapping[str, Any],
        split: Mapping[str, Any],
        augment: Mapping[str, Any] | None = None,
        test_distortion: str | Mapping[str, Any] | None = None,
        pairs: Mapping[str, Any] | None = None,
        materialize: int | None = None,
        synthetic: Mapping[str, Any] | None = None,
        cache_dir: str | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        skip_bad_images: bool = False,
        acquisition: Mapping[str, Any] | None = None,
        extra: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.root, self.layout = root, layout
        self.preprocess = {
            "mode": str(preprocess["mode"]),
            "size": [int(v) for v in preprocess["size"]],
            **options_of(preprocess),  # the robustness options set true; none: as before
        }
        self.split = dict(split)
        self.augment = dict(augment) if augment else None
        if isinstance(test_distortion, str):
            test_distortion = augment_preset(test_distortion)
        self.test_distortion = dict(test_distortion) if test_distortion else None
        self.acquisition = acquisition_settings(acquisition)
        self.pairs_cfg = dict(pairs) if pairs else {}
        self.materialize = materialize
        self.synthetic = dict(synthetic or {})
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.skip_bad_images = skip_bad_images
        # collections whose writers join the training split (pair runs; `sigid.data.extra`)
        self.extra = parse_extra(extra, self.preprocess)
        self.extra_records: dict[str, dict[str, Any]] = {}
        self.table: SampleTable | None = None
        self.samples: dict[str, list[Sample]] = {}
        self.images: dict[str, np.ndarray] = {}
        # the dataset's samples of a split whose images are made from them (materialised copies)
        self.sources: dict[str, list[Sample]] = {}
        # each collection's samples as preprocessed (the primary's, then each extra's): what a
        # variant pool is made for, so that every fold of the collection shares it
        self.collections: list[list[Sample]] = []
        self.variant_pools: list[VariantPool] | None = None

    # --- dataset location ---------------------------------------------------------------
    def dataset_root(self) -> Path:
        """The dataset folder, generating the synthetic set (once, cached) when root is null."""
        if self.root is not None:
            root = Path(self.root).expanduser()
            if not root.exists():  # conf/paths: data_dir is $SIGID_DATA, else ./data
                raise DatasetError(
                    f"{root}: no such file or folder (data.root; the data configs look under "
                    "$SIGID_DATA, else ./data: set SIGID_DATA=<folder of your datasets> or "
                    "data.root=<the dataset's folder>)"
                )
            return root
        if not self.synthetic:
            raise DatasetError(
                f"data.root is not set: point it at your dataset (layout {self.layout!r}), "
                "e.g. data.root=/path/to/scans"
            )
        # The newer options at their defaults are left out of the tag: the default set keeps
        # the cache folder it always had.
        keyed = {
            k: v
            for k, v in self.synthetic.items()
            if k not in SYNTHETIC_DEFAULTS or v != SYNTHETIC_DEFAULTS[k]
        }
        tag = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]
        return generate(self.cache_dir / "synthetic" / tag, **self.synthetic)

    @property
    def fill(self) -> int:
        return background_value(self.preprocess["mode"])

    def prepare_data(self) -> None:
        self.dataset_root()

    def _scan(self) -> SampleTable:
        root = self.dataset_root()
        _refuse_augmented_set(root)
        table = scan(root, self.layout)
        table.require_writers(2)
        return table

    def _load(
        self, samples: Sequence[Sample], preprocessed: bool = False
    ) -> tuple[np.ndarray, list[Sample]]:
        images, kept, skipped = preprocess_samples(
            samples,
            None if preprocessed else self.preprocess["mode"],
            tuple(self.preprocess["size"]),
            self.cache_dir,
            self.skip_bad_images,
            options_of(self.preprocess),
        )
        if self.table is not None:
            self.table.skipped.extend(skipped)
        return images, kept

    def _train_transform(self):
        return build_transform_from_config(self.augment, self.fill) if self.augment else None

    def _acquire(self, split: str, keep: np.ndarray | None = None) -> Acquire | None:
        """The acquisition augmentation of `split`'s images (those `keep` selects), training
        only, and never for materialised copies (their files are augmented images): live
        (`RawAcquisition`), or with ``variants`` from the collections' variant pools."""
        if self.acquisition is None or split != "train" or self.materialize:
            return None
        samples = self.samples[split]
        paths = [s.path for s, kept in zip(samples, keep if keep is not None else
                 [True] * len(samples), strict=True) if kept]  # fmt: skip
        settings = dict(self.acquisition)
        count = settings.pop("variants", None)
        if count is None:
            return RawAcquisition(paths, self.preprocess, **settings)
        rows = self._variant_rows(count)
        return VariantAcquisition([rows[path] for path in paths], settings["p"])

    def _variant_rows(self, count: int) -> dict[Path, tuple[VariantPool, int]]:
        """Each preprocessed image's variant pool and row there, the pools made once per
        collection (all its images, whatever the split) or read from the cache."""
        if self.variant_pools is None:
            names = self.acquisition["transforms"], self.acquisition["strengths"]
            self.variant_pools = [
                variant_pool(
                    [s.path for s in samples], self.preprocess, *names, count, self.cache_dir
                )
                for samples in self.collections
            ]
        return {
            sample.path: (pool, row)
            for pool, samples in zip(self.variant_pools, self.collections, strict=True)
            for row, sample in enumerate(samples)
        }

    def _distort_test(self) -> None:
        if self.test_distortion and "test" in self.images:
            transform = build_transform_from_config(self.test_distortion, self.fill)
            self.images["test"] = distort_deterministic(self.images["test"], transform, self.seed)

    @property
    def pin_memory(self) -> bool:
        """Batches in page-locked memory, copied to the GPU faster (and asynchronously), where
        the trainer's device is a CUDA GPU; without a trainer or on the CPU, not."""
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def _loader(
        self, dataset: Dataset, shuffle: bool, collate_fn=None, batch_size: int | None = None
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=collate_fn,
        )

    def split_manifest(self) -> dict[str, Any]:
        """Writers and files of each split, for ``split.json``: proof of what was trained on.

        The files are the dataset's: for materialised copies, the scans they were made from.
        """
        manifest: dict[str, Any] = {
            name: {
                "writers": sorted({s.writer for s in samples}),
                "files": [str(s.path.absolute()) for s in self.sources.get(name, samples)],
            }
            for name, samples in self.samples.items()
        }
        if self.extra_records:  # its writers and files are in "train" too
            manifest["extra"] = self.extra_records
        return manifest


def _refuse_augmented_set(root: Path) -> None:
    """Refuse `sigid augment` output: any split of it puts copies of one scan in training and
    test, and its file names differ, so no leak check can see it."""
    folder = root if root.is_dir() else root.parent
    made = next((f for f in (folder, *folder.parents) if (f / AUGMENT_MANIFEST).is_file()), None)
    if made is not None:
        raise DatasetError(
            f"{made}: an augmented set (it holds {AUGMENT_MANIFEST}, as `sigid augment` writes): "
            "copies of one scan would land in training, validation and test alike; train on the "
            "source scans with data.materialize=N, which augments the training split only"
        )


class ClassFolderDataModule(SignatureDataModule):
    """Images labelled with their writer: per-writer stratified split of genuine signatures.

    With `materialize` (images per writer), fitting first writes the training split out as
    augmented class folders of its preprocessed images, as the paper did (2000 per writer from 88).
    """

    class_names: list[str]

    def setup(self, stage: str | None = None) -> None:
        if self.extra:
            raise DatasetError(
                f"{self.extra[0].where}: extra collections train pair runs (the Siamese "
                "network); identification classes are the primary collection's writers"
            )
        if not self.images:
            self._split()
        # validation and testing never read the training images: only fitting writes them out
        if self.materialize and stage in (None, "fit") and "train" not in self.sources:
            self._use_materialized()

    def _split(self) -> None:
        self.table = self._scan()
        genuine = self.table.genuine
        images, kept = self._load(genuine)
        self.collections = [kept]
        parts = split_per_writer(kept, self.split["val"], self.split["test"], self.seed)
        self.class_names = sorted({s.writer for s in kept}, key=natural_key)
        index = {s.path: i for i, s in enumerate(kept)}
        for name in SPLITS:
            self.samples[name] = parts[name]
            self.images[name] = images[[index[s.path] for s in parts[name]]]
        self._distort_test()

    def _use_materialized(self) -> None:
        """Train on augmented copies of the training split, written to the cache: one folder
        per request, so another request (other ranges, size, seed...) never meets this one's."""
        sources = [(s.path, s.writer) for s in self.samples["train"]]
        asked = (self.materialize, self.seed, self.augment or {})
        made = json.dumps(request(sources, *asked, preprocess=self.preprocess), sort_keys=True)
        folder = self.cache_dir / "augmented" / hashlib.sha256(made.encode()).hexdigest()[:16]
        dst = materialize(sources, folder, *asked, preprocess=self.preprocess)
        copies = scan(dst, "folders").samples
        self.sources["train"] = self.samples["train"]
        self.images["train"], self.samples["train"] = self._load(copies, preprocessed=True)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _labels(self, split: str) -> np.ndarray:
        lookup = {w: i for i, w in enumerate(self.class_names)}
        return np.array([lookup[s.writer] for s in self.samples[split]], dtype=np.int64)

    def dataset(self, split: str) -> ImageDataset:
        transform = self._train_transform() if split == "train" and not self.materialize else None
        return ImageDataset(
            self.images[split], self._labels(split), transform, self._acquire(split)
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("train"), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), shuffle=False)


# The settings of a writer-disjoint split, named in its errors.
SPLIT_KEYS = ("folds", "fold", "val_writers")

# Fewer training writers than this is warned about: the network sees too few hands to generalise.
MIN_TRAIN_WRITERS = 3


class PairDataModule(SignatureDataModule):
    """Labelled same/different pairs over a writer-disjoint split (k-fold over writers)."""

    pairs: dict[str, list[Pair]]

    def setup(self, stage: str | None = None) -> None:
        if self.materialize:
            raise ValueError(
                f"data.materialize={self.materialize}: augmented class folders are for "
                "identification (ClassFolderDataModule); pairs are augmented on the fly "
                "(data.augment), so set data.materialize=null"
            )
        if self.images:
            return
        self.table = self._scan()
        images, kept = self._load(self.table.samples)
        self.collections = [kept]
        try:  # over people: chinese_names' ten units of one writer stay on one side
            people = split_writers(
                sorted({s.person for s in kept if s.genuine}),
                folds=int(self.split["folds"]),
                fold=int(self.split["fold"]),
                val=self.split["val_writers"],
                seed=self.seed,
                rotate_val=bool(self.split.get("rotate_val", False)),
            )
        except DatasetError as err:  # say which data and which settings
            raise DatasetError(f"{self.table.root}: {err} ({self._split_keys()})") from err
        self._warn_if_few(people)
        # checked and preprocessed before any pair is drawn: a bad collection fails at once
        extra_samples, extra_images = self._extra_training() if self.extra else ([], None)
        writers = claimed_by(kept, people)
        index = {s.path: i for i, s in enumerate(kept)}
        self.pairs = {}
        skilled = float(self.pairs_cfg["skilled_fraction"])
        for offset, name in enumerate(SPLITS):
            # no forgery by a writer of a later split: training never sees a test writer's hand
            # (forgers are people: a manifest's forger column, Sample.person)
            later = [w for split in SPLITS[offset + 1 :] for w in people[split]]
            samples = samples_of(kept, writers[name], held_out=later)
            self.samples[name] = samples
            self.images[name] = images[[index[s.path] for s in samples]]
            if name == "train" and extra_samples:
                samples = self.samples[name] = samples + extra_samples
                self.images[name] = np.concatenate([self.images[name], extra_images])
            count = int(self.pairs_cfg[name])
            try:
                pairs = make_pairs(samples, count, skilled, self.seed + offset)
            except DatasetError as err:
                raise DatasetError(f"{name} split ({', '.join(writers[name])}): {err}") from err
            # validation and test pairs are only scored: in an order whose batches share images
            self.pairs[name] = pairs if name == "train" else by_image(pairs)
        self._distort_test()

    def _extra_training(self) -> tuple[list[Sample], np.ndarray]:
        """The extra collections' training samples (prefixed names) and their images,
        preprocessed as the primary collection's; their records go to ``split.json``."""
        samples: list[Sample] = []
        images: list[np.ndarray] = []
        fold = int(self.split["fold"])
        for extra in self.extra:
            table = scan_extra(extra)
            loaded, kept = self._load(table.samples)
            self.collections.append(kept)
            chosen, record = training_samples(extra, kept, fold, self.seed)
            index = {s.path: i for i, s in enumerate(kept)}
            samples += chosen
            images.append(loaded[[index[s.path] for s in chosen]])
            record["files"] = len(chosen)
            self.extra_records[extra.name] = record
            log.info(
                "data: extra collection %s (%s): %d training writers, %d images",
                extra.name, extra.root, len(record["writers"]), len(chosen),
            )  # fmt: skip
        return samples, np.concatenate(images)

    def _split_keys(self) -> str:
        return ", ".join(f"data.split.{k}={self.split.get(k)}" for k in SPLIT_KEYS)

    def _warn_if_few(self, writers: Mapping[str, list[str]]) -> None:
        """A small set's default split can leave one training writer, and the run still ends
        with EER figures: say so, with the counts and the settings that change them."""
        train = writers["train"]
        if len(train) >= MIN_TRAIN_WRITERS:
            return
        log.warning(
            "%s: the writer-disjoint split leaves %d training writer(s) (%s), %d validation and "
            "%d test, of %d writers (%s): too few to learn what tells writers apart; lower "
            "data.split.val_writers or raise data.split.folds",
            self.table.root, len(train), ", ".join(train), len(writers["val"]),
            len(writers["test"]), sum(map(len, writers.values())), self._split_keys(),
        )  # fmt: skip

    def dataset(self, split: str) -> PairDataset:
        return PairDataset(self.pairs[split])

    @property
    def train_writers(self) -> list[str]:
        """The training writers, in the order of the writer labels of training batches."""
        return sorted({s.writer for s in self.samples["train"] if s.genuine}, key=natural_key)

    @property
    def writer_classes(self) -> int:
        """Classes of the training images' labels: each training writer, and with
        ``pairs.forgery_classes`` also "a forgery of" each (SigNet-F's idea: the features must
        then also tell a writer's genuine signatures from imitations of them)."""
        return len(self.train_writers) * (2 if self.pairs_cfg.get("forgery_classes") else 1)

    def collate(self, split: str) -> PairCollate:
        if split != "train":
            return PairCollate(self.images[split])
        return PairCollate(
            self.images["train"], self._train_transform(), self._writer_labels(),
            self._acquire("train"),
        )  # fmt: skip

    def _writer_labels(self) -> np.ndarray:
        """Per training image: its writer's index; a forgery gets -1 (no label), or with
        ``forgery_classes`` the class after all writers' (writers + the writer's index)."""
        lookup = {w: i for i, w in enumerate(self.train_writers)}
        with_forgeries = bool(self.pairs_cfg.get("forgery_classes"))
        labels = []
        for sample in self.samples["train"]:
            if sample.genuine:
                labels.append(lookup[sample.writer])
            else:
                labels.append(len(lookup) + lookup[sample.writer] if with_forgeries else -1)
        return np.array(labels, np.int64)

    def writer_dataloader(self, batch_size: int | None = None) -> DataLoader:
        """The training writers' genuine signatures, augmented, labelled with their writer's
        index (`train_writers`) and shuffled: for training a writer classifier on the training
        writers only (`sigid.training.writer_branch`)."""
        labels = self._writer_labels()
        genuine = np.array([s.genuine for s in self.samples["train"]], dtype=bool)
        dataset = ImageDataset(
            self.images["train"][genuine], labels[genuine], self._train_transform(),
            self._acquire("train", genuine),
        )  # fmt: skip
        return self._loader(dataset, shuffle=True, batch_size=batch_size)

    def train_dataloader(self) -> DataLoader:
        """Fixed pairs in a fresh order each epoch, or with ``pairs.batch`` writer batches and
        all their pairs (`sigid.data.pairs.WriterBatchSampler`). Either is drawn from (seed,
        epoch) alone and, under DDP, shared out over the ranks batch by batch
        (`sigid.data.sharding`)."""
        batch = self.pairs_cfg.get("batch")
        ranks = self._ranks()
        epoch = {"seed": self.seed, "epoch": self._first_epoch(), **ranks}
        if not batch:
            order = ShuffledBatches(len(self.pairs["train"]), self.batch_size, **epoch)
            return self._batch_loader(self.dataset("train"), order, self.collate("train"))
        samples = self.samples["train"]
        return self._batch_loader(
            IndexDataset(len(samples)),
            WriterBatchSampler(samples, **dict(batch), **epoch),
            WithinCollate(samples, self.collate("train")),
        )

    def _batch_loader(
        self, dataset: Dataset, sampler: EpochBatches, collate_fn: Callable
    ) -> DataLoader:
        """A loader of the whole batches `sampler` draws (lists of `dataset`'s indices)."""
        return DataLoader(
            Batches(dataset),
            batch_size=None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=collate_fn,
        )

    def _ranks(self) -> dict[str, int]:
        """This process's place among the trainer's DDP processes (one process: rank 0 of 1)."""
        if self.trainer is None:
            return {"num_replicas": 1, "rank": 0}
        return {"num_replicas": self.trainer.world_size, "rank": self.trainer.global_rank}

    def _first_epoch(self) -> int:
        """The epoch the trainer's next loader is for: a resumed run's first, so that its
        batches are those the uninterrupted run would have drawn. (`current_epoch` still names
        the checkpoint's epoch then; Lightning's samplers count epochs as `processed`.)"""
        if self.trainer is None:
            return 0
        return self.trainer.fit_loop.epoch_progress.current.processed

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> DataLoader:
        """The split's fixed pairs in order; under DDP each rank scores a contiguous share and
        `sigid.tasks.SiameseModule` gathers the scores, so every pair counts once."""
        ranks = self._ranks()
        if len(self.pairs[split]) < ranks["num_replicas"]:
            raise ValueError(
                f"data.pairs.{split}={len(self.pairs[split])}: fewer pairs than the "
                f"{ranks['num_replicas']} DDP processes that score them"
            )
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size,
            sampler=ShardSampler(len(self.pairs[split]), **ranks),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collate(split),
        )
