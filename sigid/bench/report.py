"""A bench's headline figures (the JSON's top-level keys) and its table for people.

Headline: ``train_step_ratio_<workload>``, sigid's training step over the best plain loop's
(images per second; 1 would be as fast); ``loader_to_step_ratio``, the training DataLoader's
images per second over what sigid's step consumes, the smaller of the workloads' (below 1 the
loader holds training back); ``gallery_open_s_100k``, ``gallery_enroll_ms_100k``,
``gallery_query_ms_100k`` and ``gallery_memory_mb_100k``: the gallery store's open, enrol of one
writer (median), identify's median time per query and the gallery's memory at 100,000 writers,
or where the run had smaller galleries at its largest, which ``gallery_headline_writers``
names; ``epoch_s`` and ``epoch_step_share``, one `cedar_snn` epoch's fit time and the training
steps' share of it;
``embeddings_per_s`` (preprocessed images through the network) and ``verify_ms`` (one pair of
files), from the inference part.
"""

from __future__ import annotations

from typing import Any

HEADLINE_WRITERS = 100_000


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The top-level keys of the parts that ran."""
    found: dict[str, Any] = {}
    for name, entry in result.get("train", {}).items():
        found[f"train_step_ratio_{name}"] = entry["sigid_over_best"]
    ratios = [e.get("loader_to_step_ratio") for e in result.get("loader", {}).values()]
    if ratios and None not in ratios:
        found["loader_to_step_ratio"] = min(ratios)
    if "epoch" in result:
        found["epoch_s"] = result["epoch"]["fit_s"]
        found["epoch_step_share"] = result["epoch"]["share"]["step"]
    if "inference" in result:
        found["embeddings_per_s"] = result["inference"]["embed_img_s"]["prepared"]
        found["verify_ms"] = result["inference"]["verify_ms"]
    galleries = result.get("gallery")
    if galleries:
        sizes = {g["writers"]: g for g in galleries}
        chosen = sizes.get(HEADLINE_WRITERS) or sizes[max(sizes)]
        found["gallery_open_s_100k"] = chosen["open_s"]
        found["gallery_enroll_ms_100k"] = chosen["enroll_ms"]
        found["gallery_query_ms_100k"] = chosen["query_ms"]
        found["gallery_memory_mb_100k"] = chosen["memory_mb"]
        found["gallery_headline_writers"] = chosen["writers"]
    return found


def _row(cells: list[str], widths: list[int]) -> str:
    first, *rest = cells
    padded = (c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))
    return "  " + first.ljust(widths[0]) + "".join(padded)


def _first_width(entries: dict[str, Any]) -> int:
    """Room for the widest "name (label)" cell."""
    return max(len(f"{name} ({e['label']})") for name, e in entries.items()) + 2


def _train_lines(train: dict[str, Any]) -> list[str]:
    widths = [_first_width(train), 10, 12, 12, 12, 12]
    lines = [
        "training step, images/s (median)",
        _row(["", "sigid", "plain fp32", "plain best", "sigid/best", "sigid/fp32"], widths),
    ]
    for name, entry in train.items():
        img_s = entry["img_s"]
        cells = [f"{name} ({entry['label']})", *(f"{img_s[c]:.1f}" for c in img_s)]
        cells += [f"{entry['sigid_over_best']:.2f}", f"{entry['sigid_over_plain_fp32']:.2f}"]
        lines.append(_row(cells, widths))
    best = next(iter(train.values()))["best_settings"]
    sizes = "/".join(sorted({str(e["images_per_step"]) for e in train.values()}))
    lines.append(f"  plain best: {best}; batches of {sizes} random images, already in memory")
    return lines


def _loader_lines(loaders: dict[str, Any]) -> list[str]:
    widths = [_first_width(loaders), 10, 12, 12, 12]
    lines = [
        "training DataLoader alone, images/s (median)",
        _row(["", "loader", "sigid step", "loader/step", "setup s"], widths),
    ]
    workers = {entry["num_workers"] for entry in loaders.values()}
    for name, entry in loaders.items():
        step = entry.get("step_img_s")
        ratio = entry.get("loader_to_step_ratio")
        cells = [
            f"{name} ({entry['label']})",
            f"{entry['img_s']:.1f}",
            "-" if step is None else f"{step:.1f}",
            "-" if ratio is None else f"{ratio:.1f}",
            f"{entry['setup_s']:.2f}",
        ]
        lines.append(_row(cells, widths))
    lines.append(
        f"  data.num_workers: {', '.join(map(str, sorted(workers)))}; setup: the cache read"
    )
    return lines


def _epoch_lines(epoch: dict[str, Any]) -> list[str]:
    data, seconds, share = epoch["data"], epoch["seconds"], epoch["share"]
    where = data["root"] or "the default synthetic set"
    lines = [
        f"one epoch of {epoch['recipe'][0]} on {where} ({data['layout']}): "
        f"fit {epoch['fit_s']:.1f} s",
        f"  {epoch['batches']['train']} training batches of {data['train_samples']} samples, "
        f"{epoch['batches']['val']} validation batches of {data['val_pairs']} pairs; "
        f"data.num_workers: {data['num_workers']}",
    ]
    lines += [f"  {name:<11} {seconds[name]:8.2f} s  {share[name]:5.1%}" for name in seconds]
    test = epoch["test_s"]
    tail = "" if test is None else f"; then the test ({data['test_pairs']} pairs) {test:.1f} s"
    lines.append(f"  before the fit, the data set up {epoch['setup_s']:.1f} s{tail}")
    return lines


def _inference_lines(found: dict[str, Any]) -> list[str]:
    rates = found["embed_img_s"]
    name = "the shipped verifier" if found["shipped"] else found["checkpoint"]
    return [
        f"inference with {name} ({found['dim']}-d, loaded in {found['load_s']:.2f} s), median",
        f"  embeddings/s: {rates['prepared']:.1f} preprocessed, {rates['files']:.1f} from files "
        f"(batches of {found['batch_size']})",
        f"  verify one pair of files: {found['verify_ms']:.1f} ms",
    ]


def gallery_lines(galleries: list[dict[str, Any]]) -> list[str]:
    """The gallery block: per size, identify's time per query, memory and load time."""
    widths = [20, 12, 12, 12, 12, 10, 12]
    references, dim = galleries[0]["references"], galleries[0]["dim"]
    lines = [
        f"gallery store: identify and enrol, {references} references x {dim}-d per writer (median)",
        _row(["writers", "ms/query", "memory MB", "open s", "enrol ms", "own", "write s"], widths),
    ]
    for g in galleries:
        cells = [
            f"{g['writers']:,}",
            f"{g['query_ms']:.2f}",
            f"{g['memory_mb']:.0f}",
            f"{g['open_s']:.2f}",
            f"{g['enroll_ms']:.1f}",
            g["named_own_writer"],
            "kept" if g["write_s"] is None else f"{g['write_s']:.2f}",
        ]
        lines.append(_row(cells, widths))
    network = galleries[0]["network_ms_one_image"]
    lines.append(f"  (plus the network's forward pass for the questioned image: {network:.1f} ms)")
    return lines


