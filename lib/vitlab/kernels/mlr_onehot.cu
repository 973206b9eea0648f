#include <cuda_bf16.h>

#include "vitlab/kernels/mlr_onehot.h"

namespace vitlab::kernels {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kVec = 8;  // columns per thread: one 16-byte store

// Index arithmetic in 32 bits (mlr_onehot_supports bounds the sizes): 64-bit division is a long
// software sequence on the GPU, and it dominated these kernels' time.

// One thread per (token, head, 8 ext columns), in ext's memory order. The chunk's first column
// is located by division; the next seven by stepping through cells, ranks and levels.
__global__ void __launch_bounds__(256)
    onehot_forward(const bf16* __restrict__ q, int64_t batch_stride, int64_t head_stride, int64_t token_stride,
                   const int32_t* __restrict__ cell, MlrLevels lv, bf16* __restrict__ ext, int total, int N, int h,
                   int width) {
  const int g = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (g >= total) return;
  const int chunks = width / kVec;
  const int row_id = g / chunks, t = row_id / h, b = t / N, n = t - b * N;  // row_id = (t, i)
  const int c8 = g - row_id * chunks, i = row_id - t * h;
  const bf16* row = q + b * batch_stride + i * head_stride + n * token_stride;
  int l = 0;
  while (l + 1 < lv.count && c8 * kVec >= lv.ext_offset[l + 1]) ++l;
  const int rel = c8 * kVec - lv.ext_offset[l];
  int r = rel / lv.cells[l], c = rel - r * lv.cells[l], mine = cell[l * N + n];
  __align__(16) bf16 out[kVec];
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    out[k] = c == mine ? row[lv.q_offset[l] + r] : __float2bfloat16_rn(0.f);
    if (++c < lv.cells[l]) continue;  // the next column: next cell, else next rank, else next level
    c = 0;
    if (++r < lv.rank[l] || l + 1 == lv.count) continue;
    r = 0, ++l, mine = cell[l * N + n];
  }
  *reinterpret_cast<uint4*>(ext + g * kVec) = *reinterpret_cast<const uint4*>(out);
}

// One thread per (token, head, 8 q columns): each column's gradient is the one ext column it
// went to, found by stepping through ranks and levels as the forward does.
__global__ void __launch_bounds__(256)
    onehot_backward(const bf16* __restrict__ dext, const int32_t* __restrict__ cell, MlrLevels lv,
                    bf16* __restrict__ dq, int total, int N, int h, int dh, int width) {
  const int g = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (g >= total) return;
  const int chunks = dh / kVec;
  const int ti = g / chunks, n = ti / h % N, j0 = (g - ti * chunks) * kVec;  // ti = (t, i): dext's row
  const bf16* row = dext + ti * width;
  int l = 0;
  while (l + 1 < lv.count && j0 >= lv.q_offset[l + 1]) ++l;
  int r = j0 - lv.q_offset[l], c = cell[l * N + n];
  __align__(16) bf16 out[kVec];
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    out[k] = c >= 0 ? row[lv.ext_offset[l] + r * lv.cells[l] + c] : __float2bfloat16_rn(0.f);
    if (++r < lv.rank[l] || l + 1 == lv.count) continue;  // the next column: next rank, else next level
    r = 0, ++l, c = cell[l * N + n];
  }
  *reinterpret_cast<uint4*>(dq + g * kVec) = *reinterpret_cast<const uint4*>(out);
}

}  // namespace

bool mlr_onehot_supports(int levels, int64_t width, int64_t rows, int64_t dh) {
  // Every element index of ext and dq, and the last thread's, fits in 32 bits.
  const int64_t limit = (int64_t{1} << 31) - 256;
  return levels >= 1 && levels <= MlrLevels::kMax && width > 0 && width % kVec == 0 && dh % kVec == 0 &&
         rows * width < limit && rows * dh < limit;
}

void mlr_onehot_forward(const void* q, int64_t batch_stride, int64_t head_stride, int64_t token_stride,
                        const int32_t* cell, const MlrLevels& levels, void* ext, int64_t B, int64_t h, int64_t N,
                        int64_t width, cudaStream_t stream) {
  const int64_t threads = B * N * h * (width / kVec);
  if (threads == 0) return;
  onehot_forward<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(
      static_cast<const bf16*>(q), batch_stride, head_stride, token_stride, cell, levels, static_cast<bf16*>(ext),
      static_cast<int>(threads), static_cast<int>(N), static_cast<int>(h), static_cast<int>(width));
}

void mlr_onehot_backward(const void* dext, const int32_t* cell, const MlrLevels& levels, void* dq, int64_t B,
                         int64_t h, int64_t N, int64_t dh, int64_t width, cudaStream_t stream) {
  const int64_t threads = B * N * h * (dh / kVec);
  if (threads == 0) return;
  onehot_backward<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(
      static_cast<const bf16*>(dext), cell, levels, static_cast<bf16*>(dq), static_cast<int>(threads),
      static_cast<int>(N), static_cast<int>(h), static_cast<int>(dh), static_cast<int>(width));
}

}  // namespace vitlab::kernels
