#!/usr/bin/env bash
# Issue 8's sweep: Tucker attention against MHA, GQA/MQA, MLA, TPA, MLR and BTT at attention
# budgets from about 1/20x to 1x of MHA's, 3 seeds, then the summary and the plot.
# Usage: experiments/tucker_vs_attention/run.sh reduced|unequal|full [BUILD_DIR [OUT_DIR [SWEEP_ARGS...]]]
#   reduced: spec_reduced.json on the CPU, 2 runs at a time on one thread each (under 30 min on 2 cores)
#   unequal: spec_unequal.json, the follow-up with unequal Tucker ranks, the same way (about 5 min)
#   full:    spec_full.json on a GPU, 4 runs at a time on it (each run is bound by its host thread,
#            not by the GPU); spread over machines with --shard i/n (then `vit_sweep --summarize`
#            over the shard folders). On the lent GPU machine, which has no gnuplot, use
#            `scripts/gpu_check.sh tucker_sweep` instead (the same sweep, stopped and resumed
#            within each device call) and plot here.
# Resumable: rerun the same command after an interruption.
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:?reduced, unequal or full}
build=${2:-build}
out=${3:-experiments/tucker_vs_attention/results_$size}
shift $(( $# < 3 ? $# : 3 ))
here=experiments/tucker_vs_attention
case $size in
  reduced|unequal) devices=(--jobs 2 --threads 1) ;;
  full) devices=(--devices 0,0,0,0) ;;
  *) echo "run.sh: error: the first argument is reduced, unequal or full, not '$size'" >&2; exit 1 ;;
esac
start=$SECONDS
"$build/apps/vit_sweep" "$here/spec_$size.json" --out "$out" "${devices[@]}" "$@"
echo "sweep: $(( SECONDS - start )) s"
"$build/apps/vit_plot" "$out" --x attention_params --y top1 --group attention \
  --out "$out/accuracy_vs_attention_params.png" \
  --title "Fashion-MNIST, $size sweep: test top-1 against attention parameters (3 seeds)"
