#!/usr/bin/env bash
# vitlab against timm on one GPU, in one device call: builds vitlab against the pip LibTorch
# (unless BUILD_DIR already holds it), runs vit_bench on the four reference configs, runs timm
# on the same configs eager and torch.compile'd (timm_bench.py), and prints one side-by-side
# table (compare.py). Usage: experiments/bench_gpu/run.sh [OUT_DIR [STAGE...]]
# Stages: vitlab eager compile (default: all); results go to OUT_DIR (default $OUT, else
# runs/bench_gpu) as vitlab.json, timm_eager.json, timm_compile.json and table.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-${OUT:-runs/bench_gpu}}
shift || true
stages=${*:-vitlab eager compile}
has() { [[ " $stages " == *" $1 "* ]]; }
here=experiments/bench_gpu
build=build-gpu
mkdir -p "$out"

if [ ! -x "$build/apps/vit_bench" ] || has vitlab; then
  source scripts/gpu_build.sh vit_bench
fi
if has vitlab; then
  "$build/apps/vit_bench" --config $here/configs/tiny_p4_28.json --config $here/configs/small_p4_28.json \
    --config $here/configs/tiny_p16_224.json --config $here/configs/small_p16_224.json \
    --warmup 10 --windows 5 --window-steps 20 --json "$out/vitlab.json"
fi
has eager && python3 $here/timm_bench.py --mode eager --out "$out/timm_eager.json"
has compile && python3 $here/timm_bench.py --mode compile --out "$out/timm_compile.json"
python3 $here/compare.py "$out" | tee "$out/table.md"
