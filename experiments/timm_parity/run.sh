#!/usr/bin/env bash
# Parity with timm, in one call on the GPU machine (where timm is installed; vitlab already
# built into BUILD): makes the fixtures (the tiny set into tests/fixtures/timm, the one
# committed; the large set of real timm sizes into a scratch folder), runs the TimmParity tests
# on CPU and GPU over both sets, and checks that timm loads and evaluates a checkpoint that
# `vit_convert --to timm` wrote to vitlab's own metrics. Logs and the fixtures go to OUT.
# Usage: experiments/timm_parity/run.sh BUILD OUT   (Fashion-MNIST in data/fashion-mnist)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=$1 out=$2
mkdir -p "$out"
large=$(mktemp -d)
python3 experiments/timm_parity/make_fixtures.py tests/fixtures/timm --set tiny
python3 experiments/timm_parity/make_fixtures.py "$large" --set large
VITLAB_TIMM_PARITY_DIR=$large "$build/tests/vitlab_tests" --gtest_filter='TimmParity.*' 2>&1 | tee "$out/parity_tests.log" || true
cp -r tests/fixtures/timm "$out/fixtures"

run=$(mktemp -d)
"$build/apps/vit_train" --config configs/quickstart.json --data idx:data/fashion-mnist --set train.epochs=1 \
  --out "$run/mha" > "$run/train.log" 2>&1
"$build/apps/vit_convert" --checkpoint "$run/mha/checkpoint" --to timm --out "$run/timm"
"$build/apps/vit_eval" --checkpoint "$run/mha/checkpoint" --device cpu --out "$out/vitlab_eval.json"
python3 experiments/timm_parity/check_export.py "$run/timm" data/fashion-mnist "$out/vitlab_eval.json" | tee "$out/export_check.log"
