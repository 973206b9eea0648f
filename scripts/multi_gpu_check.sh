#!/usr/bin/env bash
# One call on a machine with two GPUs (LibTorch 2.x + CUDA + NCCL from the pip torch): build,
# run the GPU tests (the NCCL test among them), then data-parallel training on 1 and 2 GPUs:
# vit_small p16 at 224 on synthetic data (vit_bench), the Fashion-MNIST model of
# configs/fmnist_vit_tiny.json (vit_train, same recipe and global batch), and a sweep spread over
# both GPUs (vit_sweep --jobs 2 --devices 0,1). Processes are launched the torchrun way, with
# RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT. Logs and results go to $OUT.
# Usage: bash scripts/multi_gpu_check.sh [STAGE...], stages test bench sweep fmnist (default: all).
# The dataset travels in data/fashion-mnist (see scripts/gpu_check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/runs/multi_gpu_check}
mkdir -p "$OUT"
stages=${*:-test bench sweep fmnist}
exec > >(tee -a "$OUT/multi_gpu_check.log") 2>&1
has() { [[ " $stages " == *" $1 "* ]]; }
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1  # never NVLink multicast (shared hosts)

nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
nvidia-smi topo -m || true
source scripts/gpu_build.sh all
bin=$PWD/build-gpu/apps

# Launches "$@" as WORLD processes, one per GPU; rank 0 in the foreground. Fails if any fails.
launch() {
  local world=$1 port=$2; shift 2
  local pids=()
  for ((r = 1; r < world; ++r)); do
    RANK=$r LOCAL_RANK=$r WORLD_SIZE=$world MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$@" > "$OUT/rank$r.log" 2>&1 &
    pids+=($!)
  done
  RANK=0 LOCAL_RANK=0 WORLD_SIZE=$world MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$@"
  for p in "${pids[@]}"; do wait "$p"; done
}

if has test; then
  (cd build-gpu && ctest --output-on-failure -R "Distributed|Sdpa|Fused" --timeout 300) > "$OUT/ctest.log" 2>&1 || true
  grep -E "Test +#|tests passed" "$OUT/ctest.log" || true
fi

# vit_small p16 at 224, 256 images per GPU: 1 GPU, then 2 GPUs (global batch 512). Both take
# the plain step: CUDA graphs need one process (train/cuda_graph.h), and the config sets them.
if has bench; then
  cfg=experiments/bench_gpu/configs/small_p16_224.json
  dp_args=(--config $cfg --set train.cuda_graph=false --windows 5 --window-steps 20 --device cuda)
  $bin/vit_bench "${dp_args[@]}" --mode train --json "$OUT/dp_bench_1gpu.json"
  launch 2 29511 $bin/vit_bench "${dp_args[@]}" --json "$OUT/dp_bench_2gpu.json"
fi

# Four one-epoch runs of the quick-start model, two at a time, one per GPU.
if has sweep; then
  cat > /tmp/two_gpu_sweep.json <<SPEC
{"description": "Four one-epoch runs of the quick-start model spread over two GPUs.",
 "base": "$PWD/configs/quickstart.json",
 "set": {"train.epochs": 1, "data.spec": "idx:$PWD/data/fashion-mnist"},
 "axes": [{"model.attention": ["mha", "mqa", {"name": "gqa", "kv_heads": 2},
                               {"name": "tucker", "ranks": {"q": 24, "k": 24, "v": 24, "o": 24}}]}]}
SPEC
  rm -rf /tmp/two_gpu_sweep
  $bin/vit_sweep /tmp/two_gpu_sweep.json --out /tmp/two_gpu_sweep --jobs 2 --devices 0,1
  cp /tmp/two_gpu_sweep/summary.md "$OUT/two_gpu_sweep_summary.md"
  python3 -c "import json, glob; [print(f.split('/')[-2], json.load(open(f))['host']['device']) for f in sorted(glob.glob('/tmp/two_gpu_sweep/runs/*/result.json'))]"
fi

# The full Fashion-MNIST recipe on 2 GPUs, then on 1 (same global batch); FMNIST_WORLDS="2"
# runs one of them. The runs resume (--resume): a call stopped by its time limit is continued
# by the next call on the same, still warm, machine; FMNIST_LIMIT=SECONDS stops each run there.
if has fmnist; then
  limit=${FMNIST_LIMIT:-86400}
  for world in ${FMNIST_WORLDS:-2 1}; do
    start=$SECONDS
    if [ "$world" = 1 ]; then
      timeout --signal=TERM "$limit" $bin/vit_train --config configs/fmnist_vit_tiny.json \
        --data idx:data/fashion-mnist --device cuda --out /tmp/fmnist-1gpu --resume || true
    else
      launch 2 29512 timeout --signal=TERM "$limit" $bin/vit_train --config configs/fmnist_vit_tiny.json \
        --data idx:data/fashion-mnist --device cuda --out /tmp/fmnist-2gpu --resume || true
    fi
    echo "fmnist ${world} GPU wall this call: $(( SECONDS - start )) s"
    cp /tmp/fmnist-${world}gpu/result.json "$OUT/fmnist_${world}gpu_result.json" 2>/dev/null || true
  done
fi
