#!/usr/bin/env bash
# The prepared GPU check (issue 21): sigid bench on CUDA, a short depth x epochs sweep on
# trainer=gpu (bf16-mixed, channels_last, pinned memory: its defaults), and the same run eager
# and compiled (model.compile), in under 5 minutes on one H100. Run from the repository root on a
# CUDA machine; figures go to $OUT (default: outputs/gpu_check), for RESULTS.md.
#   bash tools/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-outputs/gpu_check}"
mkdir -p "$OUT"
[ -x .venv/bin/sigid ] || { python3 -m venv .venv && .venv/bin/pip install --quiet -e '.[dev]'; }
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.csv"
start=$(date +%s)
timeout 130 .venv/bin/sigid bench --device cuda --json > "$OUT/bench.json" 2> "$OUT/bench.err" \
    || echo "bench did not finish (exit $?): see $OUT/bench.err"
echo "bench: $(( $(date +%s) - start )) s"
start=$(date +%s)
timeout 100 .venv/bin/sigid-train -m trainer=gpu model.depth=2,3,4,5 trainer.max_epochs=1,3 \
    logger=none hydra.sweep.dir="$OUT/sweep" > "$OUT/sweep.log" 2>&1 \
    || echo "sweep did not finish (exit $?): see $OUT/sweep.log"
echo "sweep: $(( $(date +%s) - start )) s"
cat "$OUT/sweep/summary.md" 2>/dev/null || true
# eager against compiled: each run's wall_time_s in its metrics.json (compiling counts)
for compiled in false true; do
    start=$(date +%s)
    timeout 30 .venv/bin/sigid-train trainer=gpu model.compile=$compiled trainer.max_epochs=3 \
        logger=none hydra.run.dir="$OUT/compile_$compiled" > "$OUT/compile_$compiled.log" 2>&1 \
        || echo "model.compile=$compiled did not finish (exit $?): see $OUT/compile_$compiled.log"
    echo "model.compile=$compiled: $(( $(date +%s) - start )) s"
done
