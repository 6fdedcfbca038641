"""Everything between a folder of scans and a batch of tensors.

file -> `load_image` (grey uint8) -> `preprocess` -> cached uint8 -> augmented tensor -> model.
"""

from sigid.data.images import ImageLoadError, load_image
from sigid.data.layouts import DatasetError, Sample, SampleTable, scan
from sigid.data.preprocess import preprocess

__all__ = [
    "DatasetError",
    "ImageLoadError",
    "Sample",
    "SampleTable",
    "load_image",
    "preprocess",
    "scan",
]
