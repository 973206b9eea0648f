#pragma once
// What the autograd wrappers of lib/vitlab/kernels/ (layers/add_norm.cpp, layers/linear.cpp) pass
// to every launch: the device's SM count, which sizes their grids, and LibTorch's current stream,
// so the kernels order with LibTorch's own work and are captured into CUDA graphs with it.
// Included only where the kernels were built (VITLAB_WITH_KERNELS).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAStream.h>

namespace vitlab::kernel_launch {

inline int sm_count() { return at::cuda::getCurrentDeviceProperties()->multiProcessorCount; }
inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

}  // namespace vitlab::kernel_launch
