#!/usr/bin/env bash
# Parity with transformers at real sizes, in one call on the GPU machine (where transformers and
# timm are installed; vitlab already built into BUILD): makes the large fixture set (ViT-S/16 and
# distilled DeiT-S/16 shapes, random weights) and runs HfParity.LogitsMatchTransformers over it,
# then trains a small model one epoch, exports it with vit_convert --to hf and --to timm, and
# checks that transformers' from_pretrained of the one gives timm's logits of the other (timm's
# equal vitlab's: TimmParity). Logs go to OUT.
# Usage: experiments/hf_parity/run.sh BUILD OUT
set -euo pipefail
cd "$(dirname "$0")/../.."
build=$1 out=$2
mkdir -p "$out"
large=$(mktemp -d)
python3 experiments/hf_parity/make_fixtures.py "$large" --set large
VITLAB_HF_PARITY_DIR=$large "$build/tests/vitlab_tests" --gtest_filter='HfParity.LogitsMatchTransformers' 2>&1 |
  tee "$out/hf_parity_tests.log" || true
run=$(mktemp -d)
"$build/apps/vit_train" --config configs/quickstart.json --set data.spec=\"synthetic\" --set data.val_size=0.1 \
  --set train.epochs=1 --out "$run/mha" > "$run/train.log" 2>&1
"$build/apps/vit_convert" --checkpoint "$run/mha/checkpoint" --to hf --out "$run/hf"
"$build/apps/vit_convert" --checkpoint "$run/mha/checkpoint" --to timm --out "$run/timm"
python3 experiments/hf_parity/check_export.py "$run/hf" "$run/timm" | tee "$out/export_check.json"
