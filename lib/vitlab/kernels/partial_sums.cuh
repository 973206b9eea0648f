#pragma once
// The last step of the column sums the backward kernels leave as one partial row per block
// (kernels/add_layer_norm.cu, kernels/bias_grad.cu): out[j] = sum of the rows' column j.
// LibTorch's sum over the first dimension of such a short, wide matrix takes 14 us; this, 4.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace vitlab::kernels {

// 32 columns by 32 row groups per block, each group summing every 32nd row, the groups then
// added in order: the result does not depend on how the blocks were scheduled.
static __global__ void __launch_bounds__(1024) sum_rows(const float* __restrict__ partial, float* __restrict__ out,
                                                        int rows, int64_t N) {
  __shared__ float group_sums[32][33];
  const int64_t j = int64_t{blockIdx.x} * 32 + threadIdx.x;
  float s = 0.f;
  if (j < N)
    for (int r = threadIdx.y; r < rows; r += 32) s += partial[r * N + j];
  group_sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < N) {
    float total = 0.f;
    for (int g = 0; g < 32; ++g) total += group_sums[g][threadIdx.x];
    out[j] = total;
  }
}

inline void launch_sum_rows(const float* partial, float* out, int rows, int64_t N, cudaStream_t stream) {
  sum_rows<<<static_cast<unsigned>((N + 31) / 32), dim3(32, 32), 0, stream>>>(partial, out, rows, N);
}

}  // namespace vitlab::kernels
