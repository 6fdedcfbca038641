"""The `sigid` command: dataset tools (scan, synth, augment), trained-model tools, the
sweep summary (summarize), and the bench."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

# light modules only: `sigid --help` loads no torch (tests/test_cli.py)
from sigid.bench import options as bench
from sigid.data.acquisition import STRENGTHS, TRANSFORMS
from sigid.data.layouts import LAYOUTS, SampleTable, scan
from sigid.data.preprocess import OPTIONS, check_options
from sigid.data.synthetic import SCRIPTS
from sigid.errors import hide_dependency_noise
from sigid.evaluation.choices import PROTOCOLS, check_applies
from sigid.inference.gallery.scores import SCORES

if TYPE_CHECKING:
    from sigid.inference.batch import Answer


def _path(text: str) -> Path:
    """A path argument; an empty one is refused (Path("") would quietly be the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def _gallery(text: str) -> Path | str:
    """A gallery argument: a path, or a URI kept as text (``milvus://host:19530/name``)."""
    return text if "://" in text else _path(text)


class _Help(argparse.HelpFormatter):
    """Help that shows every option's default: appended as "(default: X)" unless the help text
    already says it (``%(default)s``, or a described default such as "default: both")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        nothing = action.default is None or action.default is False or action.default == []
        if nothing or action.default is argparse.SUPPRESS or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


class _Renamed(argparse.Action):
    """An old spelling of an option, still accepted: stores into the new option's dest and
    says on stderr that it is deprecated."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        kwargs.setdefault("help", f"deprecated spelling of {new}")
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        _deprecated(parser.prog, f"{option_string} is deprecated; use {self.new}")
        setattr(namespace, self.dest, values)


def _deprecated(prog: str, note: str) -> None:
    print(f"{prog}: note: {note}", file=sys.stderr)


def _out(args: argparse.Namespace) -> Path:
    """The output path: --out, or the positional one of older sigid versions (with a note)."""
    if args.old_out is None:
        if args.out is None:
            raise ValueError("give the output folder: --out DIR")
        return args.out
    if args.out is not None:
        raise ValueError(f"two outputs given: --out {args.out} and {args.old_out}; give --out only")
    _deprecated(
        f"sigid {args.command}", f"a positional output is deprecated; use --out {args.old_out}"
    )
    return args.old_out


def _print_table(table: SampleTable) -> None:
    summary = table.summary()
    print(f"{summary['root']}  (layout: {summary['layout']})")
    units = summary["people"] != summary["writers"]  # chinese_names: (writer, name) units
    who = (
        f"writers: {summary['people']} in {summary['writers']} units (writer, name)"
        if units
        else f"writers: {summary['writers']}"
    )
    print(
        f"  {who}   genuine: {summary['genuine']}   "
        f"forged: {summary['forged']}   skipped: {len(summary['skipped'])}"
    )
    for reason, count in Counter(s.reason for s in table.skipped).most_common():
        example = next(s.path.name for s in table.skipped if s.reason == reason)
        print(f"  skipped {count} x {reason} (e.g. {example})")
    print(f"  per {'unit' if units else 'writer'} (genuine/forged):")
    cells = [f"{w}: {c['genuine']}/{c['forged']}" for w, c in summary["per_writer"].items()]
    for start in range(0, len(cells), 6):
        print("    " + "   ".join(cells[start : start + 6]))


def cmd_scan(args: argparse.Namespace) -> int:
    table = scan(
        args.root,
        args.layout,
        verify=True,
        skip_bad_images=args.skip_bad_images,
        layout_option="--layout ",
    )
    if args.json:
        print(_json(table.summary()))
    else:
        _print_table(table)
    if not table.samples:  # reported, but a script must not mistake it for a dataset
        print(f"sigid scan: error: {args.root}: no signature images found", file=sys.stderr)
        return 1
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from sigid.data.synthetic import check_preview_path, generate, preview

    out = _out(args)
    if args.preview:
        check_preview_path(args.preview)  # before the set is drawn, not after
    start = time.perf_counter()
    out = generate(
        out, args.writers, args.per_writer, args.forgeries, args.seed, args.script,
        args.name_sharing,
    )  # fmt: skip
    took = time.perf_counter() - start
    data: dict[str, Any] = {
        "out": str(out), "writers": args.writers, "per_writer": args.per_writer,
        "forgeries": args.forgeries, "seed": args.seed, "script": args.script,
        "name_sharing": args.name_sharing, "wall_time_s": round(took, 2),
    }  # fmt: skip
    lines = [
        f"synthetic set: {args.writers} writers x {args.per_writer} genuine + "
        f"{args.forgeries} forgeries in {out} ({took:.1f} s)"
    ]
    if args.preview:
        data["preview"] = str(preview(out, args.preview))
        lines.append(f"preview grid: {data['preview']}")
    return _emit(args, data, lines)


def cmd_augment(args: argparse.Namespace) -> int:
    from sigid.data.augment import materialize
    from sigid.data.transforms import augment_preset

    dst = _out(args)
    settings = augment_preset(args.preset)
    for key in AUGMENT_RANGES:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    table = scan(args.src, args.layout, layout_option="--layout ")
    table.require_writers(1)
    sources = [(s.path, s.writer) for s in table.genuine]
    start = time.perf_counter()
    dst = materialize(sources, dst, args.per_writer, args.seed, settings, source_root=args.src)
    took = time.perf_counter() - start
    data = {
        "out": str(dst), "writers": len(table.writers), "per_class": args.per_writer,
        "sources": len(sources), "seed": args.seed, "augment": settings,
        "wall_time_s": round(took, 2),
    }  # fmt: skip
    line = (
        f"{len(table.writers)} writers x {args.per_writer} images in {dst} "
        f"from {len(sources)} genuine sources ({took:.1f} s)"
    )
    return _emit(args, data, [line])


def _json(data: Any) -> str:
    """What --json prints: strict JSON (a NaN is an error, not output a parser refuses)."""
    return json.dumps(data, indent=2, allow_nan=False)


def _emit(args: argparse.Namespace, data: dict, lines: list[str]) -> int:
    """The human-readable lines, or with --json the data."""
    print(_json(data) if args.json else "\n".join(lines))
    return 0


def _ranked(candidates: list[tuple[str, float]]) -> list[str]:
    width = max(len(writer) for writer, _ in candidates)
    return [f"  {n}. {w:<{width}}  {s:.4f}" for n, (w, s) in enumerate(candidates, start=1)]


def _rows_format(args: argparse.Namespace) -> str | None:
    """How to answer the questioned images: None for one image file, answered as before
    (text, or a JSON document with --json); else one row per image in --format (default
    jsonl)."""
    if args.json and args.format is not None:
        raise ValueError("give --json or --format, not both")
    one = len(args.images) == 1 and not args.images[0].is_dir()
    if one and args.format in (None, "text"):
        return None
    return args.format or "jsonl"


def _answer_each(args: argparse.Namespace, answer: Answer) -> int:
    """Answer every questioned image (`_rows_format`): the model is loaded once; an image that
    fails gets its error in its row, the others are answered, and the exit status is 1."""
    from sigid.inference.batch import answer_each, questioned, write_csv, write_jsonl

    form = _rows_format(args)
    if form is None:
        return _emit(args, *answer(args.images[0]))
    items = questioned(args.images)
    rows = answer_each(items, answer)
    if form == "jsonl":
        failed = write_jsonl(rows, sys.stdout)
    elif form == "csv":
        failed = write_csv(rows, sys.stdout)
    else:
        failed = 0
        for row in rows:  # a block per image; the errors on stderr, in turn
            if row.error is not None:
                failed += 1
                print(f"sigid {args.command}: error: {row.error}", file=sys.stderr, flush=True)
            else:
                print(f"{row.image}:", *row.lines, "", sep="\n", flush=True)
    if failed:
        where = "above" if form == "text" else "the error field of their rows"
        print(
            f"sigid {args.command}: error: {failed} of {len(items)} images failed ({where})",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _or_shipped(args: argparse.Namespace) -> Path:
    """``--ckpt``, or for want of it the shipped verifier, which the command names on stderr."""
    if args.ckpt is not None:
        return args.ckpt
    from sigid.inference.shipped import NOTE, shipped_checkpoint

    path = shipped_checkpoint()
    print(f"sigid {args.command}: {NOTE}", file=sys.stderr)
    return path


def cmd_verify(args: argparse.Namespace) -> int:
    if args.clean is not None and args.gallery is not None:
        raise ValueError(
            "--clean: for a pair; a gallery prepares scans as it was created (its options are "
            "set at its first enrolment: sigid enroll --clean; sigid gallery info shows them)"
        )
    if args.gallery is not None:
        if args.writer is None:
            raise ValueError("with --gallery, give --writer NAME and the questioned signatures")
        from sigid.inference.gallery import Gallery

        gallery = Gallery.load(args.gallery, args.ckpt, threshold=args.threshold)
        gallery.require(args.writer)
        count = len(gallery.references(args.writer))

        def answer(image: Path) -> tuple[dict[str, Any], list[str]]:
            verdict = gallery.verify(args.writer, image)
            data = {"writer": args.writer, "image": str(image), **verdict.to_dict()}
            sign = ">=" if verdict.same else "<"
            head = "accepted: matches" if verdict.same else "rejected: does not match"
            lines = [
                f"{head} {args.writer}  (score {verdict.score:.4f} {sign} threshold "
                f"{verdict.threshold:.4f}; {gallery.score} score against {count} references)"
            ]
            return {**data, "references": count, "gallery_score": gallery.score}, lines

        return _answer_each(args, answer)
    if args.writer is not None:
        raise ValueError("--writer needs --gallery G (the gallery the writer is enrolled in)")
    if len(args.images) != 2:
        raise ValueError("give two signatures [--ckpt CHECKPOINT], or --gallery G --writer NAME")
    if args.format is not None:
        raise ValueError("--format: rows of questioned images are for --gallery; a pair: --json")
    from sigid.inference.verifier import Verifier

    options = _clean_options(args.clean)
    verifier = Verifier.from_checkpoint(
        _or_shipped(args), threshold=args.threshold, options=options
    )
    verdict = verifier.verify(*args.images)
    sign = ">=" if verdict.same else "<"
    head = "same writer" if verdict.same else "different writers"
    data = {"a": str(args.images[0]), "b": str(args.images[1]), **verdict.to_dict()}
    if options:
        data["preprocessing"] = verifier.preprocessing
    lines = [f"{head}  (similarity {verdict.score:.4f} {sign} threshold {verdict.threshold:.4f})"]
    return _emit(args, data, lines)


def _clean_options(given: str | None) -> list[str]:
    """``--clean a,b``: the normaliser options to add (`sigid.data.preprocess.OPTIONS`)."""
    if given is None:
        return []
    names = [name.strip() for name in given.split(",") if name.strip()]
    if not names:
        raise ValueError(f"--clean: name at least one of {', '.join(OPTIONS)}")
    try:
        return check_options(names, "option")
    except ValueError as err:
        raise ValueError(f"--clean: {err}") from err


def cmd_identify(args: argparse.Namespace) -> int:
    if args.gallery is not None:
        from sigid.inference.gallery import Gallery
        from sigid.inference.identifier import check_top_k

        gallery = Gallery.load(args.gallery, args.ckpt, threshold=args.threshold)
        gallery.require()
        check_top_k(args.top_k)

        def answer(image: Path) -> tuple[dict[str, Any], list[str]]:
            found = gallery.identify(image, top_k=args.top_k)
            best = found.candidates[0].writer
            how = f"{gallery.score} score"
            head = (
                f"best match: {found.writer}  ({how} {found.score:.4f} >= threshold "
                f"{found.threshold:.4f})"
                if found.writer is not None
                else f"unknown writer: the closest, {best}, has {how} {found.score:.4f} < "
                f"threshold {found.threshold:.4f}"
            )
            ranked = [(c.writer, c.score) for c in found.candidates]
            return found.to_dict(), [head, "candidates (mean similarity):", *_ranked(ranked)]

        return _answer_each(args, answer)
    if args.ckpt is None:
        raise ValueError("give --ckpt CHECKPOINT (a CNN checkpoint) or --gallery G")
    if args.threshold is not None:
        raise ValueError("--threshold applies to --gallery only (a CNN ranks known writers)")
    from sigid.inference.identifier import Identifier, check_top_k

    identifier = Identifier.from_checkpoint(args.ckpt)
    check_top_k(args.top_k)

    def answer(image: Path) -> tuple[dict[str, Any], list[str]]:
        ranked = identifier.identify(image, top_k=args.top_k)
        data = {
            "writer": ranked[0][0],
            "candidates": [{"writer": w, "probability": p} for w, p in ranked],
        }
        return data, [f"most likely: {ranked[0][0]}", "writers (probability):", *_ranked(ranked)]

    return _answer_each(args, answer)


def cmd_enroll(args: argparse.Namespace) -> int:
    from sigid.atomic import check_target
    from sigid.inference.gallery import Gallery, check_writer_name

    check_writer_name(args.writer)  # before the checkpoint is loaded
    new = False
    if isinstance(args.gallery, Path) and not args.gallery.name.endswith(".milvus.db"):
        check_target(args.gallery)  # a read-only gallery or a folder: say so before embedding
        if str(args.gallery).endswith(".npz"):
            from sigid.inference.gallery.npz import read_only_reason

            raise ValueError(
                read_only_reason(str(args.gallery))
                if args.gallery.exists()
                else f"{args.gallery}: new galleries are stores, not .npz files: name it "
                f"{args.gallery.with_suffix('.sqlite')}"
            )
        new = not args.gallery.exists()
    options = _clean_options(args.clean) if args.clean is not None else None
    checkpoint = _or_shipped(args) if new else args.ckpt  # a new gallery's
    gallery = Gallery.open(args.gallery, checkpoint, score=args.score, options=options)
    count = gallery.enroll(args.writer, args.images)
    path = gallery.save()  # nothing to write: the enrolment is in the store
    data = {
        "gallery": str(path),
        "writer": args.writer,
        "added": len(args.images),
        "references": count,
        "writers": len(gallery),
        "checkpoint": str(gallery.verifier.checkpoint),
        "score": gallery.score,
        "options": gallery.options,
    }
    lines = [
        f"enrolled {len(args.images)} signature(s) of {data['writer']} in {path}: {count} "
        f"reference(s) for this writer, {len(gallery)} writer(s) in the gallery"
        + (f" (normaliser options {', '.join(gallery.options)})" if gallery.options else "")
    ]
    return _emit(args, data, lines)


def cmd_gallery(args: argparse.Namespace) -> int:
    """`sigid gallery info|list|remove|convert`: the store, without the model."""
    from sigid.inference.gallery import manage

    if args.action == "info":
        data = manage.info(args.gallery)
        size = f", {data['bytes'] / 1e6:.1f} MB" if "bytes" in data else ""
        mode = " (read-only)" if data["read_only"] else ""
        lines = [
            f"{data['gallery']}: {data['backend']} gallery{mode}{size}",
            f"  writers: {data['writers']}   references: {data['references']}   "
            f"dim: {data['dim']}   score: {data['score']}",
            f"  checkpoint: {data['checkpoint']} (fingerprint {str(data['fingerprint'])[:12]})",
            f"  normaliser options: {', '.join(data['options']) or 'none'}",
        ]
        return _emit(args, data, lines)
    if args.action == "list":
        counts = manage.writers(args.gallery)
        data = {"gallery": str(args.gallery), "writers": counts}
        lines = [f"{writer}\t{count}" for writer, count in counts.items()]
        if args.json:
            print(_json(data))
        elif lines:
            print("\n".join(lines))
        return 0
    if args.action == "remove":
        removed = manage.remove(args.gallery, args.writer)
        data = {"gallery": str(args.gallery), "writer": args.writer, "removed": removed}
        lines = [
            f"removed writer {args.writer} from {args.gallery}: {removed} reference(s) deleted "
            "from the store itself (their bytes overwritten)"
        ]
        return _emit(args, data, lines)
    data = manage.convert(args.gallery, args.new)
    data = {"source": str(args.gallery), **data}
    lines = [
        f"converted {args.gallery} into {data['gallery']}: {data['writers']} writer(s), "
        f"{data['references']} reference(s)"
    ]
    return _emit(args, data, lines)


def cmd_ship(args: argparse.Namespace) -> int:
    from sigid.inference.packaging import ship
    from sigid.inference.shipped import SHIPPED_CHECKPOINT

    record = ship(args.run, args.out or SHIPPED_CHECKPOINT)
    lines = [
        f"shipped verifier: {record['out']} ({record['bytes'] / 1e6:.1f} MB, fingerprint "
        f"{record['fingerprint'][:12]})",
        f"  trained by  {record['command']} (seed {record['seed']})",
    ]
    return _emit(args, record, lines)


def cmd_export(args: argparse.Namespace) -> int:
    from sigid.inference.export import export

    start = time.perf_counter()
    written = export(args.ckpt, args.out, args.formats, name=args.name)
    took = time.perf_counter() - start
    lines = [f"exported {args.ckpt} in {took:.1f} s:"]
    lines += [f"  {kind:<12} {path}" for kind, path in written.items()]
    data = {"checkpoint": str(args.ckpt), "files": {k: str(p) for k, p in written.items()},
            "wall_time_s": round(took, 2)}  # fmt: skip
    return _emit(args, data, lines)


def cmd_ensemble(args: argparse.Namespace) -> int:
    from sigid.training.ensemble import combine

    # run folders and checkpoints are paths; Hydra data overrides are KEY=VALUE
    overrides = [i for i in args.items if "=" in i and not Path(i).exists()]
    runs = [i for i in args.items if i not in overrides]
    result = combine(runs, args.out, overrides)
    lines = [
        f"ensemble of {len(runs)} runs ({result['embeddings']} embeddings) in {args.out}",
        f"  checkpoint        {result['checkpoint']}",
        f"  threshold         {result['threshold']:.4f} (validation EER {result['val/eer']:.4f})",
    ]
    for key in ("test/eer_skilled", "test/eer_random", "test/auroc", "test/far", "test/frr"):
        if key in result:
            lines.append(f"  {key:<17} {result[key]:.4f}")
    return _emit(args, result, lines)


def cmd_probe(args: argparse.Namespace) -> int:
    from sigid.evaluation.probe import shortcut_probe

    result = shortcut_probe(
        args.root, args.layout, args.mode, folds=args.folds, fold=args.fold, seed=args.seed,
        layout_option="--layout ",
    )  # fmt: skip
    train, test = result["train_images"], result["test_images"]
    line = (
        f"shortcut probe ({result['mode']}, fold {result['fold']} of {result['folds']}): "
        f"genuine-vs-forged AUC {result['auc']:.3f} on {len(result['test_writers'])} held-out "
        f"writers ({test['genuine']} genuine + {test['forged']} forged images); trained on "
        f"{len(result['train_writers'])} writers ({train['genuine']} + {train['forged']}) "
        f"in {result['seconds']:.1f} s"
    )
    return _emit(args, result, [line])


def cmd_summarize(args: argparse.Namespace) -> int:
    from sigid.runs.sweep import collect, write_summary

    rows = collect(args.sweep)
    written = write_summary(args.sweep, rows)
    failed = [
        {"job": r["job"], "status": r["status"], "error": r["error"]}
        for r in rows
        if r["status"] != "ok"
    ]
    ok = len(rows) - len(failed)
    data = {"sweep": str(args.sweep), "jobs": len(rows), "ok": ok, "failed": failed,
            "files": [str(path) for path in written]}  # fmt: skip
    stopped = sum(f["status"] == "interrupted" for f in failed)
    counts = f"{ok} ok" + (f", {stopped} interrupted" if stopped else "")
    counts += f", {len(failed) - stopped} failed"
    lines = [f"summary of {len(rows)} job(s) in {args.sweep}: {counts}"]
    lines += [  # interrupted (Ctrl-C, SIGTERM: resumable), or failed and why
        f"  job {f['job']} interrupted" if f["status"] == "interrupted"
        else f"  job {f['job']} {f['status']}: {f['error']}"
        for f in failed
    ]  # fmt: skip
    lines += [f"  {path}" for path in written]
    return _emit(args, data, lines)


def cmd_bench(args: argparse.Namespace) -> int:
    from sigid.bench.api import run_bench
    from sigid.bench.report import format_table

    asked = bench.BenchOptions(
        parts=tuple(args.only or bench.PARTS), device=args.device, rounds=args.rounds,
        steps=args.steps, warmup=args.warmup, gallery_sizes=args.gallery_sizes,
        data=tuple(args.data), checkpoint=args.ckpt,
    )  # fmt: skip
    result = run_bench(asked, progress=lambda line: print(f"sigid bench: {line}", file=sys.stderr))
    print(_json(result) if args.json else format_table(result))
    return 0


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return bench.parse_sizes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _names(text: str) -> list[str]:
    """``a,b``: a comma-separated list of names (checked by the protocol, which names the
    choices)."""
    return [name.strip() for name in text.split(",") if name.strip()]


class _References(argparse.Action):
    """``--references 5 12``: whole numbers. nargs="+" also swallows the overrides that follow
    (``--references 5 12 data=cedar``); those are handed back to the overrides."""

    def __call__(self, parser, namespace, values, option_string=None):
        counts = list(itertools.takewhile(str.isdigit, values))
        if not counts:
            parser.error(f"{option_string}: expected whole numbers, got {values[0]!r}")
        namespace.references = [int(k) for k in counts]
        namespace.spilled_overrides = list(values[len(counts) :])


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sigid.evaluation.api import run_protocol
    from sigid.evaluation.protocols.report import format_result, skipped_references

    if args.protocol == "writer-independent":
        if args.sweep is None or args.ckpt is not None:
            raise ValueError("writer-independent: give --sweep DIR (the folds' runs), not --ckpt")
        target = args.sweep[0] if len(args.sweep) == 1 else args.sweep
    else:
        if args.ckpt is None or args.sweep is not None:
            raise ValueError(f"{args.protocol}: give --ckpt CHECKPOINT (--sweep is for folds)")
        target = args.ckpt  # a run folder too: the protocols take its checkpoints/best.ckpt
    check_applies(args.protocol, "--references", args.references is not None)
    check_applies(args.protocol, "--score", args.score is not None)
    check_applies(args.protocol, "--tta", args.tta is not None)
    options: dict[str, Any] = {"references": args.references} if args.references else {}
    if args.score is not None:
        options["score"] = args.score
    if args.tta is not None:
        from sigid.inference.tta import check_tta

        options["tta"] = check_tta(args.tta, "--tta")
    for option, name in (
        ("--transforms", "transforms"),
        ("--strengths", "strengths"),
        ("--transform-references", "references_too"),
    ):
        given = getattr(args, name)  # None (or False) when not given; `--transforms ""`: []
        check_applies(args.protocol, option, given not in (None, False), ("robustness",))
        if given not in (None, False):
            options[name] = given
    overrides = [*args.overrides, *getattr(args, "spilled_overrides", [])]
    result = run_protocol(args.protocol, target, overrides, seed=args.seed, out=args.out, **options)
    print(_json(result) if args.json else format_result(result))
    if args.json:  # K left out: the table lists them, and beside the JSON, stderr does
        for note in skipped_references(result):
            print(f"sigid evaluate: note: {note}", file=sys.stderr)
    return 0


LAYOUT_HELP = "dataset layout (auto: recognised from the folder; see sigid scan)"
OLD_OUT_HELP = "deprecated: the output folder as a positional argument; use --out"
# augment's options that override one range of the --preset (conf/data/augment/*.yaml)
AUGMENT_RANGES = {
    "rotation": "rotation range, +- degrees",
    "width_shift": "horizontal shift range, +- fraction of the width",
    "height_shift": "vertical shift range, +- fraction of the height",
    "shear": "shear range, +- degrees",
    "zoom": "isotropic zoom range, +- fraction of scale",
    "stretch": "per-axis stretch range, +- fraction of scale",
}


ROW_FORMATS = ("text", "jsonl", "csv")
ROWS_HELP = (
    "output, a row per image with its path and an error field (default: text for one image "
    "file, else jsonl; --json with several is jsonl)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sigid", description="Offline signature identification and verification toolkit."
    )
    parser.add_argument("--version", action="version", version=f"sigid {version('sigid')}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("scan", help="find and count the signatures of a dataset")
    p.add_argument("root", type=_path, help="dataset folder (or CSV manifest)")
    p.add_argument("--layout", choices=LAYOUTS, default="auto", help=LAYOUT_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument(
        "--skip-bad-images", action="store_true", help="skip and count unreadable images"
    )
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser(
        "synth",
        help="generate the procedural signature dataset",
        usage="sigid synth --out DIR [options]",
    )
    p.add_argument("--out", type=_path, metavar="DIR", help="output folder (paired layout)")
    p.add_argument("old_out", type=_path, nargs="?", metavar="OUT", help=OLD_OUT_HELP)
    p.add_argument("--writers", type=int, default=8, help="writers drawn")
    p.add_argument("--per-writer", type=int, default=88, help="genuine signatures per writer")
    p.add_argument("--forgeries", type=int, default=24, help="skilled forgeries per writer")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (same seed, same set)")
    p.add_argument(
        "--script", choices=SCRIPTS, default="latin",
        help="latin cursive names, blocks (square characters of strokes) or mixed",
    )  # fmt: skip
    p.add_argument(
        "--name-sharing", type=int, default=1, metavar="N",
        help="groups of N writers write the same name (default 1: every name its own)",
    )  # fmt: skip
    p.add_argument("--preview", type=_path, metavar="PNG", help="also save a grid of samples")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("augment", help="write augmented class folders (the paper's 2000/writer)")
    p.add_argument("src", type=_path, help="source dataset (genuine images are used)")
    p.add_argument("--out", type=_path, metavar="DIR", help="output folder, written atomically")
    p.add_argument("old_out", type=_path, nargs="?", metavar="DST", help=OLD_OUT_HELP)
    p.add_argument("--per-writer", type=int, default=2000, metavar="N", help="images per writer")
    p.add_argument(
        "--per-class", type=int, action=_Renamed, new="--per-writer", dest="per_writer", metavar="N"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (same seed, same set)")
    p.add_argument("--layout", choices=LAYOUTS, default="auto", help=LAYOUT_HELP)
    p.add_argument(
        "--preset", default="paper", help="conf/data/augment preset (paper, heavy, none)"
    )
    for key, what in AUGMENT_RANGES.items():
        p.add_argument(
            f"--{key.replace('_', '-')}", dest=key, type=float, metavar="X",
            help=f"{what} (default: the preset's)",
        )  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_augment)

    ckpt_help = "with --gallery, default: the checkpoint the gallery was enrolled with"
    threshold_help = "decision threshold in [0, 1] (default: the one stored in the checkpoint)"
    p = sub.add_parser(
        "verify",
        help="same writer? two signatures (Siamese), or one against an enrolled writer",
        usage="sigid verify A B [--ckpt C] [--json]\n"
        "       sigid verify --gallery G --writer NAME IMG|FOLDER [...] [--json | --format F]",
    )
    p.add_argument(
        "images", type=_path, nargs="+", metavar="IMG",
        help="signature images: a pair (--ckpt), or with --gallery questioned images or folders",
    )  # fmt: skip
    p.add_argument(
        "--ckpt", type=_path,
        help=f"Siamese checkpoint or run folder (default: the shipped verifier; {ckpt_help})",
    )  # fmt: skip
    p.add_argument("--gallery", type=_gallery, help="gallery (sigid enroll)")
    p.add_argument("--writer", help="the claimed writer, enrolled in --gallery")
    p.add_argument("--threshold", type=float, help=threshold_help)
    p.add_argument(
        "--clean", metavar="OPTION[,OPTION]",
        help="a pair: add normaliser options to the checkpoint's preprocessing for scans of "
        f"documents ({', '.join(OPTIONS)}; e.g. remove_lines,crop_main,ink_contrast,"
        "remove_stamps: lines, boxes, specks, faint or coloured ink, stamps on colour scans)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.add_argument("--format", choices=ROW_FORMATS, help=ROWS_HELP)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "identify",
        help="who signed? a CNN's known writers (--ckpt), or a gallery's enrolled ones",
        usage="sigid identify --ckpt C IMG|FOLDER [...] [--top-k 5] [--json | --format F]\n"
        "       sigid identify --gallery G IMG|FOLDER [...] [--top-k 5] [--json | --format F]",
    )
    p.add_argument(
        "images", type=_path, nargs="+", metavar="IMG",
        help="questioned signature images, or folders of them",
    )  # fmt: skip
    p.add_argument(
        "--ckpt", type=_path, help=f"CNN checkpoint or run folder, or Siamese ({ckpt_help})"
    )
    p.add_argument("--gallery", type=_gallery, help="gallery (sigid enroll)")
    p.add_argument("--top-k", type=int, default=5, help="candidates shown")
    p.add_argument("--threshold", type=float, help=f"with --gallery: {threshold_help}")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.add_argument("--format", choices=ROW_FORMATS, help=ROWS_HELP)
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser(
        "enroll",
        help="add a writer's reference signatures to a gallery (no retraining)",
        usage="sigid enroll [--ckpt C] [--clean OPTION[,OPTION]] --gallery G --writer NAME "
        "IMG [IMG ...] [--json]",
    )
    p.add_argument("images", type=_path, nargs="+", metavar="IMG", help="reference signatures")
    p.add_argument(
        "--ckpt", type=_path,
        help="Siamese checkpoint or its run folder, for a new gallery (default: the shipped "
        "verifier)",
    )  # fmt: skip
    p.add_argument(
        "--gallery", type=_gallery, required=True,
        help="gallery (a store file, e.g. people.sqlite), created if absent",
    )  # fmt: skip
    p.add_argument("--writer", required=True, help="writer name (an enrolled one gets more)")
    p.add_argument(
        "--score", choices=SCORES,
        help="a new gallery's score (default: normalized; mean for older checkpoints)",
    )  # fmt: skip
    p.add_argument(
        "--clean", metavar="OPTION[,OPTION]",
        help="a new gallery: add normaliser options to the checkpoint's preprocessing, for "
        f"scans of documents ({', '.join(OPTIONS)}); the gallery keeps them, and enrols, "
        "identifies and verifies every later scan with them",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_enroll)
    p = sub.add_parser(
        "gallery",
        help="a gallery's store: info, list its writers, remove one, convert",
        usage="sigid gallery info|list GALLERY [--json]\n"
        "       sigid gallery remove GALLERY --writer NAME [--json]\n"
        "       sigid gallery convert OLD NEW [--json]",
    )
    actions = p.add_subparsers(dest="action", required=True, help="what to do")
    for action, text in (
        ("info", "backend, model, score, writers and references, size"),
        ("list", "the enrolled writers and their numbers of references, in enrolment order"),
        ("remove", "delete a writer's references from the store itself"),
        ("convert", "copy a gallery (an .npz of older sigid, or a store) into a new store"),
    ):
        q = actions.add_parser(action, help=text, formatter_class=_Help)
        q.add_argument(
            "gallery", type=_gallery, metavar="GALLERY" if action != "convert" else "OLD"
        )
        if action == "remove":
            q.add_argument("--writer", required=True, help="the writer to remove")
        if action == "convert":
            q.add_argument(
                "new", type=_gallery, metavar="NEW", help="the new store (e.g. x.sqlite)"
            )
        q.add_argument("--json", action="store_true", help="machine-readable result")
        q.set_defaults(func=cmd_gallery)

    p = sub.add_parser(
        "ship", help="package a shipped_verifier run as the verifier shipped with sigid"
    )
    p.add_argument("run", type=_path, metavar="RUN", help="the finished run folder (or checkpoint)")
    p.add_argument(
        "--out", type=_path, help="where to write it (default: the package's shipped verifier)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_ship)

    p = sub.add_parser("export", help="export a checkpoint for deployment (TorchScript, ONNX)")
    p.add_argument(
        "--ckpt", type=_path, required=True, help="trained checkpoint, or its run folder"
    )
    p.add_argument("--out", type=_path, required=True, help="output folder, created if missing")
    p.add_argument(
        "--format",
        dest="formats",
        nargs="+",
        default=["torchscript", "onnx"],
        metavar="FORMAT",
        help="torchscript and/or onnx (default: both; onnx needs pip install 'sigid[export]')",
    )
    p.add_argument("--name", help="file name stem (default: embedding or classifier)")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "ensemble",
        help="combine Siamese runs of one split into one checkpoint (no retraining)",
        usage="sigid ensemble --out DIR [--json] RUN RUN [RUN ...] [overrides ...]",
    )
    p.add_argument(
        "items", nargs="+", metavar="RUN",
        help="training run folders (or their checkpoints), then the data overrides of their "
        "fold, e.g. data=cedar data.root=PATH data.split.fold=1",
    )  # fmt: skip
    p.add_argument("--out", type=_path, required=True, help="the ensemble's run folder")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser(
        "probe",
        help="shortcut probe: can a linear model tell genuine from forged by the pixels alone?",
    )
    p.add_argument("root", type=_path, help="dataset folder with skilled forgeries")
    p.add_argument("--layout", choices=LAYOUTS, default="auto", help=LAYOUT_HELP)
    p.add_argument(
        "--mode", choices=("normalized", "raw"), default="normalized",
        help="normalized preprocessing (default) or a plain grey resize of the scans",
    )  # fmt: skip
    p.add_argument("--folds", type=int, default=5, help="writer folds")
    p.add_argument("--fold", type=int, default=0, help="the held-out fold")
    p.add_argument("--seed", type=int, default=0, help="seed of the writer split")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser(
        "summarize",
        help="(re)write a sweep's summary: after an interrupted sweep, or for sigid.train runs",
    )
    p.add_argument(
        "sweep", type=_path, metavar="SWEEP_DIR",
        help="the multirun folder, or a folder of run folders",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser(
        "evaluate",
        help="evaluation protocols: identification, writer-dependent, writer-independent, "
        "same-name, robustness",
        usage="sigid evaluate --protocol identification --ckpt CNN [--out DIR] [--json] "
        "[overrides ...]\n"
        "       sigid evaluate --protocol writer-dependent --ckpt SNN [--references 5 12] "
        "[--score normalized|mean] [--tta N] [--out DIR] [--json] [overrides ...]\n"
        "       sigid evaluate --protocol writer-independent --sweep DIR [--out DIR] [--json]\n"
        "       sigid evaluate --protocol same-name --ckpt SNN [--out DIR] [--json] "
        "[overrides ...]\n"
        "       sigid evaluate --protocol robustness --ckpt SNN [--transforms NAME,...] "
        "[--strengths low,middle,high] [--transform-references] [--references 5 12] "
        "[--tta N] [--out DIR] [--json] [overrides ...]",
    )
    p.add_argument("--protocol", required=True, choices=PROTOCOLS, help="the protocol to run")
    p.add_argument(
        "--ckpt",
        type=_path,
        help="checkpoint or run folder (CNN: identification; Siamese: writer-dependent, same-name)",
    )
    p.add_argument(
        "--sweep", type=_path, nargs="+", metavar="DIR",
        help="writer-independent: the folds' sweep folder, or their run folders",
    )  # fmt: skip
    p.add_argument(
        "--references", nargs="+", action=_References, metavar="K",
        help="writer-dependent: reference signatures per writer (default: 5 12)",
    )  # fmt: skip
    p.add_argument(
        "--score", choices=SCORES,
        help="writer-dependent: the gallery score to evaluate (default: a new gallery's)",
    )  # fmt: skip
    p.add_argument(
        "--transforms", type=_names, metavar="NAME,...",
        help=f"robustness: acquisition changes to apply (default: all of {', '.join(TRANSFORMS)})",
    )  # fmt: skip
    p.add_argument(
        "--strengths", type=_names, metavar="NAME,...",
        help=f"robustness: their strengths (default: {','.join(STRENGTHS)})",
    )  # fmt: skip
    p.add_argument(
        "--transform-references", dest="references_too", action="store_true",
        help="robustness: transform the references too (default: the questioned only)",
    )  # fmt: skip
    p.add_argument(
        "--tta", type=int, metavar="N",
        help="writer-dependent, robustness: embed each signature as the mean of itself and N - 1 "
        "fixed variants (test-time augmentation; default 1: off)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="draw of references and negatives")
    p.add_argument("--out", type=_path, help="write evaluation.json, PNGs and TensorBoard here")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.add_argument(
        "overrides", nargs="*", metavar="override",
        help="Hydra data overrides, e.g. data=cedar data.root=PATH data.split.fold=1",
    )  # fmt: skip
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "bench",
        help="time sigid's training step against plain PyTorch, its loader, an epoch, "
        "inference, gallery and peak",
    )
    p.add_argument("--device", choices=bench.DEVICES, help="default: cuda if present, else cpu")
    p.add_argument(
        "--only", nargs="+", choices=bench.PARTS, metavar="PART",
        help=f"run these parts only: {', '.join(bench.PARTS)} (default: all)",
    )  # fmt: skip
    for name, default, what in (
        ("rounds", bench.ROUNDS, "alternating rounds; figures are medians"),
        ("steps", bench.STEPS, "timed steps (loader: batches) per contender and round"),
        ("warmup", bench.WARMUP, "untimed steps before them"),
    ):
        p.add_argument(f"--{name}", type=int, default=default, help=what)
    p.add_argument(
        "--gallery-sizes", type=_sizes, default=bench.GALLERY_SIZES, metavar="N,N,...",
        help=f"gallery writers (default: {','.join(map(str, bench.GALLERY_SIZES))})",
    )  # fmt: skip
    p.add_argument(
        "--data", nargs="+", default=[], metavar="OVERRIDE",
        help="Hydra data overrides for the loader and epoch parts, e.g. data=cedar data.root=PATH",
    )  # fmt: skip
    p.add_argument(
        "--ckpt", metavar="CKPT",
        help="Siamese checkpoint of the inference part (default: the shipped verifier)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_bench)
    for command in sub.choices.values():
        command.formatter_class = _Help
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    hide_dependency_noise()
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
