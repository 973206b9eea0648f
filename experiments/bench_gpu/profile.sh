#!/usr/bin/env bash
# Where the GPU time of one step goes, vitlab against timm eager: Nsight Compute times every
# kernel of a few steps of one config (clocks left alone), and profile_summary.py keeps the
# last step of each side (the kernel sequence that repeats) and groups its kernels.
# Usage: experiments/bench_gpu/profile.sh OUT_DIR [CONFIG [PHASE]]
#   CONFIG: small_p16_224 (default), tiny_p16_224, small_p4_28, tiny_p4_28; PHASE: infer (default) or train.
# Needs build-gpu/apps/vit_bench (experiments/bench_gpu/run.sh builds it) and ncu.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1 config=${2:-small_p16_224} phase=${3:-infer}
here=experiments/bench_gpu
declare -A timm_name=([tiny_p4_28]="vit_tiny p4 28x28x1" [small_p4_28]="vit_small p4 28x28x1"
                      [tiny_p16_224]="vit_tiny p16 224x224x3" [small_p16_224]="vit_small p16 224x224x3")
mkdir -p "$out"
ncu_args=(--clock-control none --metrics gpu__time_duration.sum --csv --print-units base)
ncu "${ncu_args[@]}" --log-file "$out/ncu_vitlab_${config}_$phase.csv" \
  build-gpu/apps/vit_bench --config $here/configs/$config.json --mode "$phase" --warmup 2 --windows 1 --window-steps 1 \
  > /dev/null
ncu "${ncu_args[@]}" --log-file "$out/ncu_timm_${config}_$phase.csv" \
  python3 $here/timm_bench.py --mode eager --only "${timm_name[$config]}" --phase "$phase" --warmup 2 --windows 1 \
  --window-steps 1 > /dev/null
python3 $here/profile_summary.py "$out/ncu_vitlab_${config}_$phase.csv" "$out/ncu_timm_${config}_$phase.csv" \
  | tee "$out/profile_${config}_$phase.md"
