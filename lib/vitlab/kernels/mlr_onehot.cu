#include <cuda_bf16.h>

#include "vitlab/kernels/mlr_onehot.h"

namespace vitlab::kernels {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kVec = 8;  // the forward's columns per thread: one 16-byte store

// One thread per (token, head, 8 ext columns), in ext's memory order.
__global__ void __launch_bounds__(256)
    onehot_forward(const bf16* __restrict__ q, int64_t batch_stride, int64_t head_stride, int64_t token_stride,
                   const int32_t* __restrict__ cell, MlrLevels lv, bf16* __restrict__ ext, int64_t T, int64_t N,
                   int h, int width) {
  const int chunks = width / kVec;
  const int64_t g = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (g >= T * h * chunks) return;
  const int c8 = static_cast<int>(g % chunks), i = static_cast<int>(g / chunks % h);
  const int64_t t = g / (int64_t{chunks} * h), n = t % N;
  const bf16* row = q + (t / N) * batch_stride + i * head_stride + n * token_stride;
  __align__(16) bf16 out[kVec];
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    const int col = c8 * kVec + k;
    int l = 0;
    while (l + 1 < lv.count && col >= lv.ext_offset[l + 1]) ++l;
    const int rel = col - lv.ext_offset[l], r = rel / lv.cells[l], c = rel % lv.cells[l];
    out[k] = c == cell[l * N + n] ? row[lv.q_offset[l] + r] : __float2bfloat16_rn(0.f);
  }
  *reinterpret_cast<uint4*>(ext + g * kVec) = *reinterpret_cast<const uint4*>(out);
}

// One thread per (token, head, q column): the ext column that column went to.
__global__ void __launch_bounds__(256)
    onehot_backward(const bf16* __restrict__ dext, const int32_t* __restrict__ cell, MlrLevels lv,
                    bf16* __restrict__ dq, int64_t T, int64_t N, int h, int dh, int width) {
  const int64_t g = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (g >= T * h * dh) return;
  const int j = static_cast<int>(g % dh);
  const int64_t ti = g / dh, n = ti / h % N;  // ti = (t, i): the (token, head) row of dext
  int l = 0;
  while (l + 1 < lv.count && j >= lv.q_offset[l + 1]) ++l;
  const int c = cell[l * N + n];
  dq[g] = c >= 0 ? dext[ti * width + lv.ext_offset[l] + (j - lv.q_offset[l]) * lv.cells[l] + c]
                 : __float2bfloat16_rn(0.f);
}

}  // namespace

bool mlr_onehot_supports(int levels, int64_t width) {
  return levels >= 1 && levels <= MlrLevels::kMax && width > 0 && width % kVec == 0;
}

void mlr_onehot_forward(const void* q, int64_t batch_stride, int64_t head_stride, int64_t token_stride,
                        const int32_t* cell, const MlrLevels& levels, void* ext, int64_t B, int64_t h, int64_t N,
                        int64_t width, cudaStream_t stream) {
  const int64_t T = B * N, threads = T * h * (width / kVec);
  if (threads == 0) return;
  onehot_forward<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(
      static_cast<const bf16*>(q), batch_stride, head_stride, token_stride, cell, levels, static_cast<bf16*>(ext), T,
      N, static_cast<int>(h), static_cast<int>(width));
}

void mlr_onehot_backward(const void* dext, const int32_t* cell, const MlrLevels& levels, void* dq, int64_t B,
                         int64_t h, int64_t N, int64_t dh, int64_t width, cudaStream_t stream) {
  const int64_t T = B * N, threads = T * h * dh;
  if (threads == 0) return;
  onehot_backward<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(
      static_cast<const bf16*>(dext), cell, levels, static_cast<bf16*>(dq), T, N, static_cast<int>(h),
      static_cast<int>(dh), static_cast<int>(width));
}

}  // namespace vitlab::kernels
