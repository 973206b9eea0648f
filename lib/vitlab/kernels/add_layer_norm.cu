#include <cuda_bf16.h>

#include <algorithm>
#include <type_traits>

#include "vitlab/kernels/add_layer_norm.h"
#include "vitlab/kernels/partial_sums.cuh"

namespace vitlab::kernels {
namespace {

using bf16 = __nv_bfloat16;

__device__ inline float to_float(float v) { return v; }
__device__ inline float to_float(bf16 v) { return __bfloat162float(v); }
template <typename T>
__device__ inline T from_float(float v);
template <>
__device__ inline float from_float<float>(float v) { return v; }
template <>
__device__ inline bf16 from_float<bf16>(float v) { return __float2bfloat16_rn(v); }  // as PyTorch's cast

__device__ inline float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One warp per row; lane l holds the row's elements l, l + 32, ... (VPL of them) in registers,
// so each element is read and written once. Consecutive lanes touch consecutive addresses.
constexpr int kWarps = 8;

template <int VPL, typename TY, typename TO>
__global__ void __launch_bounds__(32 * kWarps)
    add_ln_forward(const float* __restrict__ x, const TY* __restrict__ y, const float* __restrict__ w,
                   const float* __restrict__ b, float* __restrict__ s, TO* __restrict__ out,
                   float* __restrict__ mean_out, float* __restrict__ rstd_out, int64_t M, int64_t y_rows, float eps) {
  constexpr int D = 32 * VPL;
  const int lane = threadIdx.x & 31;
  for (int64_t row = blockIdx.x * int64_t{kWarps} + (threadIdx.x >> 5); row < M;
       row += int64_t{gridDim.x} * kWarps) {
    const int64_t base = row * D, y_base = (y_rows == M ? row : row % y_rows) * D;  // y: broadcast rows
    float v[VPL];
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int64_t i = base + lane + 32 * k;
      v[k] = x[i] + to_float(y[y_base + lane + 32 * k]);  // the residual add of eager autocast: in float32
      s[i] = v[k];
      sum += v[k];
    }
    // Mean, then the mean squared deviation from it (two passes over registers, no cancellation).
    const float mean = warp_sum(sum) / D;
    float sq = 0.f;
#pragma unroll
    for (int k = 0; k < VPL; ++k) sq += (v[k] - mean) * (v[k] - mean);
    const float rstd = rsqrtf(warp_sum(sq) / D + eps);
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int j = lane + 32 * k;
      out[base + j] = from_float<TO>((v[k] - mean) * rstd * w[j] + b[j]);
    }
    if (lane == 0) mean_out[row] = mean, rstd_out[row] = rstd;
  }
}

// LayerNorm's input gradient for one row, with g = grad_out * w and xhat = (s - mean) * rstd:
//   ds = rstd * (g - mean(g) - xhat * mean(g * xhat)),
// plus the gradient s already has from the residual stream. The weight gradients are summed over
// the block's rows in shared memory, in a fixed order, and written as one partial row per block.
template <int VPL, typename TO, typename TY>
__global__ void __launch_bounds__(32 * kWarps)
    add_ln_backward(const TO* __restrict__ grad_out, const float* __restrict__ grad_s_in,
                    const float* __restrict__ s, const float* __restrict__ w, const float* __restrict__ mean_in,
                    const float* __restrict__ rstd_in, float* __restrict__ grad_s, TY* __restrict__ grad_y,
                    float* __restrict__ partial_w, float* __restrict__ partial_b, int64_t M) {
  constexpr int D = 32 * VPL;
  __shared__ float block_w[D], block_b[D];
  for (int j = threadIdx.x; j < D; j += blockDim.x) block_w[j] = 0.f, block_b[j] = 0.f;
  __syncthreads();
  const int lane = threadIdx.x & 31;
  float acc_w[VPL], acc_b[VPL];
#pragma unroll
  for (int k = 0; k < VPL; ++k) acc_w[k] = 0.f, acc_b[k] = 0.f;
  for (int64_t row = blockIdx.x * int64_t{kWarps} + (threadIdx.x >> 5); row < M;
       row += int64_t{gridDim.x} * kWarps) {
    const int64_t base = row * D;
    const float mean = mean_in[row], rstd = rstd_in[row];
    float g[VPL], xhat[VPL];
    float sum_g = 0.f, sum_gx = 0.f;
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int j = lane + 32 * k;
      const float go = to_float(grad_out[base + j]);
      xhat[k] = (s[base + j] - mean) * rstd;
      g[k] = go * w[j];
      acc_w[k] += go * xhat[k];
      acc_b[k] += go;
      sum_g += g[k];
      sum_gx += g[k] * xhat[k];
    }
    const float mean_g = warp_sum(sum_g) / D, mean_gx = warp_sum(sum_gx) / D;
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int64_t i = base + lane + 32 * k;
      float d = rstd * (g[k] - mean_g - xhat[k] * mean_gx);
      if (grad_s_in) d += grad_s_in[i];
      grad_s[i] = d;
      if (grad_y) grad_y[i] = from_float<TY>(d);
    }
  }
  // The warps add their sums in warp order (not with atomics, whose order varies), so the
  // weight gradients repeat bit for bit from run to run.
  for (int warp = 0; warp < kWarps; ++warp) {
    if ((threadIdx.x >> 5) == warp) {
#pragma unroll
      for (int k = 0; k < VPL; ++k) block_w[lane + 32 * k] += acc_w[k], block_b[lane + 32 * k] += acc_b[k];
    }
    __syncthreads();
  }
  for (int j = threadIdx.x; j < D; j += blockDim.x) {
    partial_w[int64_t{blockIdx.x} * D + j] = block_w[j];
    partial_b[int64_t{blockIdx.x} * D + j] = block_b[j];
  }
}

