#pragma once
// The only place that knows LibTorch 1.13 (Debian, CPU) from 2.x (pip wheels, CUDA).
#include <torch/torch.h>
#include <torch/version.h>

#define VITLAB_TORCH2 (TORCH_VERSION_MAJOR >= 2)

namespace vitlab::compat {

// True where at::scaled_dot_product_attention (flash / memory-efficient kernels) exists.
constexpr bool kHasFusedSdpa = VITLAB_TORCH2;

// softmax(q k^T * scale) v through the fused kernel. Shapes (B, h, N, d_qk) x (B, h, M, d_qk)
// x (B, h, M, d_v). Only call when kHasFusedSdpa.
inline torch::Tensor fused_sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                double scale) {
#if VITLAB_TORCH2
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                          /*is_causal=*/false, scale);
#else
  (void)q; (void)k; (void)v; (void)scale;
  TORCH_CHECK(false, "fused scaled-dot-product attention needs LibTorch 2.x");
#endif
}

inline std::string torch_version() { return TORCH_VERSION; }

}  // namespace vitlab::compat
