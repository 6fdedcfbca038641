"""`sigid bench`: the JSON holds the headline figures of every part, finite and positive, and
`--only` runs the parts asked and no other. Tiny settings (one round of one step, small
galleries, a small synthetic set): these tests check what is reported, never how fast."""

from __future__ import annotations

import json

import pytest
from runs import BENCH_DATA, bench_cli, positive

from sigid.bench.report import format_table
from sigid.cli import main

TINY = ["--rounds", "1", "--steps", "1", "--warmup", "0"]
HEADLINE = (
    "train_step_ratio_cnn",
    "train_step_ratio_siamese",
    "loader_to_step_ratio",
    "gallery_open_s_100k",
    "gallery_enroll_ms_100k",
    "gallery_query_ms_100k",
    "gallery_memory_mb_100k",
)


@pytest.fixture(scope="module")
def every_part() -> dict:
    """One tiny run of every part (a gallery of 10,000 writers holds a measurable memory)."""
    code, out, err = bench_cli("--json", *TINY, "--gallery-sizes", "10000", *BENCH_DATA)
    assert code == 0, err
    return json.loads(out)


def test_the_json_holds_each_headline_figure(every_part):
    result = every_part
    for key in HEADLINE:
        assert positive(result[key]), (key, result.get(key))
    assert result["gallery_headline_writers"] == 10_000  # no 100,000: the largest size run
    for name in ("cnn", "siamese"):
        train = result["train"][name]
        assert set(train["img_s"]) == {"sigid", "plain_fp32", "plain_best"}
        assert all(positive(v) for v in train["img_s"].values())
        assert train["sigid_over_best"] == result[f"train_step_ratio_{name}"]
        assert positive(result["loader"][name]["loader_to_step_ratio"])
        step = result["peak"]["steps"][name]
        assert positive(step["gflop_per_step"])
        assert all(positive(v) for v in step["gflops"].values())
    assert all(positive(v) for v in result["peak"]["matmul_gflops"].values())


def test_the_table_has_a_block_per_part(every_part):
    table = format_table(every_part)
    headings = ("training step", "training DataLoader", "one epoch", "inference", "gallery store")
    for heading in (*headings, "arithmetic"):
        assert heading in table
    assert "train_step_ratio_cnn" in table.split("headline:")[1]


def test_only_runs_the_parts_asked():
    code, out, err = bench_cli("--json", "--only", "loader", *TINY, *BENCH_DATA)
    assert code == 0, err
    result = json.loads(out)
    assert result["settings"]["parts"] == ["loader"]
    assert not {"train", "epoch", "inference", "gallery", "peak"} & set(result)
    assert not [k for k in result if k.startswith(("train_step_ratio", "gallery_"))]
    # without the training step, nothing to hold the loader against
    assert "loader_to_step_ratio" not in result
    assert "loader_to_step_ratio" not in result["loader"]["cnn"]
    assert all(positive(result["loader"][name]["img_s"]) for name in ("cnn", "siamese"))
    progress = [line for line in err.splitlines() if line.startswith("sigid bench: ")]
    assert progress, err
    assert all(line.split(": ")[1] == "loader" for line in progress), progress


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rounds", "0"], "--rounds must be at least 1"),
        (["--only", "loader", "--data", "data.no_such_key=1"], "config overrides:"),
    ],
)
def test_bad_settings_are_one_line_errors(argv, message):
    code, out, err = bench_cli(*argv)
    assert code == 1 and out == ""
    assert err.splitlines()[-1].startswith(f"sigid bench: error: {message}"), err


def test_bad_gallery_sizes_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as done:
        main(["bench", "--gallery-sizes", "many"])
    assert done.value.code == 2
    assert "--gallery-sizes: gallery sizes 'many'" in capsys.readouterr().err


def test_a_cpu_without_native_bf16_is_held_to_float32_not_emulated_bf16():
    import torch

    from sigid.bench.peak import matmul_gflops
    from sigid.bench.train_step import best_settings

    cpu, plain, bf16 = torch.device("cpu"), "flags\t: fpu sse avx2", "flags\t: avx2 avx512_bf16"
    assert best_settings(cpu, plain)[0] is torch.float32
    assert "float32" in best_settings(cpu, plain)[1]
    assert best_settings(cpu, bf16)[0] is torch.bfloat16
    # one untimed and one timed float32 product, no bf16 one (minutes where it is emulated)
    rates = matmul_gflops(cpu, 1, lambda _: None, plain)
    assert list(rates) == ["fp32"] and positive(rates["fp32"])
