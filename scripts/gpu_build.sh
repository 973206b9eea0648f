# Sourced by the GPU machine's scripts (gpu_check.sh, multi_gpu_check.sh,
# experiments/bench_gpu/run.sh) from the repository root: configures and builds build-gpu against
# the pip LibTorch (2.x + CUDA), with nvcc for the fused kernels and NCCL's headers for data
# parallel over GPUs, as the machine has them. Arguments: the build targets (`all`, or e.g.
# `vit_bench`); always give them, since a sourced script otherwise sees its caller's arguments.
# Quick when build-gpu is already there (a warm machine).
gpu_build_prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
gpu_build_nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include"))' \
  2>/dev/null || true)
export PATH=$PATH:/usr/local/cuda/bin  # nvcc: CMake looks for it on the PATH
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)'
gpu_build_start=$SECONDS
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$gpu_build_prefix" \
  ${gpu_build_nccl:+-DVITLAB_NCCL_INCLUDE="$gpu_build_nccl"} 2>&1 | { grep -E "^-- vitlab|Error" || true; }
cmake --build build-gpu --parallel "$(nproc)" --target "$@" 2>&1 |
  { grep -E "error|warning: |FAILED" || true; } | tail -n 40
echo "build: $(( SECONDS - gpu_build_start )) s"
