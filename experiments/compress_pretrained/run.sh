#!/usr/bin/env bash
# A trained MHA model compressed into Tucker, GQA and MLA attention at several ranks: test
# top-1 right after the conversion and after one epoch of fine-tuning, against attention
# parameters. Usage: experiments/compress_pretrained/run.sh [BUILD_DIR [OUT_DIR]]
#   BUILD_DIR: build (default); OUT_DIR: experiments/compress_pretrained/results (default).
# The source is the small Fashion-MNIST model (configs/fmnist_small.json, 5 epochs), trained first unless
# OUT_DIR/source holds it. About 15 minutes on 2 cores. Each step resumes: finished conversions
# and fine-tunings are kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
out=${2:-experiments/compress_pretrained/results}
threads=${THREADS:-0}
mkdir -p "$out"

[ -f "$out/source/checkpoint/model.safetensors" ] ||
  "$build/apps/vit_train" --config configs/fmnist_small.json --threads "$threads" --out "$out/source" --resume
"$build/apps/vit_ranks" --checkpoint "$out/source/checkpoint" --out "$out/source_ranks.json" \
  --plot "$out/source_ranks.png" --threads "$threads"

# name and vit_convert arguments of each setting
settings=(
  "tucker-e50  --to tucker --energy 0.5"
  "tucker-e80  --to tucker --energy 0.8"
  "tucker-e90  --to tucker --energy 0.9"
  "tucker-e95  --to tucker --energy 0.95"
  "tucker-e99  --to tucker --energy 0.99"
  "gqa-2       --to gqa --kv-heads 2"
  "mqa         --to gqa --kv-heads 1"
  "mla-e50     --to mla --energy 0.5"
  "mla-e80     --to mla --energy 0.8"
  "mla-e90     --to mla --energy 0.9"
  "mla-e99     --to mla --energy 0.99"
)
for s in "${settings[@]}"; do
  read -r name args <<< "$s"
  [ -f "$out/$name/finetuned/result.json" ] && continue
  # The converted checkpoint sits in a run-shaped folder, so vit_eval reads the source's data settings.
  if [ ! -f "$out/$name/converted/checkpoint/model.safetensors" ]; then
    mkdir -p "$out/$name/converted"
    cp "$out/source/run_config.json" "$out/$name/converted/"
    # shellcheck disable=SC2086
    "$build/apps/vit_convert" --checkpoint "$out/source/checkpoint" $args --threads "$threads" \
      --out "$out/$name/converted/checkpoint"
    cp "$out/$name/converted/checkpoint/conversion.json" "$out/$name/"  # checkpoints are not committed
  fi
  "$build/apps/vit_train" --config configs/fmnist_small.json --init-from "$out/$name/converted/checkpoint" \
    --set train.epochs=1 --set train.warmup_epochs=0 --set train.lr=0.0005 --threads "$threads" \
    --out "$out/$name/finetuned" --resume
done
# The control: the source itself fine-tuned with the same recipe (what one more epoch gives MHA).
[ -f "$out/mha/finetuned/result.json" ] ||
  "$build/apps/vit_train" --config configs/fmnist_small.json --init-from "$out/source/checkpoint" \
    --set train.epochs=1 --set train.warmup_epochs=0 --set train.lr=0.0005 --threads "$threads" \
    --out "$out/mha/finetuned" --resume

# Kept: the source's weights (vit_ranks and vit_convert read them; not committed), every
# conversion.json and result.
rm -rf "$out"/*/converted/checkpoint "$out"/*/finetuned/checkpoint "$out"/source/checkpoint/train_state.pt

# Accuracy against attention parameters, right after conversion and after fine-tuning (the
# MHA point: the source, and the source fine-tuned like the others).
"$build/apps/vit_plot" "$out"/*/finetuned --x attention_params --y init_metrics.top1 --group attention \
  --title "Fashion-MNIST test top-1 right after converting the quick-start MHA model" \
  --out "$out/before_finetune.png"
"$build/apps/vit_plot" "$out"/*/finetuned --x attention_params --y top1 --group attention \
  --title "Fashion-MNIST test top-1 after one more epoch of fine-tuning" --out "$out/after_finetune.png"
