#!/usr/bin/env bash
# Train and inference img/s of every attention variant at one realistic width and depth:
# vit_small sizes (d=384, depth 12, 6 heads of 64) on 224x224x3 images in 16x16 patches
# (197 tokens), batch 128, synthetic data. Usage: bench.sh BUILD_DIR DEVICE OUT_JSON [VIT_BENCH_ARG...]
# (e.g. --set train.cuda_graph=true). Sizes as in variants.sh, scaled to this width (vit_info
# --compare prints their parameters).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=$1 device=$2 out=$3
shift 3
model=("$@" --set model.preset=vit-small --set model.image_size=224 --set model.in_chans=3 --set model.patch_size=16
       --set model.num_classes=1000 --set 'model.mean=[0.5]' --set 'model.std=[0.5]' --batch-size 128 --warmup 5 --windows 3 --window-steps 10)
"$build/apps/vit_bench" "${model[@]}" --device "$device" --json "$out" --attention \
  mha mqa '{"name":"gqa","kv_heads":2}' '{"name":"mla","kv_rank":96,"q_rank":192}' \
  '{"name":"tucker","ranks":{"q":96,"k":96,"v":96,"o":96}}' '{"name":"tpa","q_rank":6,"k_rank":2,"v_rank":2}' \
  '{"name":"mlr","ranks":[32,32]}' '{"name":"btt","rank":1}'
"$build/apps/vit_bench" "${model[@]}" --device "$device" --json "${out%.json}_rope.json" --set model.pos=rope \
  --attention mha '{"name":"mla","kv_rank":96,"q_rank":192,"rope_dim":32}' \
  '{"name":"tucker","ranks":{"q":96,"k":96,"v":96,"o":96}}' '{"name":"tpa","q_rank":6,"k_rank":2,"v_rank":2}'
