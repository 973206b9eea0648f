#pragma once
// The one scaled-dot-product attention entry point all variants call:
// softmax(q k^T * scale) v over the last two dimensions, q (B, h, N, e), k (B, h, M, e),
// v (B, h, M, f) -> (B, h, N, f).
#include <torch/torch.h>

namespace vitlab {

// Fused kernel (flash / memory-efficient on CUDA) on LibTorch 2.x, the composition on 1.13.
torch::Tensor sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale);
// The plain composition, always available (reference and fallback path).
torch::Tensor sdpa_composed(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale);
// softmax(scores) v with the softmax in at least float32: scores (B, h, N, M), v (B, h, M, f).
torch::Tensor softmax_values(const torch::Tensor& scores, const torch::Tensor& v);
// "fused" or "composed": what sdpa() runs in this build.
const char* sdpa_path();

}  // namespace vitlab