def _peak_lines(peak: dict[str, Any]) -> list[str]:
    rates = peak["matmul_gflops"]
    side = peak["matmul_side"]
    measured = ", ".join(f"{name} {rate:.0f}" for name, rate in rates.items())
    lines = [f"arithmetic, GFLOP/s (median): matmul {side}x{side} {measured}"]
    for name, entry in peak["steps"].items():
        lines.append(f"  {name} step: {entry['gflop_per_step']:.1f} GFLOP (forward + backward)")
        shares, against = entry.get("fraction_of_peak", {}), entry.get("peak_of", {})
        lines += [
            f"    {c:<11} {rate:6.0f} GFLOP/s = {shares[c]:4.0%} of the {against[c]} peak"
            for c, rate in entry.get("gflops", {}).items()
        ]
    return lines


def format_table(result: dict[str, Any]) -> str:
    """The figures of the parts that ran, a block each, and the headline."""
    device = result["device"]
    settings = result["settings"]
    lines = [
        f"sigid bench on {device['type']}: {device['name']}, {device['threads']} threads, "
        f"torch {device['torch']}, lightning {device['lightning']}",
        f"  {settings['rounds']} rounds x {settings['steps']} steps "
        f"(+{settings['warmup']} warm-up), alternating"
        + (", freed memory kept (glibc)" if settings.get("keep_freed_memory") else ""),
    ]
    blocks = (
        ("train", _train_lines),
        ("loader", _loader_lines),
        ("epoch", _epoch_lines),
        ("inference", _inference_lines),
        ("gallery", gallery_lines),
        ("peak", _peak_lines),
    )
    for key, lines_of in blocks:
        if key in result:
            lines += ["", *lines_of(result[key])]
    heads = headline(result)
    if heads:
        lines += ["", "headline:"]
        lines += [
            f"  {key} = {value:,}" if isinstance(value, int) else f"  {key} = {value:.4g}"
            for key, value in heads.items()
        ]
    return "\n".join(lines)
