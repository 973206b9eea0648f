#!/usr/bin/env bash
# One call on the GPU machine (LibTorch 2.x + CUDA from the pip torch): build, run the test
# suite, train one epoch of Fashion-MNIST on the GPU. Logs and results go to $OUT.
# The dataset travels in data/fashion-mnist (ignored by git, named in the device call's carry):
#   mkdir -p data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/runs/gpu_check}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)'
start=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" 2>&1 | tail -n 3
cmake --build build-gpu --parallel "$(nproc)" 2>&1 | grep -E "error|warning: |FAILED|Linking" | tail -n 40
echo "build: $(( $(date +%s) - start )) s"

(cd build-gpu && ctest --output-on-failure --parallel 4 --timeout 600) > "$OUT/ctest.log" 2>&1 || true
grep -E "tests passed|\(Failed\)|SEGFAULT|Skipped|Subprocess" "$OUT/ctest.log" || true

rm -rf /tmp/gpu-epoch
./build-gpu/apps/vit_train --config configs/quickstart.json --data idx:data/fashion-mnist \
  --set train.epochs=1 --device cuda --out /tmp/gpu-epoch
cp /tmp/gpu-epoch/result.json "$OUT/gpu_one_epoch_result.json"
./build-gpu/apps/vit_eval --checkpoint /tmp/gpu-epoch/checkpoint --data idx:data/fashion-mnist --device cuda \
  --out "$OUT/gpu_eval.json"

# Every attention variant, one epoch each at the quick-start width (float32, no tuning yet).
for spec in mha mqa '{"name":"gqa","kv_heads":2}' '{"name":"mla","kv_rank":24}' \
            '{"name":"tucker","ranks":{"q":24,"k":24,"v":24,"o":24}}'; do
  rm -rf /tmp/gpu-variant
  ./build-gpu/apps/vit_train --config configs/quickstart.json --data idx:data/fashion-mnist --set train.epochs=1 \
    --set "model.attention=$spec" --device cuda --out /tmp/gpu-variant > /tmp/gpu-variant.log
  python3 - "$spec" <<'PY'
import json, sys
r = json.load(open("/tmp/gpu-variant/result.json"))
print(f"{sys.argv[1]:<60} attn/layer {r['params']['attention_per_layer']:>7}  train {r['timing']['images_per_s']:>8.0f} img/s"
      f"  eval {r['timing']['test_images_per_s']:>9.0f} img/s  test top1 {r['metrics']['top1']:.2f}")
PY
done
