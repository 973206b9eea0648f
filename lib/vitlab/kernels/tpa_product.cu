#include <cuda_bf16.h>

#include "vitlab/kernels/tpa_product.h"

namespace vitlab::kernels {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kVec = 8;  // columns per thread: one 16-byte store (and, in the backward, load of dq)

__device__ inline float f32(bf16 v) { return __bfloat162float(v); }

__device__ inline const bf16* token(const TpaFactor& f, int64_t t, int64_t N) {
  return static_cast<const bf16*>(f.data) + (t / N) * f.batch_stride + (t % N) * f.token_stride;
}

// One thread per (token, head, 8 columns): q[t, i, c..c+7] = (1/R) sum_r a[t, r, i] b[t, r, c..c+7].
__global__ void __launch_bounds__(256)
    tpa_forward(TpaFactor a, TpaFactor b, bf16* __restrict__ q, int64_t T, int64_t N, int R, int h, int dh,
                float inv_r) {
  const int chunks = dh / kVec;
  const int64_t g = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (g >= T * h * chunks) return;
  const int c = static_cast<int>(g % chunks), i = static_cast<int>(g / chunks % h);
  const int64_t t = g / (int64_t{chunks} * h);
  const bf16* pa = token(a, t, N) + i;
  const bf16* pb = token(b, t, N) + c * kVec;
  float acc[kVec] = {};
  for (int r = 0; r < R; ++r) {
    const float ar = f32(pa[r * a.rank_stride]);
#pragma unroll
    for (int k = 0; k < kVec; ++k) acc[k] += ar * f32(pb[r * b.rank_stride + k]);  // any alignment
  }
  uint4 raw;
  auto* pairs = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
  for (int k = 0; k < kVec / 2; ++k) pairs[k] = __floats2bfloat162_rn(acc[2 * k] * inv_r, acc[2 * k + 1] * inv_r);
  *reinterpret_cast<uint4*>(q + g * kVec) = raw;  // q is contiguous (T, h, dh): (t, i, c) is g
}

// One thread per (token, 8 columns), a token's dh/8 threads adjacent lanes (dh/8 divides 32):
// each thread sums db over the heads for its columns, and da's partial sums over its columns
// meet by shuffles within the token's lanes. Lanes past the last token run on token T - 1 and
// write nothing, so that every lane takes part in the shuffles.
__global__ void __launch_bounds__(256)
    tpa_backward(TpaFactor a, TpaFactor b, const bf16* __restrict__ dq, bf16* __restrict__ da,
                 bf16* __restrict__ db, int64_t T, int64_t N, int R, int h, int dh, float inv_r) {
  const int chunks = dh / kVec;
  const int64_t g = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const bool live = g < T * chunks;
  const int64_t t = live ? g / chunks : T - 1;
  const int c = static_cast<int>(g % chunks);
  const bf16* pa = token(a, t, N);
  const bf16* pb = token(b, t, N) + c * kVec;
  const bf16* pdq = dq + t * h * dh + c * kVec;  // dq (T, h, dh)
  for (int r = 0; r < R; ++r) {
    float br[kVec], acc[kVec] = {};
#pragma unroll
    for (int k = 0; k < kVec; ++k) br[k] = f32(pb[r * b.rank_stride + k]);
    for (int i = 0; i < h; ++i) {
      const uint4 raw = *reinterpret_cast<const uint4*>(pdq + i * dh);
      const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
      const float ar = f32(pa[r * a.rank_stride + i]);
      float partial = 0.f;
#pragma unroll
      for (int k = 0; k < kVec / 2; ++k) {
        const float2 gq = __bfloat1622float2(pairs[k]);
        acc[2 * k] += gq.x * ar, acc[2 * k + 1] += gq.y * ar;
        partial += gq.x * br[2 * k] + gq.y * br[2 * k + 1];
      }
      for (int o = chunks / 2; o > 0; o >>= 1) partial += __shfl_xor_sync(0xffffffffu, partial, o);
      if (live && c == 0) da[(t * R + r) * h + i] = __float2bfloat16_rn(partial * inv_r);
    }
    if (live) {
      uint4 raw;
      auto* pairs = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
      for (int k = 0; k < kVec / 2; ++k) pairs[k] = __floats2bfloat162_rn(acc[2 * k] * inv_r, acc[2 * k + 1] * inv_r);
      *reinterpret_cast<uint4*>(db + (t * R + r) * dh + c * kVec) = raw;
    }
  }
}

}  // namespace

bool tpa_product_supports(int64_t heads, int64_t head_dim, int64_t rank) {
  const int64_t chunks = head_dim / kVec;
  return heads >= 1 && rank >= 1 && head_dim % kVec == 0 && chunks >= 1 && chunks <= 32 && (chunks & (chunks - 1)) == 0;
}

void tpa_product_forward(TpaFactor a, TpaFactor b, void* q, int64_t B, int64_t N, int64_t R, int64_t h, int64_t dh,
                         cudaStream_t stream) {
  const int64_t T = B * N, threads = T * h * (dh / kVec);
  if (threads == 0) return;
  tpa_forward<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(
      a, b, static_cast<bf16*>(q), T, N, static_cast<int>(R), static_cast<int>(h), static_cast<int>(dh),
      1.0f / static_cast<float>(R));
}

void tpa_product_backward(TpaFactor a, TpaFactor b, const void* dq, void* da, void* db, int64_t B, int64_t N,
                          int64_t R, int64_t h, int64_t dh, cudaStream_t stream) {
  const int64_t T = B * N, threads = T * (dh / kVec);
  if (T == 0) return;
  tpa_backward<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(
      a, b, static_cast<const bf16*>(dq), static_cast<bf16*>(da), static_cast<bf16*>(db), T, N, static_cast<int>(R),
      static_cast<int>(h), static_cast<int>(dh), 1.0f / static_cast<float>(R));
}

}  // namespace vitlab::kernels
