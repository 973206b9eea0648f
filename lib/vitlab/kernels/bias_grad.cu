#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>

#include "vitlab/kernels/bias_grad.h"
#include "vitlab/kernels/partial_sums.cuh"

namespace vitlab::kernels {
namespace {

using bf16 = __nv_bfloat16;

// Thread layout: each thread owns 8 adjacent columns (one 16-byte load per row), N / 8 threads
// cover a row, and a block holds R = (its thread budget) / (N / 8) such row-teams, so a block
// reads R whole rows, contiguous in memory, per step (the DRAM streams, as in an elementwise
// kernel). Team r of block k sums rows r + R (k + gridDim.x i), Shape::unroll rows per loop trip
// so that several loads are in flight per thread. Each block leaves one partial row of N sums,
// and sum_rows (kernels/partial_sums.cuh) adds those rows up.
constexpr int kVec = 8;

// Per kernel: rows per loop trip, threads per block, resident blocks per SM. The plain sum keeps
// four 16-byte loads in flight in one 1024-thread block per SM (64 registers a thread); the GELU
// backward, heavier in arithmetic (erf and exp per element), runs one row at a time in two
// 768-thread blocks per SM, so that more warps hide its latency.
struct Shape {
  int unroll, threads, per_sm;
};
constexpr Shape kSum{4, 1024, 1}, kGeluShape{1, 768, 2};

int slots_of(int64_t N) { return static_cast<int>(N / kVec); }
int teams_of(int64_t N, const Shape& shape) { return std::max(1, shape.threads / slots_of(N)); }

struct Bf16x8 {
  float v[kVec];
};

__device__ inline Bf16x8 load8(const bf16* p) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
  Bf16x8 out;
#pragma unroll
  for (int k = 0; k < kVec / 2; ++k) {
    const float2 f = __bfloat1622float2(pairs[k]);
    out.v[2 * k] = f.x, out.v[2 * k + 1] = f.y;
  }
  return out;
}

// Rounds to bf16 (as PyTorch's cast), stores, and returns the rounded values.
__device__ inline Bf16x8 store8(bf16* p, const Bf16x8& x) {
  uint4 raw;
  auto* pairs = reinterpret_cast<__nv_bfloat162*>(&raw);
  Bf16x8 rounded;
#pragma unroll
  for (int k = 0; k < kVec / 2; ++k) {
    pairs[k] = __floats2bfloat162_rn(x.v[2 * k], x.v[2 * k + 1]);
    const float2 f = __bfloat1622float2(pairs[k]);
    rounded.v[2 * k] = f.x, rounded.v[2 * k + 1] = f.y;
  }
  *reinterpret_cast<uint4*>(p) = raw;
  return rounded;
}

// What the column sum reads: dY, or dh and z of a GELU (exact or tanh) whose dz it writes and sums.
enum Form { kPlain, kGeluExact, kGeluTanh };

// d/dz gelu(z) = Phi(z) + z phi(z), in PyTorch's GeluBackward's order of operations (float32).
__device__ inline float gelu_grad(float dh, float z) {
  constexpr float kAlpha = static_cast<float>(M_SQRT1_2);
  constexpr float kBeta = static_cast<float>(M_2_SQRTPI * M_SQRT1_2 * 0.5);
  const float cdf = 0.5f * (1.0f + erff(z * kAlpha));
  const float pdf = expf(-0.5f * z * z) * kBeta;
  return dh * (cdf + z * pdf);
}

// The derivative of the tanh approximation 0.5 z (1 + tanh(u)), u = sqrt(2 / pi) (z + 0.044715 z^3):
// 0.5 (1 + tanh u) + 0.5 z (1 - tanh^2 u) sqrt(2 / pi) (1 + 3 * 0.044715 z^2), in PyTorch's
// GeluBackward's order of operations (float32).
__device__ inline float gelu_tanh_grad(float dh, float z) {
  constexpr float kBeta = static_cast<float>(M_SQRT2 * M_2_SQRTPI * 0.5);
  constexpr float kKappa = 0.044715f;
  const float z_sq = z * z, inner = kBeta * (z + kKappa * (z_sq * z)), t = tanhf(inner);
  const float left = 0.5f * z, left_derivative = 0.5f * (1.0f + t);
  const float right_derivative = left * (1.0f - t * t) * (kBeta * (1.0f + 3.0f * kKappa * z_sq));
  return dh * (left_derivative + right_derivative);
}

// kForm kPlain: sums `a` (dY) by column. Otherwise `a` is dh, `z` the GELU's input; writes
// dz = dh * gelu'(z) and sums the bf16 dz it wrote (the numbers a separate sum would read).
// The teams' sums meet in shared memory, in team order; each block writes one partial row.
template <int kForm, int kUnroll, int kThreads, int kPerSm>
__global__ void __launch_bounds__(kThreads, kPerSm)
    column_sum(const bf16* __restrict__ a, const bf16* __restrict__ z, bf16* __restrict__ dz,
               float* __restrict__ partial, int64_t M, int64_t N) {
  extern __shared__ float team_sums[];  // (teams, N)
  const int slots = static_cast<int>(N / kVec), teams = blockDim.x / slots;
  const int slot = threadIdx.x % slots, team = threadIdx.x / slots;
  const int64_t col = int64_t{slot} * kVec, stride = int64_t{teams} * gridDim.x;
  float acc[kVec] = {};
  for (int64_t row = team + int64_t{teams} * blockIdx.x; row < M; row += kUnroll * stride) {
    Bf16x8 x[kUnroll], zz[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t r = row + u * stride;
      if (r < M) {
        x[u] = load8(a + r * N + col);
        if constexpr (kForm != kPlain) zz[u] = load8(z + r * N + col);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t r = row + u * stride;
      if (r >= M) break;
      if constexpr (kForm != kPlain) {
#pragma unroll
        for (int k = 0; k < kVec; ++k)
          x[u].v[k] = kForm == kGeluTanh ? gelu_tanh_grad(x[u].v[k], zz[u].v[k]) : gelu_grad(x[u].v[k], zz[u].v[k]);
        x[u] = store8(dz + r * N + col, x[u]);
      }
#pragma unroll
      for (int k = 0; k < kVec; ++k) acc[k] += x[u].v[k];
    }
  }
#pragma unroll
  for (int k = 0; k < kVec; ++k) team_sums[team * N + col + k] = acc[k];
  __syncthreads();
  for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
    float s = 0.f;
    for (int t = 0; t < teams; ++t) s += team_sums[t * N + j];
    partial[int64_t{blockIdx.x} * N + j] = s;
  }
}

// Shape::per_sm blocks per SM, fewer when the rows run out.
int blocks_of(int64_t M, int64_t N, int sm_count, const Shape& shape) {
  const int64_t rows_per_block = int64_t{teams_of(N, shape)} * shape.unroll;
  const int64_t needed = (M + rows_per_block - 1) / rows_per_block;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(int64_t{sm_count} * shape.per_sm, needed)));
}

