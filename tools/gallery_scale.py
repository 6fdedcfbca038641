"""How `Gallery.identify` scales with the number of enrolled writers: time per query and memory.

    .venv/bin/python tools/gallery_scale.py 1000 10000 100000 [--references 5] [--dim 128]
        [--queries 20] [--repeats 3] [--top-k 5] [--folder DIR]

`sigid bench --only gallery` measures the same (with the defaults below); this tool adds the
gallery's shape and a folder that keeps the generated galleries (`--folder`, by default a folder
in the system's temporary folder), so that a second run measures them again without writing
them. The galleries, the child process per size and what its figures mean:
`sigid.bench.gallery`. The CPU may be shared: run it a few times and compare medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

from sigid.bench.gallery import GalleryShape, measure_galleries
from sigid.bench.report import gallery_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("writers", type=int, nargs="+")
    for field in dataclasses.fields(GalleryShape):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=int, default=field.default)
    parser.add_argument(
        "--folder", type=Path, default=Path(tempfile.gettempdir()) / "gallery-scale"
    )
    args = vars(parser.parse_args(argv))
    writers, folder = args.pop("writers"), args.pop("folder")
    folder.mkdir(parents=True, exist_ok=True)
    found = measure_galleries(writers, GalleryShape(**args), lambda line: None, folder=folder)
    print("\n".join(gallery_lines(found)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
