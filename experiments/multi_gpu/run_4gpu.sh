#!/usr/bin/env bash
# One call on a four-GPU machine (LibTorch 2.x + CUDA + NCCL from the pip torch): build, the
# data-parallel tests (NCCL training and sharded evaluation), then vit_small p16 224 on 1, 2 and
# 4 GPUs (a) on synthetic data (vit_bench --mode train, 256 images per GPU) and (b) from the
# generated JPEG folder of experiments/data_pipeline (vit_train, 2 epochs, nvJPEG; the second
# epoch's img/s); the folder-trained checkpoint evaluated on 1 and on 4 GPUs
# (sharded: the same metrics). Processes start the torchrun way (RANK, LOCAL_RANK, WORLD_SIZE,
# MASTER_ADDR, MASTER_PORT). Stages: test bench folder fmnist (default: test bench folder);
# fmnist trains configs/fmnist_vit_tiny.json on 4 GPUs and on 1 (same global batch; the data
# travels in data/fashion-mnist). Writes $OUT/summary.json and logs. A four-GPU machine takes
# minutes to start: run `test bench` in one call and `folder` (then `fmnist`) in the next ones on
# the still-warm machine, each well inside the 10-minute limit of a command.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/runs/multi_gpu_4}
mkdir -p "$OUT"
stages=${*:-test bench folder}
has() { [[ " $stages " == *" $1 "* ]]; }
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1  # never NVLink multicast (shared hosts)
W=/tmp/multi_gpu_4
mkdir -p $W
# A call cut off by its time limit leaves its processes behind on a warm machine: end them first.
pkill -f "build-gpu/apps/vit_" || true
RUN_LIMIT=${RUN_LIMIT:-300}  # seconds for any one run: a stall ends the run, not the call
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader | tee "$W/gpus.txt"
source scripts/gpu_build.sh all
bin=$PWD/build-gpu/apps

# Launches "$@" as WORLD processes, one per GPU; rank 0 in the foreground. Fails if any fails.
launch() {
  local world=$1 port=$2; shift 2
  local pids=() status=0
  for ((r = 1; r < world; ++r)); do
    RANK=$r LOCAL_RANK=$r WORLD_SIZE=$world MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$@" > "$W/rank$r.log" 2>&1 &
    pids+=($!)
  done
  RANK=0 LOCAL_RANK=0 WORLD_SIZE=$world MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$@" || status=1
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  return $status
}
run_world() {  # run_world WORLD PORT CMD...: one process without the variables, else launch
  local world=$1 port=$2; shift 2
  if [ "$world" = 1 ]; then timeout "$RUN_LIMIT" "$@"; else launch "$world" "$port" timeout "$RUN_LIMIT" "$@"; fi
}

if has test; then
  (cd build-gpu && ctest --output-on-failure -R "Distributed|Nvjpeg|AutoAugment" --timeout 300) > "$W/ctest.log" 2>&1 || true
  grep -E "Test +#|tests passed" "$W/ctest.log" | tee "$OUT/ctest_summary.txt" || true
fi

if has bench; then
  cfg=experiments/bench_gpu/configs/small_p16_224.json
  for world in 1 2 4; do
    run_world $world $((29600 + world)) $bin/vit_bench --config $cfg --set train.cuda_graph=false --windows 5 \
      --window-steps 20 --device cuda --mode train --json "$W/bench_${world}gpu.json" > "$W/bench_${world}gpu.log" 2>&1
  done
fi

if has folder; then
  data=/tmp/jpeg-folder
  here=experiments/data_pipeline
  [ -d $data/train ] || python3 $here/make_jpeg_folder.py $data --train 62000 --val 2000 --jobs "$(nproc)"
  train_args=(--config $here/train_small_224.json --data folder:$data --device cuda --set train.epochs=2
              --set train.cuda_graph=false)
  for world in 1 2 4; do  # 256 images per GPU, as on synthetic data
    rm -rf /tmp/folder-${world}gpu
    run_world $world $((29610 + world)) $bin/vit_train "${train_args[@]}" --set train.batch_size=$((256 * world)) \
      --out /tmp/folder-${world}gpu \
      > "$W/folder_${world}gpu.log" 2>&1 || { tail -n 5 "$W/folder_${world}gpu.log"; exit 1; }
    cp /tmp/folder-${world}gpu/result.json "$W/folder_${world}gpu_result.json"
  done
  for world in 1 4; do
    run_world $world $((29620 + world)) $bin/vit_eval --checkpoint /tmp/folder-1gpu/checkpoint --data folder:$data \
      --device cuda --batch-size 256 --out "$W/eval_${world}gpu.json" > "$W/eval_${world}gpu.log" 2>&1 || true
  done
fi

if has fmnist; then
  for world in 4 1; do
    rm -rf /tmp/fmnist-${world}gpu
    run_world $world $((29630 + world)) $bin/vit_train --config configs/fmnist_vit_tiny.json --data idx:data/fashion-mnist \
      --device cuda --out /tmp/fmnist-${world}gpu > "$W/fmnist_${world}gpu.log" 2>&1 || tail -n 3 "$W/fmnist_${world}gpu.log"
    cp /tmp/fmnist-${world}gpu/result.json "$W/fmnist_${world}gpu_result.json" 2>/dev/null || true
  done
fi

python3 - "$W" "$OUT/summary.json" <<'PY'
import glob, json, os, sys
w, out = sys.argv[1], sys.argv[2]
parts = {os.path.basename(f)[:-5]: json.load(open(f)) for f in sorted(glob.glob(f"{w}/*.json"))}
rows = {}
syn = {k: parts[f"bench_{k}gpu"]["results"][0]["train"]["images_per_s"] for k in (1, 2, 4) if f"bench_{k}gpu" in parts}
for k, v in syn.items():
    rows[f"synthetic, {k} GPU"] = f"{v:.0f} img/s, scaling {100 * v / (k * syn[1]):.1f}%"
fol = {k: parts[f"folder_{k}gpu_result"]["history"][-1]["images_per_s"] for k in (1, 2, 4) if f"folder_{k}gpu_result" in parts}
for k, v in fol.items():
    line = f"{v:.0f} img/s, scaling {100 * v / (k * fol[1]):.1f}%"
    if 1 in syn:
        line += f", {100 * v / (k * syn[1]):.1f}% of {k} x the 1-GPU synthetic figure"
    rows[f"JPEG folder (nvJPEG), {k} GPU"] = line
if "eval_1gpu" in parts and "eval_4gpu" in parts:
    a, b = parts["eval_1gpu"]["metrics"], parts["eval_4gpu"]["metrics"]
    same = all(a[k] == b[k] for k in ("images", "top1", "top5", "confusion"))
    rows["sharded evaluation, 4 GPU vs 1"] = f"top1 {a['top1']:.3f} / {b['top1']:.3f}, loss {a['loss']:.6f} / {b['loss']:.6f}, counts equal: {same}"
for k in (4, 1):
    if f"fmnist_{k}gpu_result" in parts:
        r = parts[f"fmnist_{k}gpu_result"]
        rows[f"fmnist_vit_tiny, {k} GPU"] = (f"test top1 {r['metrics']['top1']:.2f}%, best val {r['metrics']['best_top1']}, "
                                             f"{r['timing']['train_seconds']:.0f} s, {r['timing']['images_per_s']:.0f} img/s")
for k, v in rows.items():
    print(f"{k:40s} {v}")
json.dump({"command": "experiments/multi_gpu/run_4gpu.sh", "gpus": open(f"{w}/gpus.txt").read(), "table": rows,
           "parts": parts}, open(out, "w"), indent=1)
PY
