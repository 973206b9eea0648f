#!/usr/bin/env bash
# The small attention-versus-parameters sweep: every attention variant at one or more budgets,
# one epoch of Fashion-MNIST each at the quick-start size, two seeds; then the summary table and
# the accuracy-versus-attention-parameters plot. Resumable: rerun the same command after an
# interruption. Two runs at a time, one CPU thread each.
# Usage: experiments/attention_vs_params/run.sh [BUILD_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build} out=${2:-experiments/attention_vs_params/results}
here=experiments/attention_vs_params
"$build/apps/vit_sweep" "$here/spec.json" --dry-run
"$build/apps/vit_sweep" "$here/spec.json" --out "$out" --jobs 2
"$build/apps/vit_plot" "$out" --x attention_params --y top1 --group attention --out "$out/accuracy_vs_attention_params.png" \
  --title "Fashion-MNIST, 1 epoch, quick-start ViT (d=96, depth 4): attention variants"