// Calls f(std::integral_constant<int, D / 32>) for the supported widths.
template <typename F>
bool with_vpl(int64_t D, F&& f) {
  switch (D) {
    case 64: f(std::integral_constant<int, 2>{}); return true;
    case 128: f(std::integral_constant<int, 4>{}); return true;
    case 192: f(std::integral_constant<int, 6>{}); return true;
    case 256: f(std::integral_constant<int, 8>{}); return true;
    case 384: f(std::integral_constant<int, 12>{}); return true;
    case 512: f(std::integral_constant<int, 16>{}); return true;
    case 768: f(std::integral_constant<int, 24>{}); return true;
    case 1024: f(std::integral_constant<int, 32>{}); return true;
    default: return false;
  }
}

// Calls f(T{}) with T the C++ type of `t` (float or bf16).
template <typename F>
void with_type(DType t, F&& f) {
  if (t == DType::kFloat) f(float{});
  else f(bf16{});
}

unsigned forward_blocks(int64_t M, int sm_count) {
  const int64_t needed = (M + kWarps - 1) / kWarps;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(needed, int64_t{sm_count} * 16)));
}

}  // namespace

bool add_layer_norm_supports(int64_t D) {
  return with_vpl(D, [](auto) {});
}

void add_layer_norm_forward(const float* x, const void* y, DType y_type, int64_t y_rows, const float* w,
                            const float* b, float* s, void* out, DType out_type, float* mean, float* rstd, int64_t M,
                            int64_t D, float eps, int sm_count, cudaStream_t stream) {
  if (M == 0) return;
  with_vpl(D, [&](auto vpl) {
    with_type(y_type, [&](auto ty) {
      with_type(out_type, [&](auto to) {
        using TY = decltype(ty);
        using TO = decltype(to);
        add_ln_forward<decltype(vpl)::value, TY, TO><<<forward_blocks(M, sm_count), 32 * kWarps, 0, stream>>>(
            x, static_cast<const TY*>(y), w, b, s, static_cast<TO*>(out), mean, rstd, M, y_rows, eps);
      });
    });
  });
}

int add_layer_norm_backward_blocks(int64_t M, int sm_count) {
  const int64_t needed = (M + kWarps - 1) / kWarps;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(needed, int64_t{sm_count} * 2)));
}

void add_layer_norm_backward(const void* grad_out, DType out_type, const float* grad_s_in, const float* s,
                             const float* w, const float* mean, const float* rstd, float* grad_s, void* grad_y,
                             DType y_type, float* partial_w, float* partial_b, float* grad_w, float* grad_b, int64_t M,
                             int64_t D, int sm_count, cudaStream_t stream) {
  const int blocks = add_layer_norm_backward_blocks(M, sm_count);
  with_vpl(D, [&](auto vpl) {
    with_type(out_type, [&](auto to) {
      with_type(y_type, [&](auto ty) {
        using TO = decltype(to);
        using TY = decltype(ty);
        add_ln_backward<decltype(vpl)::value, TO, TY><<<blocks, 32 * kWarps, 0, stream>>>(
            static_cast<const TO*>(grad_out), grad_s_in, s, w, mean, rstd, grad_s, static_cast<TY*>(grad_y),
            partial_w, partial_b, M);
      });
    });
  });
  launch_sum_rows(partial_w, grad_w, blocks, D, stream);
  launch_sum_rows(partial_b, grad_b, blocks, D, stream);
}

}  // namespace vitlab::kernels
