"""The `sigid` command: dataset tools (scan, synth, augment); later issues add model tools."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sigid.data.layouts import LAYOUTS, SampleTable, scan
from sigid.presets import augment_preset


def _print_table(table: SampleTable) -> None:
    summary = table.summary()
    print(f"{summary['root']}  (layout: {summary['layout']})")
    print(
        f"  writers: {summary['writers']}   genuine: {summary['genuine']}   "
        f"forged: {summary['forged']}   skipped: {len(summary['skipped'])}"
    )
    for reason, count in Counter(s.reason for s in table.skipped).most_common():
        example = next(s.path.name for s in table.skipped if s.reason == reason)
        print(f"  skipped {count} x {reason} (e.g. {example})")
    print("  per writer (genuine/forged):")
    cells = [f"{w}: {c['genuine']}/{c['forged']}" for w, c in summary["per_writer"].items()]
    for start in range(0, len(cells), 6):
        print("    " + "   ".join(cells[start : start + 6]))


def cmd_scan(args: argparse.Namespace) -> int:
    table = scan(args.root, args.layout, verify=True, skip_bad_images=args.skip_bad_images)
    if args.json:
        print(json.dumps(table.summary(), indent=2))
    else:
        _print_table(table)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from sigid.data.synthetic import generate, preview

    start = time.perf_counter()
    out = generate(args.out, args.writers, args.per_writer, args.forgeries, args.seed)
    took = time.perf_counter() - start
    print(
        f"synthetic set: {args.writers} writers x {args.per_writer} genuine + "
        f"{args.forgeries} forgeries in {out} ({took:.1f} s)"
    )
    if args.preview:
        print(f"preview grid: {preview(out, args.preview)}")
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    from sigid.data.augment import materialize

    settings = augment_preset(args.preset)
    for key in ("rotation", "width_shift", "height_shift", "shear", "zoom", "stretch"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    table = scan(args.src, args.layout)
    table.require_writers(1)
    sources = [(s.path, s.writer) for s in table.genuine]
    start = time.perf_counter()
    dst = materialize(sources, args.dst, args.per_class, args.seed, settings)
    took = time.perf_counter() - start
    print(
        f"{len(table.writers)} writers x {args.per_class} images in {dst} "
        f"from {len(sources)} genuine sources ({took:.1f} s)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sigid", description="Offline signature identification and verification toolkit."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("scan", help="find and count the signatures of a dataset")
    p.add_argument("root", type=Path, help="dataset folder (or CSV manifest)")
    p.add_argument("--layout", choices=LAYOUTS, default="auto")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument(
        "--skip-bad-images", action="store_true", help="skip and count unreadable images"
    )
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("synth", help="generate the procedural signature dataset")
    p.add_argument("out", type=Path, help="output folder (paired layout)")
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--per-writer", type=int, default=88, help="genuine signatures per writer")
    p.add_argument("--forgeries", type=int, default=24, help="skilled forgeries per writer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preview", type=Path, metavar="PNG", help="also save a grid of samples")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("augment", help="write augmented class folders (the paper's 2000/writer)")
    p.add_argument("src", type=Path, help="source dataset (genuine images are used)")
    p.add_argument("dst", type=Path, help="output folder, written atomically")
    p.add_argument("--per-class", type=int, default=2000, help="images per writer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", choices=LAYOUTS, default="auto")
    p.add_argument("--preset", default="paper", help="conf/data/augment preset (paper, heavy)")
    for key in ("rotation", "width_shift", "height_shift", "shear", "zoom", "stretch"):
        p.add_argument(f"--{key.replace('_', '-')}", dest=key, type=float, default=None)
    p.set_defaults(func=cmd_augment)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `sigid scan ... | head`
        sys.stderr.close()
        return 0
    except (ValueError, OSError) as err:
        print(f"sigid {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