template <int kForm, const Shape& kShape>
void launch(const void* a, const void* z, void* dz, float* partial, float* out, int64_t M, int64_t N, int sm_count,
            cudaStream_t stream) {
  const int teams = teams_of(N, kShape), blocks = blocks_of(M, N, sm_count, kShape);
  const size_t shared = sizeof(float) * teams * N;
  column_sum<kForm, kShape.unroll, kShape.threads, kShape.per_sm><<<blocks, teams * slots_of(N), shared, stream>>>(
      static_cast<const bf16*>(a), static_cast<const bf16*>(z), static_cast<bf16*>(dz), partial, M, N);
  launch_sum_rows(partial, out, blocks, N, stream);
}

}  // namespace

bool bias_grad_supports(int64_t N) {
  return N > 0 && N % kVec == 0 && N / kVec <= std::min(kSum.threads, kGeluShape.threads);
}

int bias_grad_partial_rows(int64_t M, int64_t N, int sm_count, bool gelu) {
  return blocks_of(M, N, sm_count, gelu ? kGeluShape : kSum);
}

void column_sum_bf16(const void* dy, float* partial, float* out, int64_t M, int64_t N, int sm_count,
                     cudaStream_t stream) {
  launch<kPlain, kSum>(dy, nullptr, nullptr, partial, out, M, N, sm_count, stream);
}

void gelu_backward_column_sum_bf16(const void* dh, const void* z, void* dz, float* partial, float* out, int64_t M,
                                   int64_t N, bool tanh, int sm_count, cudaStream_t stream) {
  if (tanh) launch<kGeluTanh, kGeluShape>(dh, z, dz, partial, out, M, N, sm_count, stream);
  else launch<kGeluExact, kGeluShape>(dh, z, dz, partial, out, M, N, sm_count, stream);
}

}  // namespace vitlab::kernels
