#!/usr/bin/env bash
# One call on the GPU machine (LibTorch 2.x + CUDA from the pip torch): build, run the test
# suite, train the quick-start model one epoch and evaluate it, train one epoch of Fashion-MNIST
# with every attention variant, and measure every variant's throughput; on request also profile
# one step against timm and train the full Fashion-MNIST model. Logs and results go to $OUT.
# Usage: bash scripts/gpu_check.sh [STAGE...], stages test quickstart zoo bench (the default)
# and profile, parity, fmnist, tucker_sweep, decode_contention, fed, lt_epilogues, speed (run in
# this order). The build always runs first; it is quick when build-gpu is already there.
# The dataset travels in data/fashion-mnist (ignored by git, named in the device call's carry):
#   mkdir -p data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/runs/gpu_check}
mkdir -p "$OUT"
stages=${*:-test quickstart zoo bench}
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
has() { [[ " $stages " == *" $1 "* ]]; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
source scripts/gpu_build.sh all

if has test; then
  (cd build-gpu && ctest --output-on-failure --parallel 4 --timeout 600) > "$OUT/ctest.log" 2>&1 || true
  grep -E "tests passed|\(Failed\)|SEGFAULT|Skipped|Subprocess" "$OUT/ctest.log" || true
fi

if has quickstart; then
  rm -rf /tmp/gpu-epoch
  ./build-gpu/apps/vit_train --config configs/quickstart.json --data idx:data/fashion-mnist \
    --set train.epochs=1 --device cuda --out /tmp/gpu-epoch
  cp /tmp/gpu-epoch/result.json "$OUT/gpu_one_epoch_result.json"
  ./build-gpu/apps/vit_eval --checkpoint /tmp/gpu-epoch/checkpoint --data idx:data/fashion-mnist --device cuda \
    --out "$OUT/gpu_eval.json"
fi

# Every attention variant, one epoch each at the quick-start width, through vit_train.
if has zoo; then
  experiments/attention_zoo/one_epoch.sh build-gpu cuda /tmp/gpu-zoo idx:data/fashion-mnist | tee "$OUT/zoo_one_epoch.md"
fi

# Train and inference img/s of every variant at vit_small width (experiments/attention_zoo).
if has bench; then
  experiments/attention_zoo/bench.sh build-gpu cuda "$OUT/bench_zoo.json"
fi

# Kernel time of one inference and one training step of vit_small p16, vitlab against timm eager.
if has profile; then
  experiments/bench_gpu/profile.sh "$OUT/profile" small_p16_224 infer
  experiments/bench_gpu/profile.sh "$OUT/profile" small_p16_224 train
fi

# Parity with timm and transformers (fixtures, logits on CPU and GPU, the libraries reading
# vitlab's exports).
if has parity; then
  experiments/timm_parity/run.sh build-gpu "$OUT/timm_parity"
  experiments/hf_parity/run.sh build-gpu "$OUT/hf_parity"
fi

# The full Fashion-MNIST run of a vit_tiny-sized model (configs/fmnist_vit_tiny.json). It
# resumes: with FMNIST_LIMIT=SECONDS a call stops it there and the next call on the same (warm)
# machine continues it. FMNIST_ARGS adds vit_train flags (e.g. --set train.cuda_graph=true).
if has fmnist; then
  start=$SECONDS
  rc=0
  timeout --signal=TERM "${FMNIST_LIMIT:-86400}" ./build-gpu/apps/vit_train --config configs/fmnist_vit_tiny.json \
    --data idx:data/fashion-mnist --device cuda --out /tmp/fmnist-tiny --resume ${FMNIST_ARGS:-} || rc=$?
  echo "fmnist wall this call: $(( SECONDS - start )) s (exit $rc)"
  cp /tmp/fmnist-tiny/result.json "$OUT/fmnist_vit_tiny_result.json" 2>/dev/null || true
fi

# A sweep on the one GPU, several runs at a time (SWEEP_DEVICES): issue 8's full sweep
# (experiments/tucker_vs_attention/spec_full.json), or SWEEP_SPEC into SWEEP_OUT (issue 26:
# experiments/tucker_converged/spec_recipe.json into runs/tucker_recipe). It resumes like
# fmnist: SWEEP_LIMIT=SECONDS stops it there (its runs save checkpoints) and the next call on the
# same machine continues it; a finished run is never redone, a failed one (out of memory beside
# the others, say) is run again. The specs read `fashion-mnist`, the Debian package's path,
# which the carried copy stands in for here. The tar that comes back holds every run's records
# (not its weights) and the MHA runs' mode ranks.
if has tucker_sweep; then
  if [[ ! -e /usr/share/datasets/fashion-mnist ]]; then
    mkdir -p /usr/share/datasets && ln -s "$PWD/data/fashion-mnist" /usr/share/datasets/fashion-mnist
  fi
  sweep_out=${SWEEP_OUT:-runs/tucker_full}
  start=$SECONDS
  rc=0
  timeout --signal=TERM "${SWEEP_LIMIT:-86400}" ./build-gpu/apps/vit_sweep \
    "${SWEEP_SPEC:-experiments/tucker_vs_attention/spec_full.json}" --out "$sweep_out" \
    --devices "${SWEEP_DEVICES:-0,0,0,0}" --retry-failed || rc=$?
  echo "tucker_sweep wall this call: $(( SECONDS - start )) s (exit $rc)"
  # The mode ranks of every finished MHA run (vit_ranks, JSON only: no gnuplot there), which the
  # weights do not come back to give: they choose the Tucker ranks worth trying unequal.
  mkdir -p "$sweep_out/ranks"
  for run in "$sweep_out"/runs/*; do
    name=$(basename "$run")
    [[ -e "$run/result.json" && -d "$run/checkpoint" && ! -e "$sweep_out/ranks/$name.json" ]] || continue
    python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["model"]["attention"]["name"] != "mha")' \
      "$run/run_config.json" || continue
    ./build-gpu/apps/vit_ranks --checkpoint "$run/checkpoint" --out "$sweep_out/ranks/$name.json" > /dev/null
  done
  tar czf "$OUT/$(basename "$sweep_out")_results.tar.gz" --exclude=checkpoint --exclude=sweep.lock --exclude=train.lock \
    "$sweep_out"
fi

# What nvJPEG's decode calls wait for beside a busy GPU: a device-wide synchronisation or the
# multiprocessors (experiments/data_pipeline/decode_contention.cu), on 256 generated JPEGs.
if has decode_contention; then
  probe=/tmp/jpeg-folder-fed/train
  [[ -d $probe ]] || { python3 experiments/data_pipeline/make_jpeg_folder.py /tmp/jpeg-probe --train 256 --val 10 \
    --jobs "$(nproc)" && probe=/tmp/jpeg-probe/train; }
  nvcc -O3 -std=c++17 -arch=sm_90 experiments/data_pipeline/decode_contention.cu -lnvjpeg -o build-gpu/decode_contention
  build-gpu/decode_contention $probe 8 15 | tee "$OUT/decode_contention.json"
fi

# Issue 21's measurement, repeated: vit_small p16 224's step fed by a generated folder of JPEGs
# (experiments/data_pipeline) against the same step in memory, graphed and eager alternately,
# FED_RUNS times each (default 3), for each data.hw_decoder_load in FED_HW_LOADS (default "1"),
# each run's JSON and log into $OUT/fed.tar.gz (FED_TAG=x: runs named ..._x and $OUT/fed_x.tar.gz,
# so that one call can repeat the stage under another environment, e.g.
# CUDA_DEVICE_MAX_CONNECTIONS). vit_bench prints where the loader's threads spend each step. A
# run still going after 60 s (two eager runs in ten hung so far) is stopped after cuda-gdb has
# written every thread's backtrace beside them (hang_*.txt).
if has fed; then
  folder=/tmp/jpeg-folder-fed
  [[ -d $folder ]] || python3 experiments/data_pipeline/make_jpeg_folder.py $folder --train 20000 --val 100 --jobs "$(nproc)"
  # The runs write under /tmp and the tar in $OUT is remade after each, so a call cut short
  # still brings back, in one file, what finished (a call returns at most 8 files).
  tag=${FED_TAG:+_$FED_TAG}
  fed=/tmp/fed-out/fed$tag
  rm -rf /tmp/fed-out && mkdir -p "$fed"
  pack_fed() { tar czf "$OUT/fed$tag.tar.gz" -C /tmp/fed-out "fed$tag"; }
  for i in $(seq "${FED_RUNS:-3}"); do
    for hw in ${FED_HW_LOADS:-1}; do  # data.hw_decoder_load: the share on the hardware decoder
      for mode in graphed eager; do
        run=${mode}_hw${hw}${tag}_$i
        flags=(--set data.hw_decoder_load=$hw); [[ $mode == eager ]] && flags+=(--set train.cuda_graph=false)
        ./build-gpu/apps/vit_bench --config experiments/data_pipeline/train_small_224.json --data folder:$folder \
          --mode train --device cuda "${flags[@]}" --json "$fed/$run.json" > "$fed/$run.log" 2>&1 &
        pid=$!
        for _ in $(seq 60); do sleep 1; kill -0 $pid 2>/dev/null || break; done
        if kill -0 $pid 2>/dev/null; then
          timeout 60 cuda-gdb -p $pid -batch -ex "info threads" -ex "thread apply all bt 30" > "$fed/hang_$run.txt" 2>&1 || true
          kill -9 $pid
          echo "fed: $run hung; backtraces in fed/hang_$run.txt"
        fi
        wait $pid 2>/dev/null || true
        grep -hE "the same fed|by phase" "$fed/$run.log" | tr -s ' ' | sed "s/^/fed: $run:/" || true
        pack_fed
      done
    done
  done
  # FED_SAMPLES=N: where the decode thread spends the graphed step's time. vit_train runs 30
  # epochs from the folder (about 90 s of steady fed training; FED_SAMPLE_ARGS adds flags);
  # cuda-gdb attaches N times, 8 s apart, and writes every thread's backtrace: a poor man's
  # profiler (the machine has no nsys).
  if (( ${FED_SAMPLES:-0} > 0 )); then
    rm -rf /tmp/fed-sample
    ./build-gpu/apps/vit_train --config experiments/data_pipeline/train_small_224.json --data folder:$folder \
      --device cuda --set train.epochs=30 ${FED_SAMPLE_ARGS:-} --out /tmp/fed-sample > "$fed/sample_train.log" 2>&1 &
    pid=$!
    sleep 20
    for k in $(seq "$FED_SAMPLES"); do
      kill -0 $pid 2>/dev/null || break
      timeout 60 cuda-gdb -p $pid -batch -ex "thread apply all bt 25" > "$fed/sample_$k.txt" 2>&1 || true
      pack_fed
      sleep 8
    done
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
  fi
  pack_fed
fi

# cuBLASLt's GELU epilogues at vit_small's MLP shapes against vitlab's present fc1 path: which
# GELU they compute, their time, their distance in bf16 (experiments/bench_gpu/lt_epilogues.cu).
if has lt_epilogues; then
  nvcc -O3 -std=c++17 -arch=sm_90 -I lib experiments/bench_gpu/lt_epilogues.cu lib/vitlab/kernels/bias_grad.cu \
    -lcublasLt -o build-gpu/lt_epilogues
  build-gpu/lt_epilogues | tee "$OUT/lt_epilogues.json"
fi

# The GPU-only tests of the speed work (the fused residual-add + LayerNorm kernels, the
# CUDA-graph training step and forward, fused AdamW, the fused attention paths) against
# LibTorch's own path, then the side-by-side benchmark with timm (experiments/bench_gpu/run.sh,
# about 5.5 minutes with its torch.compile stage) into $OUT/bench.
if has speed; then
  ./build-gpu/tests/vitlab_tests --gtest_filter='AddNorm.*:Linear.*:CudaGraph.*:Optim.*:TimmParity.*:Zoo.*:Sdpa.*' 2>&1 |
    grep -E "^\[ +(OK|FAILED|SKIPPED) |Failure|error|Expected|Which is|actual" || true
  experiments/bench_gpu/run.sh "$OUT/bench" 2>&1 | grep -vE "CMake Warning|kineto|Call Stack|TorchConfig|find_package|^$" || true
fi
